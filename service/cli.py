"""The process types, one command each: `python -m service web|migrate|check|seed-demo`, and
the helpers the chart runs around them (`wait-for-database`, `sleep`, `copy-source`, `smoke`).

Each command builds the settings from the environment first; a missing or malformed variable
ends the process with one log line naming it and exit code 2 (in about 0.2 s), before any
network work.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import click
import pymysql

from service import admin, db, migrations
from service.logs import configure_logging
from service.settings import ConfigError, Settings, load_endpoint, load_settings

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


class _Schema:
    """The schema check of `check`: `reason()` is None when the database answers and the
    schema is current (then `version` holds the version found), else why not."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.version = 0

    def reason(self) -> str | None:
        timeout = self.settings.readiness_timeout * 2
        try:
            with db.short_connection(self.settings.database, timeout) as conn:
                status = migrations.status(conn, migrations.load_migrations())
        except db.DatabaseUnavailable as exc:
            return f"database unavailable: {exc}"
        self.version = status.current
        return None if status.ok else f"not ready: {status.reason()}"


@main.command()
@click.option("--wait", is_flag=True, help="Retry until ready instead of failing.")
@click.option(
    "--interval", default=5.0, show_default=True, type=click.FloatRange(0.1, 300), help="Seconds."
)
def check(wait: bool, interval: float) -> None:
    """Exit 0 when config is valid, the database answers and the schema is current."""
    schema = _Schema(_settings())
    try:
        if wait:  # the web pod's init container: held until the migration Job is done
            admin.wait_for_schema(schema.reason, interval)
        elif (reason := schema.reason()) is not None:
            _fail(reason, EXIT_FAILURE)
    except ConfigError as exc:  # e.g. a password file that vanished
        _fail(f"config error: {exc}", EXIT_CONFIG)
    log.info("ready", extra={"schema_version": schema.version})


@main.command("wait-for-database")
@click.option(
    "--interval", default=2.0, show_default=True, type=click.FloatRange(0.1, 300), help="Seconds."
)
def wait_for_database(interval: float) -> None:
    """Return once DATABASE_HOST:DATABASE_PORT accepts TCP connections (needs no credentials)."""
    configure_logging("INFO")
    try:
        host, port = load_endpoint(os.environ)
    except ConfigError as exc:
        _fail(f"config error: {exc}", EXIT_CONFIG)
    admin.wait_for_tcp(host, port, interval)


@main.command()
@click.argument("seconds", type=click.IntRange(0, 3600))
def sleep(seconds: int) -> None:
    """Sleep SECONDS: the pod's preStop drain where the native sleep action is not available."""
    time.sleep(seconds)


@main.command("copy-source")
@click.argument("target", type=click.Path(exists=True, file_okay=False, path_type=Path))
def copy_source(target: Path) -> None:
    """Copy this service package into TARGET (web.reload: the emptyDir skaffold syncs into)."""
    configure_logging("INFO")
    copied = admin.copy_entries(Path(__file__).resolve().parent, target)
    log.info("source copied", extra={"target": str(target), "entries": copied})


@main.command()
@click.argument("base_url")
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(1, 3600),
    help="Retry error statuses too, for up to this many seconds (default: fail at once).",
)
def smoke(base_url: str, wait_s: float | None) -> None:
    """GET /readyz and /users under BASE_URL (helm test): exit 0 when both answer 200."""
    configure_logging("INFO")
    url = base_url.rstrip("/")
    if wait_s is None:
        reason = admin.smoke(url)
    else:
        reason = admin.smoke(url, deadline_s=wait_s, until_ready=True)
    if reason is not None:
        _fail(f"smoke test failed: {reason}", EXIT_FAILURE)


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
