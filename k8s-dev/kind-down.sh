#!/usr/bin/env bash
# make kind-down: delete the local kind cluster (and everything deployed into it, MySQL data included).
set -euo pipefail
# shellcheck source=k8s-dev/lib.sh
source "$(dirname "$0")/lib.sh"
require kind

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  kind delete cluster --name "$CLUSTER_NAME"
else
  echo "k8s-dev: no kind cluster named '$CLUSTER_NAME'; nothing to do"
fi
