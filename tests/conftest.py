"""Shared fixtures: a real MySQL-family server, a fresh database per test, and the flaskr-style
`app` / `client` / `runner` trio.

The server is the one named by TEST_DATABASE_HOST/PORT/USER/PASSWORD (an account that may
create databases and users) or else a throwaway server started from the mariadbd/mysqld on
PATH by scripts/localdb.py, the same mechanism `make run` uses. Every test database and user
has a random name and is dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pymysql
import pytest

from service import create_app
from service.settings import load_settings
from tests.support.cli import Runner
from tests.support.database import database_env, migrate_env
from tests.support.localdb import localdb, require_server_binary


@pytest.fixture(scope="session")
def mysql_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Connection parameters of an account that can create databases and users."""
    if os.environ.get("TEST_DATABASE_HOST"):
        yield {
            "host": os.environ["TEST_DATABASE_HOST"],
            "port": int(os.environ.get("TEST_DATABASE_PORT", "3306")),
            "user": os.environ.get("TEST_DATABASE_USER", "root"),
            "password": os.environ.get("TEST_DATABASE_PASSWORD", ""),
        }
        return
    require_server_binary(
        "for the test database (or set TEST_DATABASE_HOST/PORT/USER/PASSWORD to an account "
        "that can create databases)",
        required=True,
    )
    server = localdb.start_server(tmp_path_factory.mktemp("mysql"))
    try:
        yield server.conn_params()
    finally:
        server.stop()


@pytest.fixture
def fresh_database(mysql_admin: dict) -> Iterator[dict[str, str]]:
    """Env vars (DATABASE_*, MIGRATE_DATABASE_*) for a new, empty database with a DML-only web
    user and a DDL migrate user; dropped after the test."""
    with database_env(mysql_admin) as env:
        yield env


@pytest.fixture
def database(fresh_database: dict[str, str]) -> dict[str, str]:
    """Like fresh_database, with every migration applied."""
    migrate_env(fresh_database)
    return fresh_database


@pytest.fixture
def admin_conn(mysql_admin: dict, database: dict[str, str]) -> Iterator[pymysql.Connection]:
    """An admin connection to the test database, for arranging and inspecting rows."""
    conn = pymysql.connect(**mysql_admin, database=database["DATABASE_NAME"], autocommit=True)
    with conn:
        yield conn


@pytest.fixture
def app(database: dict[str, str]):
    return create_app(load_settings(database), multiprocess_metrics=False)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(database: dict[str, str]) -> Runner:
    return Runner(database)
