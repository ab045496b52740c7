#!/usr/bin/env bash
# The Dockerfile's build stage without a Docker engine (these machines have
# none): copy exactly the files its COPY lines name, as .dockerignore lets
# them into the context, into a clean directory, build there the way the
# stage does, and check that the binary needs no shared library the runtime
# image (distroless/cc-debian12: glibc and libgcc_s) lacks.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/kausal-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Each `COPY <src>... <dest>` of the build stage (the ones without --from).
mapfile -t copies < <(awk '/^FROM /{stage++} stage==1 && /^COPY / && !/--from/ {for (i=2; i<NF; i++) print $i}' "$root/Dockerfile")
[ ${#copies[@]} -gt 0 ] || { echo "no COPY lines in the Dockerfile's build stage" >&2; exit 1; }
for src in "${copies[@]}"; do
  # .dockerignore is an allowlist: everything the stage copies must be let in.
  if ! grep -qxE "!${src%/}/?" "$root/.dockerignore"; then
    echo ".dockerignore does not let $src into the build context" >&2; exit 1
  fi
  cp -r "$root/$src" "$work/"
done
echo "context: ${copies[*]}"

# The stage's RUN line, in the copy; dependencies compiled by earlier CI
# stages are reused through CARGO_TARGET_DIR (the crate itself is rebuilt).
run=$(awk '/^FROM /{stage++} stage==1 && /^RUN /{sub(/^RUN /, ""); print}' "$root/Dockerfile")
echo "build: $run"
(cd "$work" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" bash -c "$run")
bin="${CARGO_TARGET_DIR:-$root/target}/release/kausal"

# The shared libraries the binary asks for, against what the runtime image ships.
allowed='^(libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1)$'
needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
echo "needs: $(echo $needed)"
bad=$(echo "$needed" | grep -vE "$allowed" || true)
if [ -n "$bad" ]; then
  echo "the binary needs libraries the distroless/cc image lacks: $bad" >&2; exit 1
fi
"$bin" --version
