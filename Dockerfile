# One immutable image per commit: the web process, the migration Job and every admin command
# (`docker run IMAGE migrate|check|seed-demo`) run from it. See docs/container.md.
#
# BASE_IMAGE must provide `python3` with the venv module (python:3.12-slim does; so does a Debian
# bookworm root with python3-venv, which is what `make test-container` builds as a local stand-in
# because no registry is reachable there). Environment-specific trust (proxy CA certificates,
# pip.conf) belongs in the base image or the build args below, never in this file.
ARG BASE_IMAGE=python:3.12-slim

# ---- build: resolve the hash-pinned requirements into a virtualenv --------------------------------
FROM ${BASE_IMAGE} AS build
# Generic pip index override, e.g. for a private mirror. Build-stage only: it never reaches the
# runtime image. Do not put credentials in it (build args are recorded in the build history).
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
COPY requirements.txt /tmp/requirements.txt
# --only-binary: every pin ships a wheel, so no compiler is needed in either stage. pip (and the
# setuptools that older venvs seed) is removed afterwards: the runtime image never installs anything.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir --require-hashes --only-binary=:all: \
        -r /tmp/requirements.txt \
    && /opt/venv/bin/python -m pip uninstall --yes pip setuptools wheel

# ---- runtime: the venv and the code, nothing else -------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it and volume ownership is stable.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY service/ /app/service/
# Byte-compile at build time: the root filesystem is read-only at run time.
RUN /opt/venv/bin/python -m compileall -q /app/service

# Writable paths at run time are tmpfs/emptyDir mounts only: /tmp (PROMETHEUS_MULTIPROC_DIR lives
# under it) and /dev/shm (gunicorn's worker heartbeat files). Nothing else is written.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=5000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/service-metrics \
    WORKER_TMP_DIR=/dev/shm

# Release metadata last, so the layers above stay cached across commits.
ARG APP_VERSION=unknown
ARG GIT_SHA=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="users-service" \
      org.opencontainers.image.description="Twelve-factor Flask + MySQL users API (web, migrate and admin processes)" \
      org.opencontainers.image.version="${APP_VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.created="${BUILD_DATE}"
ENV APP_VERSION=${APP_VERSION} \
    GIT_SHA=${GIT_SHA} \
    BUILD_DATE=${BUILD_DATE}

USER 10001:10001
EXPOSE 5000
# For `docker run` / compose only; Kubernetes ignores HEALTHCHECK and uses the chart's probes. The
# image has no curl, so Python asks /healthz (liveness: never touches the database). Writes nothing.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '5000'), timeout=4)"]
# Exec form throughout: `python -m service web` execs gunicorn, which becomes PID 1 and receives
# SIGTERM directly (no shell in between). Other process types: migrate, check, seed-demo.
ENTRYPOINT ["/opt/venv/bin/python", "-m", "service"]
CMD ["web"]
