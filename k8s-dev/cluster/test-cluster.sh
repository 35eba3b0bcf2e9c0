#!/usr/bin/env bash
# make test-cluster: the cluster tier. Builds (cached) and starts the local node, deploys the
# development install as docs/kubernetes.md writes it, runs tests/cluster (its Kubernetes paths)
# and tests/e2e against it, then tears the node down and fails if anything was left behind.
# Needs root. Prints each step's time.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export CLUSTER_TESTS_REQUIRED=1 KUBECONFIG=$PWD/.local/cluster/kubeconfig
step() { printf '\n==> %s (%ss so far)\n' "$*" "$SECONDS"; }

cleanup() {
  rc=$?
  step "cluster-down"
  "$PY" k8s-dev/cluster/node.py down || rc=1
  "$PY" scripts/dockerd.py stop --state /var/lib/users-service-cluster-docker >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT

step "cluster-up"
make --no-print-directory cluster-up
step "cluster-deploy"
make --no-print-directory cluster-deploy
step "tests/cluster and tests/e2e"
E2E_KUBE_CONTEXT=users-local E2E_IMAGE=$(cat .local/cluster/image) \
  "$PY" -m pytest tests/cluster tests/e2e -v -p no:cacheprovider ${PYTEST_ARGS:-}
step "done"
