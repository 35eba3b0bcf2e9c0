"""Client load against a server on loopback, from threads over raw sockets: the clients the
worker, shutdown and `docker stop` tests drive, and the HTTP/1.1 response reader they share.
Every loop ends when its stop event is set; `running_clients` sets it and joins the threads."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Client = Callable[[int, threading.Event, Counter, int], None]


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response (Content-Length framed, or until EOF)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed after {len(data)} bytes of the response head")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", -1))
    while length < 0 or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            if length < 0:
                break
            raise EOFError("connection closed inside the response body")
        body += chunk
    return status, headers, body


def connection_per_request(port: int, stop: threading.Event, counts: Counter, worker: int) -> None:
    """One client: a new connection per request, alternately GET /users and POST. Counts
    `status N` per response, `refused` per refused connect and `lost (Error)` per request that
    was sent and then reset or cut off."""
    n = 0
    while not stop.is_set():
        n += 1
        if n % 2:
            request = b"GET /users?limit=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        else:
            body = json.dumps({"name": "Load", "email": f"l{worker}-{n}@example.com"}).encode()
            request = (
                b"POST /users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except (ConnectionRefusedError, TimeoutError):
            counts["refused"] += 1
            time.sleep(0.01)
            continue
        try:
            sock.settimeout(30)
            sock.sendall(request)
            status = read_response(sock)[0]
            counts[f"status {status}"] += 1
        except (OSError, EOFError) as exc:
            counts[f"lost ({type(exc).__name__})"] += 1
        finally:
            sock.close()


def keep_alive(port: int, stop: threading.Event, counts: Counter, worker: int) -> None:
    """One keep-alive client sending GET /users and POST as fast as it is answered; counts each
    response under its status code."""
    conn, n = http.client.HTTPConnection("127.0.0.1", port, timeout=30), 0
    while not stop.is_set():
        n += 1
        if n % 3:
            conn.request("GET", "/users?limit=20")
        else:
            body = json.dumps({"name": "Busy", "email": f"b{worker}-{n}@example.com"})
            conn.request("POST", "/users", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        counts[response.status] += 1
    conn.close()


@contextmanager
def running_clients(
    client: Client, port: int, count: int, *, join_timeout: float = 40
) -> Iterator[Counter]:
    """Run `count` threads of `client` against `port` for the duration of the block; yields the
    shared counter. Leaving the block stops the clients and waits for each one."""
    stop, counts = threading.Event(), Counter()
    threads = [
        threading.Thread(target=client, args=(port, stop, counts, i), daemon=True)
        for i in range(count)
    ]
    try:
        for thread in threads:
            thread.start()
        yield counts
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=join_timeout)
