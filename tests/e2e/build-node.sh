#!/usr/bin/env bash
# Builds (once) what a real node of the e2e cluster needs, beside the control
# plane in $KAUSAL_E2E_CACHE: the kubelet 1.20.2 from the same Debian source
# tree (build-control-plane.sh prepares it), Debian's containerd, runc,
# busybox-static and CNI plugins, and two local images packed as docker
# archives, since these machines reach no registry:
#   - pause: static, from the kubernetes tree's build/pause/linux/pause.c;
#   - busybox: busybox-static and its applet links.
# Later runs reuse all of it.
set -euo pipefail

cache="${KAUSAL_E2E_CACHE:-$HOME/.cache/kausal-e2e}"
bin="$cache/bin"
images="$cache/images"
stamp="$bin/.built-kubelet-1.20.2"
log() { printf '[build-node] %s\n' "$*"; }
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

"$(dirname "${BASH_SOURCE[0]}")/build-control-plane.sh"

packages=(containerd runc busybox-static containernetworking-plugins iproute2)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed apt-get update -qq
  sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

tree=$(find "$cache/src" -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
if [ ! -f "$stamp" ]; then
  # The same Go cache as the control plane's build: the packages they share
  # (client-go, apimachinery, the API types) are not compiled again.
  export GOPROXY=off GOFLAGS= CGO_ENABLED=0 HOME="$cache/home"
  start=$(date +%s)
  log "make WHAT=cmd/kubelet"
  (cd "$tree" && make WHAT=cmd/kubelet >>"$cache/build.log" 2>&1) || { tail -40 "$cache/build.log"; exit 1; }
  cp "$tree/_output/bin/kubelet" "$bin/"
  touch "$stamp"
  log "kubelet built in $(( $(date +%s) - start ))s"
fi

# A docker archive: manifest.json, the image config, and one layer.
pack() { # ref rootfs-dir config-json out-file
  local ref=$1 rootfs=$2 config=$3 out=$4 work diff id
  work=$(mktemp -d)
  tar --numeric-owner --owner=0 --group=0 --mtime=2021-01-01 --sort=name -C "$rootfs" -cf "$work/layer.tar" .
  diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  mkdir "$work/$diff" && mv "$work/layer.tar" "$work/$diff/layer.tar"
  printf '{"architecture":"amd64","os":"linux","created":"2021-01-01T00:00:00Z","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}\n' \
    "$config" "$diff" >"$work/config.json"
  id=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  mv "$work/config.json" "$work/$id.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' "$id" "$ref" "$diff" >"$work/manifest.json"
  tar -C "$work" -cf "$out" manifest.json "$id.json" "$diff"
  rm -rf "$work"
}

mkdir -p "$images"
if [ ! -f "$images/pause.tar" ]; then
  root=$(mktemp -d)
  gcc -Os -Wall -Werror -static -DVERSION=v3.4-kausal-e2e -o "$root/pause" "$tree/build/pause/linux/pause.c"
  strip "$root/pause"
  pack localhost/kausal-e2e/pause:3.4 "$root" '{"Entrypoint":["/pause"],"User":"65535:65535"}' "$images/pause.tar"
  rm -rf "$root"
  log "pause image packed"
fi
if [ ! -f "$images/busybox.tar" ]; then
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/root"
  cp /usr/bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  pack localhost/kausal-e2e/busybox:1.35 "$root" '{"Cmd":["sh"],"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}' \
    "$images/busybox.tar"
  rm -rf "$root"
  log "busybox image packed"
fi
log "node binaries and images in $cache"
