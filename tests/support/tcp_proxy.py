"""A TCP proxy on 127.0.0.1 that tests switch between the ways a database fails.

Modes (`proxy.set_mode(...)` returns once every relay and the listener have applied it):
- "pass": relay bytes both ways, as if the client talked to the server directly;
- "refuse": the listener is closed (a new connection is refused) and every existing one is
  reset (RST), as when the server process or its host is gone;
- "hang": new connections are accepted and then hear nothing; existing relays stall (nothing
  is read or forwarded either way), as with a frozen server or a blackholed network;
- "pass" again restores: the listener reopens on the same port, stalled relays resume, and
  connections accepted during the hang are connected upstream.

Threads only (an accept loop and one relay per connection), each polling its mode every
`TICK` seconds, so nothing here blocks the test for longer than that.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time

TICK = 0.02
MODES = ("pass", "refuse", "hang")


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN: the peer's next read or write fails at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener: socket.socket | None = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._mode, self._generation = "pass", 0
        self._seen: dict[int, int] = {}  # thread ident -> generation it has applied
        self._held: list[socket.socket] = []  # accepted during a hang, not yet relayed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.accepted = 0
        self._spawn(self._accept_loop)

    # ------------------------------------------------------------------ control

    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str, timeout: float = 5) -> None:
        assert mode in MODES, mode
        with self._lock:
            self._mode, self._generation = mode, self._generation + 1
            generation = self._generation
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                live = [t.ident for t in self._threads if t.is_alive()]
                if all(self._seen.get(ident, -1) >= generation for ident in live):
                    return
            time.sleep(TICK / 2)
        raise AssertionError(f"the proxy did not switch to {mode!r} within {timeout} s")

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        for sock in self._held:
            sock.close()

    # ------------------------------------------------------------------ internals

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        return listener

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _observe(self) -> str:
        with self._lock:
            self._seen[threading.get_ident()] = self._generation
            return self._mode

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            mode = self._observe()
            if mode == "refuse" and self._listener is not None:
                self._listener.close()
                self._listener = None
                for sock in self._held:
                    _reset(sock)
                self._held.clear()
            elif mode != "refuse" and self._listener is None:
                self._listener = self._listen(self.port)
            if mode == "pass":
                for sock in self._held:
                    self._relay_to_upstream(sock)
                self._held.clear()
            if self._listener is None:
                time.sleep(TICK)
                continue
            readable, _, _ = select.select([self._listener], [], [], TICK)
            if not readable:
                continue
            client, _ = self._listener.accept()
            self.accepted += 1
            if self._mode == "hang":
                self._held.append(client)
            else:
                self._relay_to_upstream(client)

    def _relay_to_upstream(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=2)
        except OSError:
            _reset(client)
            return
        self._spawn(self._relay, client, upstream)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self._stop.is_set():
                mode = self._observe()
                if mode == "refuse":
                    _reset(client)
                    _reset(upstream)
                    return
                if mode == "hang":
                    time.sleep(TICK)
                    continue
                readable, _, _ = select.select(list(peers), [], [], TICK)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()
