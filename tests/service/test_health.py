"""service/health.py: liveness ignores the database, readiness depends on it and on the schema."""

from __future__ import annotations

from service import create_app
from service.settings import load_settings
from tests.support.localdb import free_port


def unreachable_app(env: dict[str, str], port: int):
    settings = load_settings({**env, "DATABASE_PORT": str(port), "DATABASE_CONNECT_TIMEOUT": "1"})
    return create_app(settings, multiprocess_metrics=False)


def test_healthz_is_200_without_touching_the_database(database):
    client = unreachable_app(database, free_port()).test_client()
    assert client.get("/healthz").status_code == 200


def test_readyz_is_200_with_the_schema_version_when_migrated(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "schema_version": 1}


def test_readyz_is_503_with_the_reason_before_migrations(fresh_database):
    client = create_app(load_settings(fresh_database), multiprocess_metrics=False).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert "expects 1" in response.get_json()["detail"]


def test_database_down_gives_readyz_503_and_api_503_never_a_hang(database):
    client = unreachable_app(database, free_port()).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "database unavailable" in ready.get_json()["detail"]
    api = client.get("/users")
    assert api.status_code == 503
    assert api.headers["Retry-After"] == "1"
    assert api.mimetype == "application/problem+json"
    assert database["DATABASE_PASSWORD"] not in api.get_data(as_text=True)


def test_version_reports_build_info(database):
    env = {**database, "APP_VERSION": "1.2.3", "GIT_SHA": "abc1234", "BUILD_DATE": "2026-11-28"}
    client = create_app(load_settings(env), multiprocess_metrics=False).test_client()
    assert client.get("/version").get_json() == {
        "version": "1.2.3",
        "git_sha": "abc1234",
        "build_date": "2026-11-28",
    }
