"""The process types, one command each: `python -m service web|migrate|check|seed-demo`.

Each command builds the settings from the environment first; a missing or malformed variable
ends the process with one log line naming it and exit code 2 (in about 0.2 s), before any
network work.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

import click
import pymysql

from service import db, migrations
from service.logs import configure_logging
from service.settings import ConfigError, Settings, load_settings

log = logging.getLogger("service")

EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _fail(message: str, code: int) -> NoReturn:
    log.error(message)
    sys.exit(code)


def _settings() -> Settings:
    configure_logging("INFO")  # until LOG_LEVEL is known
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        _fail(f"config error: {exc}", EXIT_CONFIG)
    configure_logging(settings.log_level)
    return settings


def _with_database(action: Callable[[], None]) -> None:
    try:
        action()
    except db.DatabaseUnavailable as exc:
        _fail(f"database unavailable: {exc}", EXIT_FAILURE)
    except ConfigError as exc:  # e.g. a password file that vanished
        _fail(f"config error: {exc}", EXIT_CONFIG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The users service. Configuration comes from the environment only (see README)."""


@main.command()
def web() -> None:
    """Serve HTTP with gunicorn on $PORT (exec: gunicorn receives the signals)."""
    settings = _settings()
    metrics_dir = settings.metrics_dir
    try:
        metrics_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(
            f"config error: PROMETHEUS_MULTIPROC_DIR is not writable ({exc.strerror})", EXIT_CONFIG
        )
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # before gunicorn imports metrics
    sys.stdout.flush()
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:service.gunicorn_conf"]
    os.execv(sys.executable, argv)  # noqa: S606 - fixed argv, replaces this process


@main.command()
def migrate() -> None:
    """Apply pending schema migrations (idempotent, serialised by an advisory lock)."""
    settings = _settings()

    def run() -> None:
        known = migrations.load_migrations()
        conn = db.connect(settings.migrate_database)
        try:
            applied = migrations.migrate(conn, known)
        except migrations.MigrationError as exc:
            _fail(f"migration refused: {exc}", EXIT_FAILURE)
        except pymysql.err.MySQLError as exc:
            _fail(f"migration failed: {db.describe(exc)}", EXIT_FAILURE)
        finally:
            conn.close()
        log.info(
            "schema is current" if not applied else "migrations applied",
            extra={"applied": applied, "version": max((m.version for m in known), default=0)},
        )

    _with_database(run)


@main.command()
def check() -> None:
    """Exit 0 when config is valid, the database answers and the schema is current."""
    settings = _settings()

    def run() -> None:
        with db.short_connection(settings.database, settings.readiness_timeout * 2) as conn:
            status = migrations.status(conn, migrations.load_migrations())
        if not status.ok:
            _fail(f"not ready: {status.reason()}", EXIT_FAILURE)
        log.info("ready", extra={"schema_version": status.current})

    _with_database(run)


@main.command("seed-demo")
@click.option("--count", default=10, show_default=True, type=click.IntRange(1, 10_000))
def seed_demo(count: int) -> None:
    """Insert demo users demo-N@example.com (existing ones are left alone)."""
    settings = _settings()

    def run() -> None:
        conn = db.connect(settings.database)
        try:
            with conn.cursor() as cursor:
                inserted = cursor.executemany(
                    "INSERT IGNORE INTO users (name, email, created_at, updated_at) "
                    "VALUES (%s, %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                    [(f"Demo User {i}", f"demo-{i}@example.com") for i in range(1, count + 1)],
                )
        except pymysql.err.MySQLError as exc:
            _fail(f"seeding failed: {db.describe(exc)}", EXIT_FAILURE)
        finally:
            conn.close()
        log.info("demo users seeded", extra={"inserted": inserted, "requested": count})

    _with_database(run)
