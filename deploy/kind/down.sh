#!/usr/bin/env bash
# Deletes the kind cluster made by up.sh and its certificates.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cluster="${KIND_CLUSTER_NAME:-kausal}"
kind delete cluster --name "$cluster"
rm -rf "$here/.state/$cluster"
