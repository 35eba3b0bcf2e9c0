"""bench/variants.py: each service worker-model variant really runs `python -m service web` under
the worker class it names (GUNICORN_CMD_ARGS overrides the service's config file), and serves."""

from __future__ import annotations

import os

import pytest

from bench import servers, variants
from bench.database import Database


@pytest.fixture
def bench_db(mysql_admin, database) -> Database:
    return Database(
        admin=mysql_admin,
        server_pids=[],
        name=database["DATABASE_NAME"],
        web_user=database["DATABASE_USER"],
        web_password=database["DATABASE_PASSWORD"],
        migrate_user=database["MIGRATE_DATABASE_USER"],
        migrate_password=database["MIGRATE_DATABASE_PASSWORD"],
    )


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "MIGRATE_"))}


def test_the_tree_configures_a_worker_model_the_bench_knows(bench_db):
    assert variants.configured_worker_model(base_env() | bench_db.env()) in variants.WORKER_MODELS


@pytest.mark.slow
@pytest.mark.parametrize("model", list(variants.WORKER_MODELS))
def test_service_variant_runs_under_the_worker_class_it_names(model, bench_db, tmp_path):
    expected = {"sync": "sync", "gthread": "gthread", "gevent": variants.gevent_worker_class()}
    variant = variants.build(2, base_env(), bench_db)[f"service-{model}"]
    server, timings = servers.cold_start(variant, tmp_path, "/users")
    try:
        assert servers.get_status(server.port, "/users?limit=20") == 200
        assert servers.worker_class(server) == expected[model]
    finally:
        servers.stop(server)
    print(f"{model}: first /healthz after {timings['healthz']:.2f} s")
