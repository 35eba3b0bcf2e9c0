"""The MySQL backing service: a small pool of PyMySQL connections per worker process.

No connection is opened at import time or in the application factory (gunicorn forks after
the factory runs); the first query in a worker opens one. The pool holds at most
DATABASE_POOL_SIZE connections: under the gevent worker many requests run at once in one
process, and each would otherwise open its own. A request takes one connection at its first
statement and gives it back when it ends (every path, exceptions included); when all are in
use it waits up to DATABASE_POOL_TIMEOUT, then gets a 503.

A connection that has been idle longer than `idle_check_seconds` is pinged before use;
otherwise no extra round trip is made, and a connection that a query finds dropped is replaced
(and the idle ones with it). Reads are retried once on a new connection; a write is retried
only when it provably never reached the server; nothing is retried after a timeout. After a
failed connect the whole worker fails fast for a while (the reconnect backoff). Every such
failure, and a lost lock conflict, becomes a 503.

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
from flask import Flask, current_app, g, has_app_context
from pymysql.constants import CR, ER

from service.settings import DatabaseSettings, Settings

# Client/server error numbers that mean "this connection is gone", not "this query is wrong".
# The two that pymysql.constants lacks are named here.
ER_CONNECTION_KILLED = 1927  # MariaDB: the server killed the connection
ER_CLIENT_INTERACTION_TIMEOUT = 4031  # MySQL 8: wait_timeout closed the idle connection
_CONNECTION_LOST = {
    0,  # InterfaceError(0, "") on a connection PyMySQL already closed
    ER.SERVER_SHUTDOWN,
    ER_CONNECTION_KILLED,
    CR.CR_SERVER_GONE_ERROR,  # raised while sending: the statement never reached the server
    CR.CR_SERVER_LOST,  # raised while reading: the statement may or may not have run
    CR.CR_SERVER_LOST_EXTENDED,
    ER_CLIENT_INTERACTION_TIMEOUT,
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


class _Lease:
    """One of the pool's slots, held by one request (or by one statement outside a request),
    and the connection it uses, if any yet."""

    __slots__ = ("conn",)

    def __init__(self) -> None:
        self.conn: pymysql.Connection | None = None


_LEASE = "_database_lease"  # flask.g attribute: the request's lease, returned at teardown


class Database:
    """The worker's pool of connections and the two ways to use it: `query` (rows) and
    `execute`. At most `pool_size` connections are open at once (checked out or idle); a
    request holds at most one, from its first statement until its app context ends, so the
    two statements of a PATCH share it. A request that finds every slot taken waits up to
    `pool_timeout` seconds, then gets a 503.

    The lock and the semaphore are made here, in the worker, after gunicorn's gevent worker
    has monkey-patched `threading`: they are then cooperative (a waiting request yields to
    the others, /healthz included); under the dev server's threads they are ordinary ones.
    The lock is only ever held for list and counter updates, never across I/O."""

    def __init__(
        self,
        settings: DatabaseSettings,
        idle_check_seconds: float,
        observe: Observer | None = None,
        *,
        reconnect_backoff: float = 0.0,
        pool_size: int = 1,
        pool_timeout: float = 5.0,
    ) -> None:
        self.settings = settings
        self.idle_check_seconds = idle_check_seconds
        self.observe = observe
        self.reconnect_backoff = reconnect_backoff
        self.pool_size = pool_size
        self.pool_timeout = pool_timeout
        self._slots = threading.BoundedSemaphore(pool_size)
        self._lock = threading.Lock()
        self._idle: list[tuple[pymysql.Connection, float]] = []  # (conn, returned at); LIFO
        self._down_until = 0.0  # no connect attempt before this (monotonic); 0: none failed
        self._down_reason = ""
        self._probing = False  # a connect attempt after a failure is in flight

    # ---------------------------------------------------------------- slots

    def _acquire(self) -> _Lease:
        if not self._slots.acquire(timeout=self.pool_timeout):
            raise DatabaseUnavailable(
                f"no database connection free within {self.pool_timeout:g} s"
                f" (all {self.pool_size} in use)"
            )
        return _Lease()

    def _release(self, lease: _Lease) -> None:
        """Give the slot back; a healthy connection goes back to the idle list."""
        conn, lease.conn = lease.conn, None
        try:
            if conn is not None and conn.open:
                with self._lock:
                    self._idle.append((conn, time.monotonic()))
        finally:
            self._slots.release()

    @contextlib.contextmanager
    def _leased(self) -> Iterator[_Lease]:
        """The current request's lease (taken on its first statement, returned by `release`
        at app-context teardown), or, outside a request, one for this statement alone."""
        if has_app_context() and current_app.extensions.get("database") is self:
            lease = g.get(_LEASE)
            if lease is None:
                lease = self._acquire()
                setattr(g, _LEASE, lease)
            yield lease
            return
        lease = self._acquire()
        try:
            yield lease
        finally:
            self._release(lease)

    def release(self, _exc: BaseException | None = None) -> None:
        """teardown_appcontext: return the request's connection and slot, on every path."""
        lease = g.pop(_LEASE, None)
        if lease is not None:
            self._release(lease)

    # ---------------------------------------------------------------- connections

    def _connect(self) -> pymysql.Connection:
        """Open a connection. After a failure the whole worker answers 503 at once for a
        while instead of trying again: `reconnect_backoff` seconds, and at least as long as
        the failed attempt took; then a single attempt probes the server while every other
        request still fails fast. A database that hangs (rather than refuses) would otherwise
        hold every slot for the whole connect timeout on every request. This bounds the time
        the worker spends waiting on a hung database to half of it."""
        with self._lock:
            if self._probing or time.monotonic() < self._down_until:
                raise DatabaseUnavailable(self._down_reason)
            probe = self._down_until > 0
            self._probing = probe
        started = time.monotonic()
        try:
            conn = connect(self.settings)
        except DatabaseUnavailable as exc:
            failed = time.monotonic()
            wait = max(self.reconnect_backoff, failed - started)
            with self._lock:
                self._down_until = failed + wait
                self._down_reason = f"{exc} (next attempt in {wait:.1f} s)"
            raise
        else:
            with self._lock:
                self._down_until = 0.0
            return conn
        finally:
            if probe:
                with self._lock:
                    self._probing = False

    def _connection(self, lease: _Lease) -> tuple[pymysql.Connection, bool]:
        """The lease's connection (an idle one, pinged if it idled too long, or a new one)
        and whether it was opened just now."""
        if lease.conn is not None:
            return lease.conn, False
        while True:
            with self._lock:
                conn, used = self._idle.pop() if self._idle else (None, 0.0)
            if conn is None:
                break
            if time.monotonic() - used > self.idle_check_seconds:
                try:
                    conn.ping(reconnect=False)
                except pymysql.err.MySQLError:
                    self._discard(conn)
                    continue
            lease.conn = conn
            return conn, False
        lease.conn = self._connect()
        return lease.conn, True

    def _discard(self, conn: pymysql.Connection) -> None:
        """Close a lost connection and every idle one: they share its fate (a restarted,
        unreachable or hung server). A new connection costs one connect; a dead one handed
        to a write would cost the request."""
        with self._lock:
            idle, self._idle = self._idle, []
        for each in (conn, *(c for c, _ in idle)):
            _close(each)

    def _run(self, operation: str, sql: str, args: Sequence[Any], fetch: bool) -> Any:
        with self._leased() as lease:
            for attempt in (1, 2):
                conn, fresh = self._connection(lease)
                started = time.perf_counter()
                try:
                    with conn.cursor() as cursor:
                        cursor.execute(sql, args)
                        result = cursor.fetchall() if fetch else (cursor.rowcount, cursor.lastrowid)
                except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
                    code = _errno(exc)
                    if _lost(exc):
                        lease.conn = None
                        self._discard(conn)
                        # Run it again on a new connection only when that cannot run it twice
                        # or wait twice: a read, or a write that never left; never after a
                        # timeout, and never when the connection was brand new (the server is
                        # really down).
                        retry = (fetch or code == CR.CR_SERVER_GONE_ERROR) and not _timed_out(exc)
                        if attempt == 1 and not fresh and retry:
                            continue
                        raise DatabaseUnavailable(describe(exc)) from exc
                    if code in (ER.LOCK_DEADLOCK, ER.LOCK_WAIT_TIMEOUT):  # rolled back: retryable
                        raise DatabaseUnavailable(describe(exc)) from exc
                    raise
                except pymysql.err.MySQLError:
                    raise  # the server's answer to this statement: the connection is fine
                except BaseException:
                    # Interrupted mid-protocol (a killed greenlet, a bug): state unknown.
                    lease.conn = None
                    _close(conn)
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
    database = Database(
        settings.database,
        settings.idle_check_seconds,
        observe,
        reconnect_backoff=settings.reconnect_backoff,
        pool_size=settings.pool_size,
        pool_timeout=settings.pool_timeout,
    )
    app.extensions["database"] = database
    app.teardown_appcontext(database.release)
