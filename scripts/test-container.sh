#!/usr/bin/env bash
# `make test-container`: build the real images and run them, for real, under a private dockerd.
#   1. a private dockerd (scripts/dockerd.py: bridge users-docker0 + iptables, state in a temp dir,
#      guard rules so nothing from its ranges leaves the machine), stopped by PID on exit
#   2. the stand-in for python:3.12-slim (scripts/standin_base.py, cached in
#      /var/cache/users-service-standin) and the mysql:8.4 stand-in (images/mysql-standin)
#   3. ./Dockerfile built against the stand-in (--network host: pip needs the index), cold and warm
#   4. tests/container with CONTAINER_IMAGE set: the image, the mysql stand-in, `docker compose up
#      --build` (tests/container/test_compose.py), hadolint and `docker compose config`
# The database of test_image.py is the throwaway server tests/conftest.py starts on loopback (the
# containers use --network host), or TEST_DATABASE_HOST/PORT/USER/PASSWORD if set.
# Needs root. Where it cannot run it says so loudly and exits 0 (a visible skip, not a pass);
# with CI=true (as .ci/run sets) or CONTAINER_TESTS_REQUIRED=1 that skip is a failure.
# Knobs: CONTAINER_IMAGE_TAG, STANDIN_CACHE_DIR, STANDIN_MIRROR, PYTEST_ARGS, TEST_DATABASE_*.
set -euo pipefail
{ # parsed whole before it runs: editing this file during a run cannot change that run
cd "$(dirname "$0")/.."
START=$SECONDS
PY=${PY:-$PWD/.venv/bin/python}
IMAGE_TAG=${CONTAINER_IMAGE_TAG:-users-service:test}
step() { printf '\n==> [%4ss] %s\n' "$((SECONDS - START))" "$*" >&2; }
skip() {
  printf '\n!!! make test-container SKIPPED: %s\n!!! The images were NOT built or tested. This is not a pass.\n\n' "$*" >&2
  if [ "${CONTAINER_TESTS_REQUIRED:-0}" = 1 ] || [ "${CI:-}" = true ]; then
    echo "CI=true or CONTAINER_TESTS_REQUIRED=1: failing instead of skipping" >&2
    exit 1
  fi
  exit 0
}

[ "$(id -u)" = 0 ] || skip "needs root (it runs its own dockerd and debootstrap)"
[ "$(uname -s)" = Linux ] || skip "needs Linux"
[ -x "$PY" ] || { echo "missing $PY: run 'make venv'" >&2; exit 1; }
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v iptables >/dev/null; then
  command -v apt-get >/dev/null || skip "dockerd/debootstrap/iptables missing and no apt-get to install them"
  step "installing docker.io, debootstrap and iptables"
  policy=/usr/sbin/policy-rc.d # the package must not start a system dockerd (it makes docker0)
  if [ -e $policy ]; then policy=; else printf '#!/bin/sh\nexit 101\n' >$policy && chmod 0755 $policy; fi
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io debootstrap iptables
  if [ -n "$policy" ]; then rm -f "$policy"; fi
fi
if [ ! -e .tools/bin/hadolint ] || [ ! -e .tools/bin/docker-compose ]; then scripts/install-tools.sh; fi

WORK=$(mktemp -d /tmp/users-service-ct.XXXXXX)
# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
  local rc=$?
  set +e
  step "stopping the private dockerd"
  "$PY" scripts/dockerd.py stop "$WORK/docker" || rc=1
  if [ "$rc" != 0 ] && [ -f "$WORK/docker/dockerd.log" ]; then tail -n 20 "$WORK/docker/dockerd.log" >&2; fi
  rm -rf "$WORK"
  step "done (exit $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "starting a private dockerd under $WORK/docker"
env_lines=$("$PY" scripts/dockerd.py start "$WORK/docker") || skip "no usable private dockerd here (reason above)"
eval "$env_lines"
"$DOCKER" version --format 'client {{.Client.Version}}, daemon {{.Server.Version}}' >&2

step "stand-in base (python:3.12-slim)"
t0=$SECONDS
STANDIN_IMAGE=$("$PY" scripts/standin_base.py import --tag python:3.12-slim)
STANDIN_SECS=$((SECONDS - t0))

step "mysql:8.4 stand-in (Debian's MariaDB)"
t0=$SECONDS
MYSQL_IMAGE=$("$PY" scripts/standin_base.py mysql)
MYSQL_SECS=$((SECONDS - t0))

GIT_SHA=$(git --no-optional-locks rev-parse HEAD 2>/dev/null || echo unknown)
build_args=(
  --build-arg "BASE_IMAGE=$STANDIN_IMAGE"
  --build-arg "APP_VERSION=$(git --no-optional-locks describe --tags --always --dirty 2>/dev/null || echo unknown)"
  --build-arg "GIT_SHA=$GIT_SHA" --build-arg "BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
)
PIP_INDEX=$("$PY" scripts/standin_base.py pip-index-url)
if [ -n "$PIP_INDEX" ]; then build_args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX"); fi
build() {
  local progress=()
  if [ "$DOCKER_BUILDKIT" = 1 ]; then progress=(--progress plain); fi
  "$DOCKER" build --network host "${progress[@]}" "${build_args[@]}" --tag "$IMAGE_TAG" . \
    >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; return 1; }
}
step "building $IMAGE_TAG (cold: empty daemon cache), then again (warm)"
t0=$SECONDS; build; BUILD_SECS=$((SECONDS - t0))
t0=$SECONDS; build; WARM_SECS=$((SECONDS - t0))
"$DOCKER" history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE_TAG" | cut -c1-150 >&2

step "tests/container against $IMAGE_TAG, $MYSQL_IMAGE"
t0=$SECONDS
rc=0
# shellcheck disable=SC2086 # PYTEST_ARGS is a space-separated list of extra options
CONTAINER_IMAGE=$IMAGE_TAG CONTAINER_BASE_IMAGE=$STANDIN_IMAGE CONTAINER_MYSQL_IMAGE=$MYSQL_IMAGE \
  "$PY" -m pytest tests/container -v -p no:cacheprovider --durations=5 ${PYTEST_ARGS:-} || rc=$?
TEST_SECS=$((SECONDS - t0))

size() { "$DOCKER" image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.1f MiB", $1 / 1048576 }'; }
cat >&2 <<EOF

==> make test-container summary
    stand-in base         ${STANDIN_SECS}s, $(size "$STANDIN_IMAGE") ($STANDIN_IMAGE)
    mysql stand-in        ${MYSQL_SECS}s, $(size "$MYSQL_IMAGE") ($MYSQL_IMAGE = mysql:8.4)
    image build (cold)    ${BUILD_SECS}s
    image build (warm)    ${WARM_SECS}s
    image size            $(size "$IMAGE_TAG") (base: $(size "$STANDIN_IMAGE"))
    container tests       ${TEST_SECS}s (exit $rc)
    total so far          $((SECONDS - START))s (the daemon's stop follows)
EOF
exit "$rc"
}
