#!/usr/bin/env bash
# PKI for the loopback test control plane: one CA, the apiserver's serving
# certificate, client certificates for the admin, the two controllers and a kubelet, and
# the service-account signing key. (kausal's own certificates come from
# `kausal cert`, like a user's would.)
set -euo pipefail
dir="$1"
mkdir -p "$dir" && cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=kausal-e2e-ca" 2>/dev/null
issue() { # name subject [subjectAltName]
  local name=$1 subject=$2 san=${3:-}
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subject" 2>/dev/null
  {
    if [ -n "$san" ]; then
      echo "subjectAltName=$san"
      echo "extendedKeyUsage=serverAuth,clientAuth"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$name.crt" -days 30 -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
issue apiserver "/CN=kube-apiserver" "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes.default.svc"
issue admin "/O=system:masters/CN=e2e-admin"
issue controller-manager "/CN=system:kube-controller-manager"
issue scheduler "/CN=system:kube-scheduler"
issue node-e2e-node-reg "/O=system:nodes/CN=system:node:e2e-node-reg"
issue node-e2e-kubelet "/O=system:nodes/CN=system:node:e2e-kubelet"
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
