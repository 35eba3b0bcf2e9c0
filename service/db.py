"""The MySQL backing service: one PyMySQL connection per worker, reused across requests.

No connection is opened at import time or in the application factory (gunicorn forks after
the factory runs); the first query in a worker opens it. A connection that has been idle
longer than `idle_check_seconds` is pinged before use; otherwise no extra round trip is made,
and a connection that a query finds dropped is replaced. Reads are retried once on a new
connection; a write is retried only when it provably never reached the server.

Every connection runs in autocommit mode: each statement is its own transaction, so no
request leaves a transaction (and its metadata locks) open between requests.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pymysql
from flask import Flask, current_app

from service.settings import DatabaseSettings, Settings

# Client/server error numbers that mean "this connection is gone", not "this query is wrong".
CR_SERVER_GONE_ERROR = 2006  # raised while sending: the statement never reached the server
CR_SERVER_LOST = 2013  # raised while reading: the statement may or may not have run
_CONNECTION_LOST = {
    0,  # InterfaceError(0, "") on a connection PyMySQL already closed
    1053,  # ER_SERVER_SHUTDOWN
    1927,  # MariaDB ER_CONNECTION_KILLED
    CR_SERVER_GONE_ERROR,
    CR_SERVER_LOST,
    2055,  # CR_SERVER_LOST_EXTENDED
    4031,  # MySQL 8 ER_CLIENT_INTERACTION_TIMEOUT (wait_timeout)
}

Observer = Callable[[str, float], None]


class DatabaseUnavailable(Exception):
    """The database cannot be reached or the connection broke; the request gets a 503."""


def connect(settings: DatabaseSettings, **overrides: Any) -> pymysql.Connection:
    """Open a connection with explicit timeouts, utf8mb4, UTC and (with a CA) verified TLS."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "user": settings.user,
        "password": settings.password.reveal(),
        "database": settings.name,
        "charset": "utf8mb4",
        "connect_timeout": settings.connect_timeout,
        "read_timeout": settings.read_timeout,
        "write_timeout": settings.write_timeout,
        "autocommit": True,
        "init_command": "SET time_zone = '+00:00'",
    }
    if settings.ssl_ca is not None:
        options |= {
            "ssl_ca": str(settings.ssl_ca),
            "ssl_verify_cert": True,
            "ssl_verify_identity": True,
        }
    options |= overrides
    try:
        return pymysql.connect(**options)
    except (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError) as exc:
        raise DatabaseUnavailable(describe(exc)) from exc


def describe(exc: BaseException) -> str:
    """A one-line reason for logs and 503 bodies: the server's error text, never credentials."""
    if isinstance(exc, pymysql.err.MySQLError) and len(exc.args) >= 2:
        return f"({exc.args[0]}) {exc.args[1]}"
    return str(exc) or type(exc).__name__


def _lost(exc: pymysql.err.MySQLError) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    return (
        isinstance(exc, pymysql.err.OperationalError)
        and exc.args[:1]
        and exc.args[0] in (_CONNECTION_LOST)
    )


def _close(conn: pymysql.Connection) -> None:
    with contextlib.suppress(pymysql.err.Error):  # "Already closed" after a lost connection
        conn.close()


class Database:
    """The worker's connection and the two ways to use it: `query` (rows) and `execute`."""

    def __init__(
        self,
        settings: DatabaseSettings,
        idle_check_seconds: float,
        observe: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.idle_check_seconds = idle_check_seconds
        self.observe = observe
        self._local = threading.local()  # sync workers have one thread; the dev server has more

    def _connection(self) -> tuple[pymysql.Connection, bool]:
        """The current connection and whether it was opened just now."""
        conn: pymysql.Connection | None = getattr(self._local, "conn", None)
        now = time.monotonic()
        if conn is not None and now - self._local.used > self.idle_check_seconds:
            try:
                conn.ping(reconnect=False)
            except pymysql.err.MySQLError:
                self.discard()
                conn = None
        if conn is None:
            conn = connect(self.settings)
            self._local.conn, self._local.used = conn, now
            return conn, True
        self._local.used = now
        return conn, False

    def discard(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            _close(conn)

    def _run(self, operation: str, sql: str, args: Sequence[Any], fetch: bool) -> Any:
        for attempt in (1, 2):
            conn, fresh = self._connection()
            started = time.perf_counter()
            try:
                with conn.cursor() as cursor:
                    cursor.execute(sql, args)
                    result = cursor.fetchall() if fetch else (cursor.rowcount, cursor.lastrowid)
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
                if not _lost(exc):
                    raise
                self.discard()
                never_sent = exc.args[:1] == (CR_SERVER_GONE_ERROR,)
                if attempt == 1 and not fresh and (fetch or never_sent):
                    continue
                raise DatabaseUnavailable(describe(exc)) from exc
            if self.observe is not None:
                self.observe(operation, time.perf_counter() - started)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def query(self, sql: str, args: Sequence[Any] = ()) -> tuple[tuple[Any, ...], ...]:
        """Run a SELECT and return its rows (tuples, in column order)."""
        return self._run("select", sql, args, fetch=True)

    def execute(self, operation: str, sql: str, args: Sequence[Any] = ()) -> tuple[int, int]:
        """Run a write statement; returns (rowcount, lastrowid). `operation` labels the metric."""
        return self._run(operation, sql, args, fetch=False)


@contextlib.contextmanager
def short_connection(settings: DatabaseSettings, timeout: float) -> Iterator[pymysql.Connection]:
    """A connection of its own with every timeout set to `timeout`: for probes and checks, so
    they never wait behind (or break) the request path's connection."""
    conn = connect(settings, connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout)
    try:
        yield conn
    except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
        raise DatabaseUnavailable(describe(exc)) from exc
    finally:
        _close(conn)


def get_db() -> Database:
    return current_app.extensions["database"]


def init_app(app: Flask, settings: Settings, observe: Observer | None = None) -> None:
    app.extensions["database"] = Database(settings.database, settings.idle_check_seconds, observe)
