# A real node for the e2e cluster: containerd and a kubelet 1.20.2 running
# real containers (busybox, pause), sourced by run.sh. Built by build-node.sh.
#
# run.sh runs the whole test cluster, kausal and the tests inside a network
# namespace of its own when the node is on: the kubelet refuses a loopback
# node IP and Endpoints reject loopback addresses, so the node's address
# ($node_ip) goes on that namespace's own `lo` and exists nowhere else.
#
# What the kubelet changes outside the namespace is saved and restored by
# node_down: three sysctls, the cgroups under $node_cgroup_root, the pod log
# directories under /var/log/pods and /var/log/containers, containerd's shim
# socket directory /run/containerd. Every process is stopped by PID.
#
# These machines need three workarounds (see ../shared/control-plane/kubelet):
# runc cannot lower oom_score_adj (containerd: restrict_oom_score_adj), there
# is no pod network (a loopback-only CNI config; pods use hostNetwork), and
# no registry (images imported from docker archives; imagePullPolicy Never).

node_name=e2e-kubelet
node_ip=10.213.7.1
node_cgroup_root=kausal-e2e
node_taint="kausal.dev/real-node=true:NoSchedule"
node_sysctls=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys
  kernel/keys/root_maxbytes)

# Inside run.sh's own network namespace: loopback up, and the node's address on it.
node_network() {
  ip link set lo up
  ip addr add "$node_ip/32" dev lo
}

node_up() {
  local dir="$run/node" sock="$run/node/containerd/containerd.sock" images="$cache/images"
  mkdir -p "$dir/containerd" "$dir/cni" "$dir/kubelet"
  for s in "${node_sysctls[@]}"; do echo "$s $(cat "/proc/sys/$s")"; done >"$dir/sysctl.saved"
  [ -e /run/containerd ] || touch "$dir/made-run-containerd"
  for d in /var/log/pods /var/log/containers; do
    if [ -d "$d" ]; then ls -A "$d" >"$dir/$(basename "$d").before"; else touch "$dir/made-$(basename "$d")"; fi
  done

  cat >"$dir/containerd/config.toml" <<T
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/kausal-e2e/pause:3.4"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # runc cannot lower oom_score_adj here (CAP_SYS_RESOURCE is withheld).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni"
T
  # Without a CNI config the node stays NotReady; hostNetwork pods never call it.
  echo '{"cniVersion": "0.4.0", "name": "kausal-e2e-lo", "plugins": [{"type": "loopback"}]}' \
    >"$dir/cni/10-loopback.conflist"
  printf 'nameserver 127.0.0.1\noptions ndots:1\n' >"$dir/resolv.conf"
  cat >"$dir/kubelet-config.yaml" <<Y
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: /$node_cgroup_root
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
failSwapOn: false
makeIPTablesUtilChains: false
resolvConf: "$dir/resolv.conf"
clusterDomain: cluster.local
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
volumePluginDir: "$dir/kubelet/volume-plugins"
maxPods: 30
Y

  log "containerd"
  start containerd containerd --config "$dir/containerd/config.toml"
  wait_for containerd ctr --address "$sock" version
  for image in pause busybox; do ctr --address "$sock" -n k8s.io images import "$images/$image.tar" >/dev/null; done

  # The kubelet's cgroup root must exist in every v1 hierarchy before it starts.
  for h in /sys/fs/cgroup/*/; do
    [ "$(stat -fc %T "$h")" = cgroup2fs ] && continue
    mkdir -p "$h$node_cgroup_root"
    if [ -f "$h/cpuset.cpus" ]; then
      cat "$h/cpuset.cpus" >"$h$node_cgroup_root/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h$node_cgroup_root/cpuset.mems"
    fi
  done

  log "kubelet (node $node_name at $node_ip, tainted $node_taint)"
  start kubelet "$bin/kubelet" --config="$dir/kubelet-config.yaml" --kubeconfig="$run/node-$node_name.kubeconfig" \
    --root-dir="$dir/kubelet" --cert-dir="$dir/kubelet/pki" \
    --container-runtime=remote --container-runtime-endpoint="unix://$sock" \
    --pod-infra-container-image=localhost/kausal-e2e/pause:3.4 \
    --hostname-override="$node_name" --node-ip="$node_ip" --register-with-taints="$node_taint" --v=2
  wait_for "node $node_name Ready" sh -c "kubectl get node $node_name \
    -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
}

node_down() {
  local dir="$run/node" sock="$run/node/containerd/containerd.sock" pid
  [ -d "$dir" ] || return 0
  stop_named kubelet
  # The containers and their shims are not our children: kill each task by
  # containerd's own record, then the shims left, by PID.
  if [ -S "$sock" ]; then
    for task in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
    sleep 1
    for task in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks delete -f "$task" >/dev/null 2>&1 || true
    done
  fi
  for pid in $(pgrep -f "containerd-shim-runc-v2 -namespace k8s.io -address $sock" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  stop_named containerd
  # Mounts the kubelet and containerd left (secret volumes, rootfs overlays), deepest first.
  awk -v d="$run/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  if [ -f "$dir/sysctl.saved" ]; then
    while read -r s v; do echo "$v" >"/proc/sys/$s" 2>/dev/null || true; done <"$dir/sysctl.saved"
  fi
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$node_cgroup_root" ] || continue
    find "$h$node_cgroup_root" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  for d in /var/log/pods /var/log/containers; do
    local name; name=$(basename "$d")
    if [ -f "$dir/made-$name" ]; then
      rm -rf "$d"
    elif [ -f "$dir/$name.before" ]; then
      comm -13 <(sort "$dir/$name.before") <(ls -A "$d" | sort) | while read -r entry; do rm -rf "${d:?}/$entry"; done
    fi
  done
  [ -f "$dir/made-run-containerd" ] && rm -rf /run/containerd
  rm -f "$dir/sysctl.saved"
}
