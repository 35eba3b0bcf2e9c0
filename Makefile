# One entry point for every task; see README.md. Targets create what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_ROOT_USER_ACTION := ignore

.PHONY: help venv run test test-service test-chart test-container lint format tools lock \
        kind-up deploy kind-down clean bench cluster-build cluster-up cluster-deploy cluster-down \
        test-cluster factors

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements.txt
	$(PY) -m pip install -q --require-hashes -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create .venv with the pinned runtime and dev dependencies

run: $(STAMP) ## serve the API on :5000 (starts a throwaway local MariaDB/MySQL when DATABASE_HOST is unset)
	$(PY) scripts/localdb.py run

test: $(STAMP) tools ## the whole suite: lint, service, chart/skaffold, e2e (skips without a cluster)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

factors: $(STAMP) tools ## the twelve factors' proofs (docs/twelve-factor.md), then a 12-row pass/fail table
	$(PY) -m tests.twelve_factor -q

test-service: $(STAMP) ## only the service tests (no tools needed)
	$(PY) -m pytest tests/service

test-container: $(STAMP) tools ## build and run the real image under a private dockerd (root; takes minutes)
	scripts/test-container.sh

lint: $(STAMP) ## ruff lint + format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP) ## apply ruff fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# The benchmark's own venv: requirements.txt (what the service runs with) + requirements-bench.txt
# (FastAPI, uvicorn, matplotlib; compiled with -c requirements.txt, so no shared pin differs).
# Separate from .venv, which stays exactly what the tests and CI use. BENCH_ARGS=--quick etc.
BENCH_VENV := bench/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat requirements.txt requirements-bench.txt | sha256sum | cut -c1-16)

$(BENCH_STAMP): requirements.txt requirements-bench.txt
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --require-hashes -r requirements.txt
	$(BENCH_VENV)/bin/python -m pip install -q --require-hashes -r requirements-bench.txt
	@rm -f $(BENCH_VENV)/.installed-* && touch $@

bench: $(BENCH_STAMP) ## the service, its worker models, the bare app, FastAPI: req/s, p50/p99, CPU per request
	@command -v wrk >/dev/null || { test "$$(id -u)" = 0 && \
	  { apt-get install -y -q wrk || { apt-get update -q && apt-get install -y -q wrk; }; }; } || \
	  { echo "bench: wrk is missing: install the Debian package wrk (apt-get install wrk)" >&2; exit 2; }
	$(BENCH_VENV)/bin/python -m bench.run $(BENCH_ARGS)

tools: ## helm, kubectl, kubernetes-validate, checkov, yamllint, hadolint, compose into .tools/
	PYTHON=$(PYTHON) scripts/install-tools.sh

lock: $(STAMP) ## re-pin requirements*.txt (with hashes) from requirements*.in
	$(VENV)/bin/pip install -q pip-tools
	$(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras -o requirements.txt requirements.in
	$(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras -o requirements-dev.txt requirements-dev.in
	$(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras -o requirements-tools.txt requirements-tools.in
	$(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras -o requirements-bench.txt requirements-bench.in

kind-up: ## create the local kind cluster (k8s-dev/kind.yaml)
	k8s-dev/kind-up.sh

deploy: ## build the image, load it into kind, helm upgrade --install --wait
	k8s-dev/deploy.sh

kind-down: ## delete the local kind cluster
	k8s-dev/kind-down.sh



cluster-build: ## build the local cluster's binaries and images from source (cached in /var/cache)
	$(PYTHON) k8s-dev/cluster/build.py all

cluster-up: cluster-build ## a single-node Kubernetes here (root): .local/cluster/kubeconfig, context users-local
	k8s-dev/cluster/prereqs.sh
	$(PYTHON) k8s-dev/cluster/node.py up

cluster-deploy: $(STAMP) tools ## build the image, import it into the node, helm upgrade --install users --wait
	$(PY) k8s-dev/cluster/deploy.py

cluster-down: ## stop the local cluster; leaves no process, mount, netns, interface or rule behind
	$(PYTHON) k8s-dev/cluster/node.py down

test-cluster: $(STAMP) tools ## the cluster tier: up, deploy, docs/kubernetes.md's paths, e2e, down (root)
	k8s-dev/cluster/test-cluster.sh

clean: ## remove virtualenvs, tools and local data
	rm -rf $(VENV) .tools .local .pytest_cache .ruff_cache
