"""Start, time and stop one web server process per variant.

Each server runs in its own session (process group) with stdout and stderr in a log file, so
a Ctrl-C reaches only the benchmark, which then stops every server itself: SIGTERM, and
SIGKILL to the whole group after STOP_TIMEOUT.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pathlib
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from bench import procstat
from bench.database import ROOT, localdb
from bench.variants import Variant

HOST = "127.0.0.1"
READY_TIMEOUT = 30.0  # seconds a server gets to answer its first 200
STOP_TIMEOUT = 10.0  # seconds after SIGTERM before SIGKILL
POLL_INTERVAL = 0.005


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: pathlib.Path

    def pids(self) -> list[int]:
        """The master and every process below it (the workers)."""
        return procstat.descendants(self.process.pid)


def start(variant: Variant, workdir: pathlib.Path) -> Server:
    port = localdb.free_port()
    log = workdir / f"{variant.name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            variant.argv(port),
            env=variant.env(port, workdir),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # its own process group: a Ctrl-C here reaches only us
        )
    return Server(process, port, log)


def stop(server: Server) -> None:
    process = server.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the group we created at start
            process.wait(STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # orphaned workers of a killed master, if any


def get_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def get_json(port: int, path: str, timeout: float = 5.0) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, body[:200]
    finally:
        conn.close()


def check_same_answers(running: dict[str, Server], paths: list[str]) -> None:
    """Every variant answers 200 and the same JSON as the first one on each path: the benchmark
    compares the cost of the same answers, not of different ones."""
    names = list(running)
    problems = []
    for path in paths:
        answers = {name: get_json(running[name].port, path) for name in names}
        reference = answers[names[0]]
        for name, answer in answers.items():
            if answer[0] != 200 or answer != reference:
                problems.append(f"{name} GET {path}: {answer!r:.300} (vs {names[0]})")
    if problems:
        raise RuntimeError("variants disagree:\n" + "\n".join(problems))


def tail(server: Server, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(server.log.read_text(errors="replace").splitlines()[-lines:])
    return ""


def worker_class(server: Server) -> str:
    """The worker class gunicorn says it uses ("Using worker: gthread"), from the server's log:
    proof that a GUNICORN_CMD_ARGS override took effect. "-" for other servers."""
    with contextlib.suppress(OSError):
        found = re.search(r"Using worker: ([\w.]+)", server.log.read_text(errors="replace"))
        if found:
            return found.group(1)
    return "-"


def wait_for_200(server: Server, path: str, started: float) -> float:
    """Seconds from `started` to the first 200 on `path`; polls every 5 ms."""
    deadline = started + READY_TIMEOUT
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}: {tail(server)}")
        if get_status(server.port, path) == 200:
            return time.perf_counter() - started
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"no 200 on {path} within {READY_TIMEOUT}s: {tail(server)}")


def cold_start(variant: Variant, workdir: pathlib.Path, user_path: str) -> tuple[Server, dict]:
    """Start the server and time its first 200s: on its liveness path (if it has one) and on
    GET /users/<id> (the first request that needs the database)."""
    started = time.perf_counter()
    server = start(variant, workdir)
    try:
        timings = {}
        if variant.health_path is not None:
            timings["healthz"] = wait_for_200(server, variant.health_path, started)
        timings["first_get"] = wait_for_200(server, user_path, started)
    except BaseException:
        stop(server)
        raise
    return server, timings


def start_timed(variant: Variant, starts: int, user_path: str, workdir: pathlib.Path) -> tuple:
    """Time `starts` cold starts; the last server is left running and returned."""
    timings = []
    for attempt in range(starts):
        server, timing = cold_start(variant, workdir, user_path)
        timings.append(timing)
        if attempt < starts - 1:
            stop(server)
    return server, timings
