#!/usr/bin/env bash
# End-to-end tests against a real Kubernetes control plane, no Docker needed.
#
#   tests/e2e/run.sh [--record DIR] [--only NAME]
#
# Builds (once, cached in ~/.cache/kausal-e2e) kube-apiserver,
# kube-controller-manager and kube-scheduler 1.20.2 from Debian's source
# package; starts etcd and them on loopback only, with the apiserver's audit
# webhook pointed at `kausal serve` over mTLS and the project's real
# audit-policy/policy.yaml (kube-controller-manager and kube-scheduler start
# inside the first, bootstrap scenario, so a fresh cluster's start-up is
# recorded); then runs the scenarios in tests/e2e_cluster.rs,
# which start kausal and assert on the spans it exports to a real OTLP/gRPC
# receiver. Every process started here is stopped by PID on exit, also on failure.
#
# --record DIR keeps each scenario's raw audit batches and watched Events
# (kausal serve --record-dir) as fixtures for the fast tests.
# --only NAME (repeatable) runs only the scenarios whose test name contains NAME (while
# developing one; CI runs them all).
# --node adds a real node (containerd and a kubelet, tests/e2e/node.sh) for the
# kubelet scenarios; the whole run then happens inside a network namespace of
# its own, where the node's address lives.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
e2e="$root/tests/e2e"
cache="${KAUSAL_E2E_CACHE:-$HOME/.cache/kausal-e2e}"
record=""
only=()
with_node=""
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --record) record="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    --only) only+=("$2"); shift 2 ;;
    --node) with_node=1; shift ;;
    *) echo "usage: $0 [--record DIR] [--only NAME] [--node]" >&2; exit 2 ;;
  esac
done

log() { printf '\n[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
started=$(date +%s)

if [ -z "${KAUSAL_E2E_NETNS:-}" ]; then
  log "control-plane binaries"
  t=$(date +%s)
  "$e2e/build-control-plane.sh"
  [ -z "$with_node" ] || "$e2e/build-node.sh"
  log "control-plane binaries ready in $(( $(date +%s) - t ))s"
  if [ -n "$with_node" ]; then
    # Everything from here on runs in a network namespace of this run's own:
    # the node's address exists only there (see node.sh).
    (cd "$root" && cargo build --bin kausal && cargo test --no-run --test e2e_cluster)
    exec unshare --net -- env KAUSAL_E2E_NETNS=1 CARGO_NET_OFFLINE=true "$0" "${args[@]}"
  fi
fi
# shellcheck source=tests/e2e/node.sh
. "$e2e/node.sh"
[ -z "${KAUSAL_E2E_NETNS:-}" ] || node_network
bin="$cache/bin"
command -v etcd >/dev/null || { echo "etcd missing (build-control-plane.sh installs it)" >&2; exit 1; }

log "building kausal and the e2e tests"
t=$(date +%s)
(cd "$root" && cargo build --bin kausal && cargo test --no-run --test e2e_cluster)
log "built in $(( $(date +%s) - t ))s"
kausal="${CARGO_TARGET_DIR:-$root/target}/debug/kausal"

run="$(mktemp -d "${TMPDIR:-/tmp}/kausal-e2e.XXXXXX")"
pids=()
wait_or_kill() { # pid: ten seconds to exit after a TERM, then KILL
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "$1" 2>/dev/null || true
}
stop_all() {
  local status=$?
  [ -z "$with_node" ] || node_down
  for (( i=${#pids[@]}-1; i>=0; i-- )); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do wait_or_kill "$pid"; done
  if [ "$status" -ne 0 ]; then
    echo "e2e failed; logs in $run/logs:" >&2
    for f in "$run"/logs/*.log; do echo "--- $f (last 15 lines)" >&2; tail -15 "$f" >&2 || true; done
  else
    # A passing run leaves nothing in /tmp (a failing one keeps its logs).
    rm -rf "$run"
  fi
  exit "$status"
}
trap stop_all EXIT
mkdir -p "$run/logs"

# Loopback ports, away from the usual ones so a developer's own cluster is untouched.
etcd_port=23790 apiserver_port=16443 kausal_port=18443 kausal_ops_port=19090

log "PKI in $run"
"$e2e/gen-pki.sh" "$run/pki"
"$kausal" cert --out "$run/kausal-certs" --san 127.0.0.1,localhost \
  --server-url "https://127.0.0.1:$kausal_port/audit/e2e" >/dev/null
pki="$run/pki"

kubeconfig() { # name → $run/<name>.kubeconfig
  cat >"$run/$1.kubeconfig" <<K
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "https://127.0.0.1:$apiserver_port", certificate-authority: "$pki/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$pki/$1.crt", client-key: "$pki/$1.key"}
contexts:
- name: e2e
  context: {cluster: e2e, user: $1}
current-context: e2e
K
}
kubeconfig admin; kubeconfig controller-manager; kubeconfig scheduler
# The credentials a kubelet registering node e2e-node-reg would have (the node scenario).
kubeconfig node-e2e-node-reg
# The real node's kubelet (--node).
kubeconfig "node-$node_name"

start() { # name command...
  local name=$1; shift
  "$@" >"$run/logs/$name.log" 2>&1 &
  pids+=($!)
  echo $! >"$run/$name.pid"
}

stop_named() { # name: stops what start() started under that name
  local pid
  pid=$(cat "$run/$1.pid" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait_or_kill "$pid"
}

wait_for() { # what url-or-command...
  local what=$1; shift
  for _ in $(seq 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "$what did not become ready" >&2
  return 1
}

log "etcd"
start etcd etcd --name e2e --data-dir "$run/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
  --initial-cluster e2e=http://127.0.0.1:23800 --listen-metrics-urls http://127.0.0.1:23810
wait_for etcd curl -sf "http://127.0.0.1:23810/health"

start_apiserver() { # policy file
  start kube-apiserver "$bin/kube-apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$apiserver_port" --insecure-port=0 \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --client-ca-file="$pki/ca.crt" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range=10.0.0.0/24 --authorization-mode=Node,RBAC \
    --audit-policy-file="$1" \
    --audit-webhook-config-file="$run/kausal-certs/webhook-kubeconfig.yaml" \
    --audit-webhook-mode=batch --audit-webhook-batch-max-wait=1s --audit-webhook-initial-backoff=1s \
    --audit-webhook-version=audit.k8s.io/v1 --profiling=false \
    --kubelet-preferred-address-types=InternalIP
  wait_for kube-apiserver curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$apiserver_port/readyz"
}

log "kube-apiserver with audit-policy/policy.yaml"
start_apiserver "$root/audit-policy/policy.yaml"

start_controllers() {
  log "kube-controller-manager and kube-scheduler"
  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$run/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$run/controller-manager.kubeconfig" --authorization-kubeconfig="$run/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 --port=0 --leader-elect=false \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --use-service-account-credentials=true --controllers='*' \
    --node-monitor-grace-period=24h --pod-eviction-timeout=24h
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$run/scheduler.kubeconfig" \
    --authentication-kubeconfig="$run/scheduler.kubeconfig" --authorization-kubeconfig="$run/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10259 --port=0 --leader-elect=false
  # Up before anything restarts the apiserver (with --only, the watch phase
  # can come at once): a controller manager that cannot reach it at start exits.
  wait_for kube-controller-manager curl -sfk https://127.0.0.1:10257/healthz
  wait_for kube-scheduler curl -sfk https://127.0.0.1:10259/healthz
}

export KAUSAL_E2E_DIR="$run" KAUSAL_E2E_BIN="$kausal" KAUSAL_E2E_RECORD="$record"
export KAUSAL_E2E_PORT="$kausal_port" KAUSAL_E2E_OPS_PORT="$kausal_ops_port"
export KUBECONFIG="$run/admin.kubeconfig"

# A fresh cluster's first minute: the bootstrap scenario starts kausal and
# makes its first writes while only the apiserver runs, then asks for the
# controllers by creating $run/start-controllers; they start here, and their
# start-up (ServiceAccounts, token secrets, TokenRequests, every namespace's
# default ServiceAccount and root CA) is recorded while it happens. If the
# scenario is filtered out (--only) or ends first, the controllers start after it.
log "a fresh cluster: the bootstrap scenario, with the controllers starting inside it"
t=$(date +%s)
(cd "$root" && KAUSAL_E2E_PHASE=bootstrap cargo test --test e2e_cluster -- --ignored --test-threads=1 --nocapture \
  --skip audit_ --skip watch_ --skip kubelet_ "${only[@]}") &
bootstrap=$!
while [ ! -e "$run/start-controllers" ] && kill -0 "$bootstrap" 2>/dev/null; do sleep 0.2; done
controllers_started=""
if [ -e "$run/start-controllers" ]; then start_controllers; controllers_started=1; fi
wait "$bootstrap"
[ -n "$controllers_started" ] || start_controllers
log "bootstrap scenario done in $(( $(date +%s) - t ))s"

log "scenarios through the audit stream"
t=$(date +%s)
(cd "$root" && KAUSAL_E2E_PHASE=audit cargo test --test e2e_cluster -- --ignored --test-threads=1 --nocapture --skip watch_ --skip bootstrap_ --skip kubelet_ "${only[@]}")
log "audit-stream scenarios passed in $(( $(date +%s) - t ))s"

if [ -n "$with_node" ]; then
  # The first kubelet scenario asks for the node by creating $run/start-node
  # once its kausal runs, so the node's registration (and the kubelet's
  # NodeReady) is recorded; the node starts here, and $run/node-ready tells
  # the scenarios it is Ready. If no scenario asks (--only), no node starts.
  log "scenarios with real pods on a real node (containerd and a kubelet), started when the first asks"
  t=$(date +%s)
  (cd "$root" && KAUSAL_E2E_PHASE=kubelet KAUSAL_E2E_NODE="$node_name" cargo test --test e2e_cluster -- --ignored \
    --test-threads=1 --nocapture --skip audit_ --skip watch_ --skip bootstrap_ "${only[@]}") &
  kubelet_tests=$!
  pids+=("$kubelet_tests")  # stopped with the rest if the node fails to start
  while [ ! -e "$run/start-node" ] && kill -0 "$kubelet_tests" 2>/dev/null; do sleep 0.2; done
  if [ -e "$run/start-node" ]; then
    t_node=$(date +%s)
    node_up
    touch "$run/node-ready"
    log "node $node_name Ready in $(( $(date +%s) - t_node ))s"
  fi
  wait "$kubelet_tests"
  node_down
  log "kubelet scenarios passed in $(( $(date +%s) - t ))s"
fi

log "restarting kube-apiserver with Events excluded from the policy, for the watch path"
# The real policy with one rule in front: Events at level None. Everything
# else is unchanged, so Events can only reach kausal through its watch.
{
  sed -n '1,/^rules:/p' "$root/audit-policy/policy.yaml"
  printf '  - level: None\n    resources:\n      - group: ""\n        resources: ["events"]\n      - group: events.k8s.io\n        resources: ["events"]\n'
  sed -n '/^rules:/,$p' "$root/audit-policy/policy.yaml" | tail -n +2
} >"$run/policy-without-events.yaml"
apiserver_pid=$(cat "$run/kube-apiserver.pid")
# It would spend a minute retrying audit batches to the stopped kausal.
stop_named kube-apiserver
while kill -0 "$apiserver_pid" 2>/dev/null; do sleep 0.2; done
start_apiserver "$run/policy-without-events.yaml"
# A controller manager still starting when its apiserver went away exits (as
# it can with --only, when no audit scenario ran in between); a real
# cluster's supervisor would start it again, and so does this.
if ! kill -0 "$(cat "$run/kube-controller-manager.pid")" 2>/dev/null \
  || ! kill -0 "$(cat "$run/kube-scheduler.pid")" 2>/dev/null; then
  stop_named kube-controller-manager
  stop_named kube-scheduler
  start_controllers
fi

log "scenarios through the Event watch"
t=$(date +%s)
(cd "$root" && KAUSAL_E2E_PHASE=watch cargo test --test e2e_cluster -- --ignored --test-threads=1 --nocapture --skip audit_ --skip bootstrap_ --skip kubelet_ "${only[@]}")
log "watch scenarios passed in $(( $(date +%s) - t ))s"

# The deploy kit, proven on the real apiserver: every overlay rendered with
# kubectl's kustomize and applied with --dry-run=server, so the apiserver
# validates every object (the namespace is created for real: a dry run of
# namespaced objects needs it). The fixed-IP overlay's address is moved into
# this cluster's service CIDR, as its comment tells a user to.
log "deploy kit: each overlay rendered and applied with --dry-run=server"
kubectl create namespace kausal --dry-run=client -o yaml | kubectl apply -f - >/dev/null
for overlay in host-network fixed-ip kind events-only; do
  kubectl kustomize "$root/deploy/overlays/$overlay" | sed 's/clusterIP: 10\.96\.0\.200/clusterIP: 10.0.0.200/' \
    >"$run/deploy-$overlay.yaml"
  kubectl apply --dry-run=server -f "$run/deploy-$overlay.yaml" | sed "s/^/  $overlay: /"
done

log "all e2e scenarios passed in $(( $(date +%s) - started ))s"
