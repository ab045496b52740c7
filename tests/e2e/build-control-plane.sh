#!/usr/bin/env bash
# Builds (once) kube-apiserver, kube-controller-manager and kube-scheduler
# 1.20.2 from Debian's `kubernetes` source package with Debian's Go, fully
# offline, and caches them in $KAUSAL_E2E_CACHE/bin. Later runs reuse them.
#
# Why this route: these machines reach only the package registries, and
# Debian's source package ships the full upstream tree with vendor/. Upstream
# 1.20 builds in GOPATH mode through `make WHAT=cmd/...` (module mode fails
# with Go 1.19). The vendored modern-go/reflect2 1.0.1 crashes under
# Go >= 1.18 (SIGSEGV on the first YAML or pretty-printed response), so it is
# replaced with Debian's reflect2 1.0.2 before building.
set -euo pipefail

cache="${KAUSAL_E2E_CACHE:-$HOME/.cache/kausal-e2e}"
bin="$cache/bin"
stamp="$bin/.built-1.20.2"
log() { printf '[build-control-plane] %s\n' "$*"; }

if [ -f "$stamp" ]; then
  log "reusing binaries in $bin"
  exit 0
fi

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# A deb-src entry for the same Debian mirror as the deb entries, if missing.
if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  log "adding deb-src entries"
  src_list=/etc/apt/sources.list.d/kausal-e2e-src.sources
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed -n '/^Types: deb$/,/^$/p' /etc/apt/sources.list.d/debian.sources | sed 's/^Types: deb$/Types: deb-src/' \
      | sudo_if_needed tee "$src_list" >/dev/null
  else
    grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' | sudo_if_needed tee /etc/apt/sources.list.d/kausal-e2e-src.list >/dev/null
  fi
fi

export DEBIAN_FRONTEND=noninteractive
packages=(golang-go etcd-server etcd-client dpkg-dev rsync golang-github-modern-go-reflect2-dev openssl curl)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

mkdir -p "$cache/src" "$bin"
tree=$(find "$cache/src" -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
if [ -z "$tree" ]; then
  log "fetching Debian's kubernetes source package"
  sudo_if_needed apt-get update -qq
  (cd "$cache/src" && apt-get source -qq kubernetes >/dev/null)
  tree=$(find "$cache/src" -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
fi
[ -n "$tree" ] || { log "no kubernetes source tree in $cache/src"; exit 1; }

reflect2="$tree/vendor/github.com/modern-go/reflect2"
if ! grep -qs 'kausal-e2e: reflect2 1.0.2' "$reflect2/.replaced"; then
  log "replacing vendored reflect2 with Debian's 1.0.2"
  keep=$(mktemp -d)
  cp "$reflect2/LICENSE" "$keep/" 2>/dev/null || true
  cp "$reflect2/BUILD" "$keep/" 2>/dev/null || true
  rm -rf "$reflect2" && mkdir -p "$reflect2"
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$reflect2/"
  cp "$keep"/* "$reflect2/" 2>/dev/null || true
  echo 'kausal-e2e: reflect2 1.0.2' >"$reflect2/.replaced"
fi

export GOPROXY=off GOFLAGS= CGO_ENABLED=0 HOME="$cache/home"
mkdir -p "$HOME"
cd "$tree"
start=$(date +%s)
log "make generated_files (about 1 min)"
make generated_files >"$cache/build.log" 2>&1 || { tail -40 "$cache/build.log"; exit 1; }
for component in kube-apiserver kube-controller-manager kube-scheduler; do
  log "make WHAT=cmd/$component"
  make WHAT="cmd/$component" >>"$cache/build.log" 2>&1 || { tail -40 "$cache/build.log"; exit 1; }
  cp "_output/bin/$component" "$bin/"
done
touch "$stamp"
log "built in $(( $(date +%s) - start ))s; binaries in $bin"
