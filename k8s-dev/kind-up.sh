#!/usr/bin/env bash
# make kind-up: create the local kind cluster "users-dev" (context kind-users-dev) from k8s-dev/kind.yaml.
# Idempotent: an existing cluster is reused.
set -euo pipefail
# shellcheck source=k8s-dev/lib.sh
source "$(dirname "$0")/lib.sh"
require kind docker kubectl

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  echo "k8s-dev: kind cluster '$CLUSTER_NAME' already exists"
else
  kind create cluster --name "$CLUSTER_NAME" --config "$REPO_ROOT/k8s-dev/kind.yaml" --wait 120s
fi
"$KUBECTL" --context "$KUBE_CONTEXT" cluster-info
"$KUBECTL" --context "$KUBE_CONTEXT" wait --for=condition=Ready nodes --all --timeout=120s
echo "k8s-dev: cluster ready; next: make deploy (the app will answer on http://127.0.0.1:30080)"
