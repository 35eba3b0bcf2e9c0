"""A bounded load loop from the host: N threads, at most max_requests and max_seconds, one new
connection per request (so every request goes through kube-proxy's NodePort rules afresh).

Every response that is not the expected status, and every connection error, counts as failed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class LoadStats:
    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, good: bool, what: str) -> None:
        with self.lock:
            if good:
                self.ok += 1
            else:
                self.failed += 1
                if len(self.errors) < 20:
                    self.errors.append(what)


def one_request(host: str, port: int, n: int, run_id: str, timeout: float = 10) -> tuple[bool, str]:
    """Every tenth request a POST (201), else GET /users?limit=1 (200)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        if n % 10 == 0:
            body = json.dumps({"name": "load", "email": f"host-{run_id}-{n}@example.test"})
            conn.request("POST", "/users", body, {"Content-Type": "application/json"})
            want = 201
        else:
            conn.request("GET", "/users?limit=1")
            want = 200
        response = conn.getresponse()
        response.read()
        return response.status == want, f"request {n} -> {response.status}"
    except OSError as exc:
        return False, f"request {n} -> {exc!r}"
    finally:
        conn.close()


@contextlib.contextmanager
def host_load(
    port: int, threads: int = 3, max_seconds: float = 300, max_requests: int = 20000,
    host: str = "127.0.0.1",
) -> Iterator[LoadStats]:  # fmt: skip
    """Load for the duration of the block (and never longer than max_seconds)."""
    stats, stop = LoadStats(), threading.Event()
    run_id, end = secrets.token_hex(4), time.monotonic() + max_seconds
    counter = iter(range(max_requests))
    counter_lock = threading.Lock()

    def worker() -> None:
        while not stop.is_set() and time.monotonic() < end:
            with counter_lock:
                n = next(counter, None)
            if n is None:
                return
            stats.record(*one_request(host, port, n, run_id))

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    try:
        yield stats
    finally:
        stop.set()
        for t in pool:
            t.join(timeout=30)
