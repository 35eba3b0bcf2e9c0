"""Shared fixtures: a real MySQL-family server, a fresh database per test, and the flaskr-style
`app` / `client` / `runner` trio.

The server is the one named by TEST_DATABASE_HOST/PORT/USER/PASSWORD (an account that may
create databases and users) or else a throwaway server started from the mariadbd/mysqld on
PATH by scripts/localdb.py, the same mechanism `make run` uses. Every test database and user
has a random name and is dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from click.testing import CliRunner, Result

from service import create_app, db
from service.cli import main
from service.migrations import load_migrations, migrate
from service.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import localdb  # noqa: E402


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
    if localdb.find_server_binary() is None:
        pytest.fail(
            "no MySQL-family server: install one (apt-get install mariadb-server) "
            "or set TEST_DATABASE_HOST/PORT/USER/PASSWORD to an account that can create databases"
        )
    server = localdb.start_server(tmp_path_factory.mktemp("mysql"))
    try:
        yield server.conn_params()
    finally:
        server.stop()


def new_database(admin: dict) -> tuple[dict[str, str], list[str], str]:
    tag = secrets.token_hex(4)
    name, web, mig = f"t_{tag}", f"t_{tag}_web", f"t_{tag}_mig"
    web_pw, mig_pw = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    localdb.create_database(admin, name, web, web_pw, mig, mig_pw)
    env = {
        "DATABASE_HOST": str(admin["host"]),
        "DATABASE_PORT": str(admin["port"]),
        "DATABASE_USER": web,
        "DATABASE_PASSWORD": web_pw,
        "DATABASE_NAME": name,
        "MIGRATE_DATABASE_USER": mig,
        "MIGRATE_DATABASE_PASSWORD": mig_pw,
    }
    return env, [web, mig], name


@pytest.fixture
def fresh_database(mysql_admin: dict) -> Iterator[dict[str, str]]:
    """Env vars (DATABASE_*, MIGRATE_DATABASE_*) for a new, empty database with a DML-only web
    user and a DDL migrate user; dropped after the test."""
    env, users, name = new_database(mysql_admin)
    try:
        yield env
    finally:
        localdb.drop_database(mysql_admin, name, users)


def migrate_env(env: dict[str, str]) -> list[int]:
    """Apply every migration with the migrate user of `env`, as `python -m service migrate`."""
    with db.connect(load_settings(env).migrate_database) as conn:
        return migrate(conn, load_migrations())


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


class Runner:
    """Invokes `python -m service …` in-process with a given environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def invoke(self, *args: str, env: dict[str, str] | None = None) -> Result:
        environ: dict[str, str | None] = {**self.env, **(env or {})}
        # CliRunner overlays env on os.environ; blank out the DATABASE_* it must not inherit.
        for key in os.environ:
            if key.startswith(("DATABASE_", "MIGRATE_DATABASE_")) and key not in environ:
                environ[key] = None
        return CliRunner().invoke(main, list(args), env=environ)


@pytest.fixture
def runner(database: dict[str, str]) -> Runner:
    return Runner(database)


free_port = localdb.free_port
