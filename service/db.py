"""The MySQL backing service: one PyMySQL connection per worker, reused across requests.

No connection is opened at import time or in the application factory (gunicorn forks after
the factory runs); the first query in a worker opens it. A connection that has been idle
longer than `idle_check_seconds` is pinged before use; otherwise no extra round trip is made,
and a connection that a query finds dropped is replaced. Reads are retried once on a new
connection; a write is retried only when it provably never reached the server; nothing is
retried after a timeout. Every such failure, and a lost lock conflict, becomes a 503.

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
    """The database cannot be reached, the connection broke, a statement timed out or lost a
    lock conflict: the request gets a 503 with Retry-After, never a 500."""


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


# The statement lost a lock conflict and was rolled back: a 503, and the client may try again.
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213


def _errno(exc: pymysql.err.MySQLError) -> int | None:
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else None


def _lost(exc: pymysql.err.MySQLError) -> bool:
    """The connection is gone (not: the statement was wrong)."""
    return isinstance(exc, pymysql.err.InterfaceError) or _errno(exc) in _CONNECTION_LOST


def _timed_out(exc: pymysql.err.MySQLError) -> bool:
    """PyMySQL reports a read/write timeout as a lost connection; its cause says so."""
    return isinstance(exc.__context__, TimeoutError)


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
        reconnect_backoff: float = 0.0,
    ) -> None:
        self.settings = settings
        self.idle_check_seconds = idle_check_seconds
        self.observe = observe
        self.reconnect_backoff = reconnect_backoff
        self._local = threading.local()  # sync workers have one thread; the dev server has more

    def _connect(self) -> pymysql.Connection:
        """Open the worker's connection. After a failure, answer 503 at once for a while
        instead of trying again: `reconnect_backoff` seconds, and at least as long as the
        failed attempt took. A database that hangs (rather than refuses) would otherwise hold
        every worker for the whole connect timeout on every request, and the liveness probe,
        queued behind them, would get a healthy pod restarted. This bounds the time a worker
        spends waiting on a hung database to half of it."""
        if time.monotonic() < getattr(self._local, "down_until", 0.0):
            raise DatabaseUnavailable(self._local.down_reason)
        started = time.monotonic()
        try:
            return connect(self.settings)
        except DatabaseUnavailable as exc:
            failed = time.monotonic()
            wait = max(self.reconnect_backoff, failed - started)
            self._local.down_until = failed + wait
            self._local.down_reason = f"{exc} (next attempt in {wait:.1f} s)"
            raise

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
            conn = self._connect()
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
                code = _errno(exc)
                if _lost(exc):
                    self.discard()
                    # Run it again on a new connection only when that cannot run it twice or
                    # wait twice: a read, or a write that never left; never after a timeout,
                    # and never when the connection was brand new (the server is really down).
                    retry = (fetch or code == CR_SERVER_GONE_ERROR) and not _timed_out(exc)
                    if attempt == 1 and not fresh and retry:
                        continue
                    raise DatabaseUnavailable(describe(exc)) from exc
                if code in (ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT):
                    raise DatabaseUnavailable(describe(exc)) from exc
                raise
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
    app.extensions["database"] = Database(
        settings.database,
        settings.idle_check_seconds,
        observe,
        reconnect_backoff=settings.reconnect_backoff,
    )
