#!/usr/bin/env bash
# Creates a kind cluster whose apiserver sends audit batches to kausal over
# mTLS, deploys kausal and Jaeger, runs a demo rollout, and says where to look.
#
# Needs: docker, kind, kubectl. Environment:
#   KIND_CLUSTER_NAME (default kausal)   KIND_NODE_IMAGE (default: kind's own)
#   KAUSAL_IMAGE      (default kausal:dev; must match deploy/base/kausal.yaml)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cluster="${KIND_CLUSTER_NAME:-kausal}"
image="${KAUSAL_IMAGE:-kausal:dev}"
# kubectl's context (and kausal's k8s.cluster.name) for a kind cluster.
cluster_label="kind-$cluster"
state="$here/.state/$cluster"

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "up.sh: $tool is required" >&2; exit 1; }
done

echo "==> building $image"
docker build -t "$image" "$root"

echo "==> certificates and webhook kubeconfig in $state/audit"
mkdir -p "$state/audit" "$state/certs"
docker run --rm --user "$(id -u):$(id -g)" -v "$state/certs:/out" "$image" \
  cert --out /out --force \
  --san 127.0.0.1,localhost,kausal.kausal.svc \
  --server-url "https://127.0.0.1:8443/audit/$cluster_label" >/dev/null
cp "$root/audit-policy/policy.yaml" "$state/audit/policy.yaml"
cp "$state/certs/webhook-kubeconfig.yaml" "$state/audit/webhook-kubeconfig.yaml"
sed "s#__AUDIT_DIR__#$state/audit#" "$here/kind-config.yaml" >"$state/kind-config.yaml"

echo "==> creating kind cluster $cluster"
kind create cluster --name "$cluster" --config "$state/kind-config.yaml" \
  ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 3m
kind load docker-image "$image" --name "$cluster"

echo "==> deploying kausal and Jaeger (deploy/overlays/kind)"
kubectl --context "$cluster_label" create namespace kausal --dry-run=client -o yaml | kubectl --context "$cluster_label" apply -f -
kubectl --context "$cluster_label" -n kausal create secret generic kausal-tls \
  --from-file=tls.crt="$state/certs/server.crt" \
  --from-file=tls.key="$state/certs/server.key" \
  --from-file=ca.crt="$state/certs/ca.crt" \
  --dry-run=client -o yaml | kubectl --context "$cluster_label" apply -f -
kubectl --context "$cluster_label" apply -k "$root/deploy/overlays/kind"
kubectl --context "$cluster_label" -n kausal set env deployment/kausal KAUSAL_CLUSTER_NAME="$cluster_label"
kubectl --context "$cluster_label" -n kausal set image deployment/kausal kausal="$image"
kubectl --context "$cluster_label" -n kausal rollout status deployment/jaeger --timeout 3m
kubectl --context "$cluster_label" -n kausal rollout status deployment/kausal --timeout 3m

echo "==> demo: create, scale and delete a Deployment"
kubectl --context "$cluster_label" create deployment demo --image=registry.k8s.io/pause:3.10 --replicas=2
kubectl --context "$cluster_label" rollout status deployment/demo --timeout 2m
kubectl --context "$cluster_label" scale deployment/demo --replicas=4
kubectl --context "$cluster_label" rollout status deployment/demo --timeout 2m
kubectl --context "$cluster_label" delete deployment demo --wait

cat <<MSG

kausal is running. To look at the traces:
  kubectl --context $cluster_label -n kausal port-forward svc/jaeger 16686:16686
  open http://localhost:16686
  Service: kubernetes-admin (you, via kubectl)   Operation: create deployments default/demo
Each kubectl command above is one trace; the controllers' writes and Events nest under it.
Metrics: kubectl --context $cluster_label -n kausal port-forward deploy/kausal 9090 && curl localhost:9090/metrics
Tear down: $here/down.sh
MSG
