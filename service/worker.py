"""The web process's gunicorn worker: gunicorn's gevent worker, plus three things it lacks.

- Errors from gunicorn's HTTP parser leave as `application/problem+json` (RFC 9457) with the
  status gunicorn chose, instead of gunicorn's HTML page; the connection then closes
  gracefully (FIN, then a short drain), so the client reads the answer instead of a reset.
- A request head that is not complete within WEB_KEEPALIVE seconds ends the connection: with a
  408 problem document when part of a head had arrived, silently when the connection was idle
  (a 408 on an idle keep-alive connection races the client's next request and would be read as
  its answer).
- SIGTERM drains without losing a connection the kernel already completed: see `_drain_servers`.

gunicorn imports this module in the master (to resolve `worker_class`); everything here that
changes process state (monkey-patching, `gunicorn.util.write_error`, the hub's error printer)
happens in `Worker.patch`, after the fork, in the worker only.
"""

from __future__ import annotations

import array
import contextlib
import json
import logging
import os
import socket
import struct
import sys
import time
from functools import partial
from http import HTTPStatus
from typing import Any

import gevent
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn import util
from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkExtension, InvalidChunkSize
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import GeventWorker

from service.settings import load_settings

log = logging.getLogger("service.worker")

PROBLEM_JSON = "application/problem+json"
_DETAIL_LIMIT = 200  # gunicorn's messages quote the client's bytes: keep the echo short
_LINGER_SECONDS = 1.0  # after an error answer, drain the client's unread bytes this long at most
_SETTLE_SECONDS = 0.5  # after closing the door, handshakes already under way may still complete
_SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>; Python's socket module has no constant for it


_BODY_FRAMING = (ChunkMissingTerminator, InvalidChunkExtension, InvalidChunkSize)


class RequestHeadTimeout(Exception):
    """The client did not send a complete request head within WEB_KEEPALIVE seconds."""


def problem_bytes(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response carrying an RFC 9457 problem document; it closes the
    connection, because after a framing error nobody knows where the next request starts.
    The title is the status's own phrase: gunicorn passes "Bad Request" along with its 501."""
    with contextlib.suppress(ValueError):
        reason = HTTPStatus(status).phrase
    body = {
        "type": "about:blank",
        "title": reason,
        "status": status,
        "detail": (detail or reason)[:_DETAIL_LIMIT],
    }
    payload = json.dumps(body, ensure_ascii=True).encode("ascii")
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + payload


def write_problem(sock: Any, status: int, reason: str, mesg: str) -> None:
    """Replacement for `gunicorn.util.write_error` (same signature): gunicorn's
    `Worker.handle_error` has already mapped the exception to status, reason and message."""
    try:
        sock.sendall(problem_bytes(status, reason, mesg))
    finally:
        util.close_graceful(sock, timeout=_LINGER_SECONDS, max_drain=256 * 1024)


def syn_drop_filter() -> tuple[bytes, array.array]:
    """A classic-BPF socket filter that drops TCP segments with SYN set and ACK clear.

    Attached to a listening socket, the kernel stops starting handshakes (new clients' SYNs go
    unanswered; they are refused once the socket closes), while the final ACK of a handshake
    already under way still passes, so that connection completes and lands in the accept queue,
    where we serve it. A filter that drops everything would strand those half-open handshakes:
    the client believes it is connected, sends its request, and is reset when the socket closes.
    On a TCP socket the filter sees the TCP header at offset 0. Returns the `struct sock_fprog`
    bytes and the array holding the program they point to (keep it alive until setsockopt)."""
    program = [
        (0x30, 0, 0, 13),  # ldb [13]          the flags byte
        (0x54, 0, 0, 0x12),  # and #(SYN|ACK)
        (0x15, 0, 1, 0x02),  # jeq #SYN, drop, keep
        (0x06, 0, 0, 0),  # drop: ret #0
        (0x06, 0, 0, 0xFFFFFFFF),  # keep: ret #-1 (the whole segment)
    ]
    code = array.array("B", b"".join(struct.pack("HBBI", *i) for i in program))
    return struct.pack("HP", len(program), code.buffer_info()[0]), code


def close_the_door(listener: socket.socket) -> None:
    """No new handshakes on this listening socket (shared by every worker: one struct sock).
    Raises PermissionError without CAP_NET_ADMIN: Linux (6.18 here) refuses socket filters on
    TCP sockets to unprivileged processes, though it allows them on UDP ones."""
    fprog, _code = syn_drop_filter()
    listener.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


class _ListenerName:
    """What a connection's handler needs of its listener: the address. gunicorn's handler asks
    the listening socket itself, so a connection accepted just before the listener closed
    failed with EBADF once its greenlet ran, and the client was reset."""

    def __init__(self, listener: socket.socket) -> None:
        self._name = listener.getsockname()

    def getsockname(self) -> Any:
        return self._name


class _CountingSocket:
    """The client socket, counting bytes received since the last complete request head, so a
    head timeout can tell a slow request (408) from an idle connection (close silently)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.pending = 0
        self.served = 0

    def recv(self, size: int, *flags: int) -> bytes:
        data = self._sock.recv(size, *flags)
        self.pending += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class Worker(GeventWorker):
    """gunicorn's gevent worker with problem+json parser errors, request-head timeouts and a
    shutdown that serves every connection the kernel accepted. Configured in gunicorn_conf."""

    server_stopping = False  # set on SIGTERM: the whole server stops, not just this worker

    def patch(self) -> None:
        # Warnings (gevent's MonkeyPatchWarning among them) become JSON log lines instead of
        # plain text on stderr; see gunicorn_conf for why patching here, after fork, is right.
        logging.captureWarnings(True)
        super().patch()
        util.write_error = write_problem

    def run(self) -> None:
        """GeventWorker.run with `_drain_servers` in place of its immediate listener close."""
        gevent.get_hub().print_exception = _log_greenlet_error  # not a plain-text stderr dump
        ssl_args = {"ssl_context": ssl_context(self.cfg)} if self.cfg.is_ssl else {}
        servers = []
        for listener in self.sockets:
            listener.setblocking(1)
            server = StreamServer(
                listener,
                handle=partial(self.handle, _ListenerName(listener)),
                spawn=Pool(self.worker_connections),
                **ssl_args,
            )
            if self.cfg.workers > 1:
                server.max_accept = 1  # spread connections across workers
            server.start()
            servers.append(server)
        while self.alive:
            self.notify()
            gevent.sleep(0.1)
        _drain_servers(self, servers, load_settings(os.environ).shutdown_delay)

    def timeout_ctx(self) -> gevent.Timeout:
        return gevent.Timeout(self.cfg.keepalive, RequestHeadTimeout)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        super().handle(listener, _CountingSocket(client), addr)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        sock.pending = 0
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            sock.pending = 0  # body bytes the app read are not the next request's head
            sock.served += 1

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, RequestHeadTimeout):
            if getattr(client, "pending", 0):
                log.info(
                    "request head timed out",
                    extra={"client": (addr or ("",))[0], "timeout_s": self.cfg.keepalive},
                )
                with contextlib.suppress(OSError):
                    write_problem(client, 408, "Request Timeout", _head_timeout_detail(self))
            return
        if req is None and getattr(client, "served", 0) and isinstance(exc, _BODY_FRAMING):
            # gunicorn found the framing error while discarding the body of a request the app
            # did not read, after its response went out: a second response would be taken as
            # the answer to the client's next request. Close instead.
            log.warning(
                "bad body framing after the response; closing",
                extra={"client": (addr or ("",))[0], "error": str(exc)[:_DETAIL_LIMIT]},
            )
            return
        super().handle_error(req, client, addr, exc)

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM. When the whole server stops (the master has closed its copy of the
        listening socket), readiness fails at once and `_drain_servers` closes the door. When
        only this worker retires (HUP, TTOU: the master and the other workers go on), it just
        stops accepting, as gunicorn does: a filter on the shared socket would lock them out."""
        self.server_stopping = not parent_holds(self.sockets)
        if self.server_stopping:
            _mark_draining()
        self.alive = False


def parent_holds(listeners: list[Any]) -> bool:
    """Whether the master still has one of these listening sockets open. gunicorn's master
    closes its copies before it signals the workers to stop, and only then. If /proc cannot
    tell, assume it does: a worker that wrongly closed the door would stop the whole server,
    one that wrongly did not only falls back to gunicorn's own drain. (An old master stopped
    after a USR2 re-exec also closes its copy while the new one shares the socket: this
    service does not use USR2.)"""
    try:
        wanted = {f"socket:[{os.fstat(sock.fileno()).st_ino}]" for sock in listeners}
        fd_dir = f"/proc/{os.getppid()}/fd"
        return any(os.readlink(f"{fd_dir}/{fd}") in wanted for fd in os.listdir(fd_dir))
    except OSError:
        return True


def _head_timeout_detail(worker: Worker) -> str:
    return f"The request head was not complete within {worker.cfg.keepalive:g} s."


def _mark_draining() -> None:
    # Looked up at call time: with WEB_RELOAD the app runs from a freshly imported package.
    health = sys.modules.get("service.health")
    if health is not None:
        health.mark_draining()


def _log_greenlet_error(context: Any, kind: Any, value: Any, tb: Any) -> None:
    log.error(
        "greenlet failed",
        exc_info=(kind, value, tb) if isinstance(value, BaseException) else None,
        extra={"context": repr(context)},
    )


def _drain_servers(worker: Worker, servers: list[Any], delay: float) -> None:
    """Shutdown that loses no connection the kernel completed (steps 1-3 only when the whole
    server stops, see `Worker.handle_exit`).

    The master has closed its copy of the listening socket; the workers' copies keep it open,
    and closing the last one resets every connection still in its accept queue.
    1. For `delay` seconds keep serving as usual (readiness already fails, so load balancers
       that poll it can take this endpoint out first).
    2. Close the door where the kernel allows it: a filter on the shared socket stops new
       handshakes (clients are refused once the socket closes, never reset), and handshakes
       begun before it get `_SETTLE_SECONDS` to complete. A filter on a TCP socket needs
       CAP_NET_ADMIN, which the hardened image and pod drop; without it this step is skipped.
    3. Accept everything queued, in one tight loop without yielding, and close the listener
       the moment accept() reports EAGAIN. Behind a closed door nothing can arrive after that;
       without one, a connection completing in the microseconds between the last accept and
       the close is still reset (under load: rarely; measured in tests/service/test_worker.py).
    4. Requests in flight and idle keep-alive connections finish (responses now carry
       `Connection: close`), bounded by GRACEFUL_TIMEOUT.
    """
    deadline = time.monotonic() + max(0, worker.cfg.graceful_timeout - 1)  # inside the master's
    if worker.server_stopping:
        _wait(worker, min(delay, max(0.0, deadline - time.monotonic() - 1)))
        try:
            for server in servers:
                close_the_door(server.socket)
            _wait(worker, _SETTLE_SECONDS)
        except OSError as exc:  # EPERM without CAP_NET_ADMIN
            log.info("no socket filter: closing at an empty accept queue", extra={"why": str(exc)})
        for server in servers:
            _accept_all_then_close(server)
    for server in servers:
        server.close()
    while time.monotonic() < deadline:
        if all(server.pool.free_count() == server.pool.size for server in servers):
            return
        _wait(worker, 0.05)
    log.warning("graceful timeout: stopping the remaining connections", extra={"pid": worker.pid})
    for server in servers:
        server.stop(timeout=1)


def _accept_all_then_close(server: StreamServer) -> None:
    """Hand every queued connection to a handler greenlet, then close the listener, with no
    yield in between (spawning into a pool with room does not yield)."""
    server.stop_accepting()
    server.socket.setblocking(False)
    while not server.full():
        accepted = server.do_read()  # None once accept() reports EAGAIN
        if accepted is None:
            break
        accepted[0].setblocking(True)
        server.do_handle(*accepted)
    server.close()


def _wait(worker: Worker, seconds: float) -> None:
    end = time.monotonic() + seconds
    while True:
        worker.notify()
        left = end - time.monotonic()
        if left <= 0:
            gevent.sleep(0)  # always yield: the accepting greenlets must run
            return
        gevent.sleep(min(left, 0.5))
