"""An HTTPS (CONNECT) proxy for the package index only, for builds on a guarded docker bridge.

`docker compose up --build` builds on the daemon's default bridge network, and nothing from that
network may leave the machine (scripts/dockerd.py's guard rules, no IP forwarding). pip inside
that build reaches the index the standard way for a machine behind a proxy: the docker client's
`proxies` setting (~/.docker/config.json) hands HTTPS_PROXY to the build (BuildKit keeps proxy
variables out of the cache key and the image history), pointing at this proxy on the bridge's
own host address. The proxy opens the connections itself, from the host, like a
`docker build --network host` does, and only to the index hosts on port 443: anything else gets a
403 and is recorded. TLS stays end to end (the proxy relays bytes; it never sees plain text).

Bounded: at most MAX_CONNECTIONS connections in all, each closed after MAX_SECONDS.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from urllib.parse import urlsplit

PYPI_HOSTS = frozenset({"pypi.org", "files.pythonhosted.org"})
MAX_CONNECTIONS = 400
MAX_SECONDS = 300
HEADER_LIMIT = 8192


def index_hosts(*urls: str) -> set[str]:
    """PyPI's hosts plus the host of every index URL given (e.g. the machine's pip settings)."""
    hosts = set(PYPI_HOSTS)
    for url in urls:
        for one in url.split():
            if urlsplit(one).hostname:
                hosts.add(urlsplit(one).hostname)
    return hosts


class IndexProxy:
    """CONNECT proxy listening on `address` (a bridge's host address), random port."""

    def __init__(self, address: str, allowed: set[str]) -> None:
        self.allowed = allowed
        self.served: list[str] = []  # host:port of every relayed connection
        self.refused: list[str] = []  # request lines refused
        self._server = socket.create_server((address, 0))
        self._server.settimeout(0.5)
        self.address, self.port = self._server.getsockname()[:2]
        self._stop = threading.Event()
        self._count = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._count += 1
            if self._count > MAX_CONNECTIONS:
                conn.close()
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            head = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in head and len(head) < HEADER_LIMIT:
                    chunk = conn.recv(1024)
                    if not chunk:
                        return
                    head += chunk
            line = head.split(b"\r\n", 1)[0].decode(errors="replace")
            words = line.split()
            host, _, port = words[1].rpartition(":") if len(words) == 3 else ("", "", "")
            if words[:1] != ["CONNECT"] or host not in self.allowed or port != "443":
                self.refused.append(line)
                with contextlib.suppress(OSError):
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            try:
                upstream = socket.create_connection((host, 443), timeout=30)
            except OSError:
                with contextlib.suppress(OSError):
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            self.served.append(f"{host}:443")
            with upstream:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                rest = head.split(b"\r\n\r\n", 1)[1]
                if rest:
                    upstream.sendall(rest)
                self._relay(conn, upstream)

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        peer = {a: b, b: a}
        with selectors.DefaultSelector() as sel:
            for s in (a, b):
                s.settimeout(30)  # a recv after select returns at once; a stalled send gives up
                sel.register(s, selectors.EVENT_READ)
            while not self._stop.is_set() and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=1):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = source.recv(65536)
                        if not data:
                            return
                        peer[source].sendall(data)
                    except OSError:
                        return
