"""Test databases on the server of the `mysql_admin` fixture (tests/conftest.py): each with a
random name, and dropped again with its users."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import pymysql

from service import db
from service.migrations import load_migrations, migrate
from service.settings import load_settings
from tests.support.localdb import localdb


def new_database(
    admin: dict, prefix: str = "t", host: str | None = None
) -> tuple[dict[str, str], list[str], str]:
    """A new database `<prefix>_<random>` with a DML-only web user and a DDL migrate user (as
    scripts/localdb.py makes them): (DATABASE_*/MIGRATE_DATABASE_* env, users, name). `host`
    replaces the admin's host in the env (e.g. 127.0.0.1 for containers)."""
    tag = secrets.token_hex(4)
    name, web, mig = f"{prefix}_{tag}", f"{prefix}_{tag}_web", f"{prefix}_{tag}_mig"
    web_pw, mig_pw = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    localdb.create_database(admin, name, web, web_pw, mig, mig_pw)
    env = {
        "DATABASE_HOST": host or str(admin["host"]),
        "DATABASE_PORT": str(admin["port"]),
        "DATABASE_USER": web,
        "DATABASE_PASSWORD": web_pw,
        "DATABASE_NAME": name,
        "MIGRATE_DATABASE_USER": mig,
        "MIGRATE_DATABASE_PASSWORD": mig_pw,
    }
    return env, [web, mig], name


@contextlib.contextmanager
def database_env(admin: dict, prefix: str = "t", host: str | None = None) -> Iterator[dict]:
    """new_database's env for the block; the database and its users are dropped after it."""
    env, users, name = new_database(admin, prefix, host)
    try:
        yield env
    finally:
        localdb.drop_database(admin, name, users)


@contextlib.contextmanager
def empty_database(
    admin: dict, name: str, users: list[str], charset: str | None = None
) -> Iterator[pymysql.cursors.Cursor]:
    """CREATE DATABASE `name` and nothing else (as the mysql image's MYSQL_DATABASE does): the
    block gets an admin cursor to apply grants with; afterwards the database and `users` (which
    that SQL created) are dropped."""
    admin_conn = pymysql.connect(**admin, autocommit=True)
    try:
        with admin_conn.cursor() as cursor:
            suffix = f" CHARACTER SET {charset}" if charset else ""
            cursor.execute(f"CREATE DATABASE `{name}`{suffix}")
            yield cursor
    finally:
        with admin_conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            for user in users:
                cursor.execute("DROP USER IF EXISTS %s@'%%'", (user,))
        admin_conn.close()


def migrate_env(env: dict[str, str]) -> list[int]:
    """Apply every migration with the migrate user of `env`, as `python -m service migrate`."""
    with db.connect(load_settings(env).migrate_database) as conn:
        return migrate(conn, load_migrations())
