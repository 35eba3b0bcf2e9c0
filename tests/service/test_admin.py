"""service/admin.py through its commands: the programs the chart runs around the web process
(`check --wait`, `wait-for-database`, `sleep`, `copy-source`, `smoke`), as real processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from tests.support.database import migrate_env
from tests.support.localdb import free_port
from tests.support.paths import REPO
from tests.support.web import WebProcess, clean_environ, run_service


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def held_until(
    release: Callable[[], object], *args: str, env: dict[str, str], hold_s: float
) -> tuple[int, str]:
    """Start `python -m service <args>`, require it to be still waiting after `hold_s`, call
    `release` (what it waits for), and return its exit code and output once it ends."""
    waiting = subprocess.Popen(
        [sys.executable, "-m", "service", *args],
        env={**clean_environ(), **env},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(hold_s)
        assert waiting.poll() is None, f"{args[0]} stopped waiting before its release"
        release()
        output, _ = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    return waiting.returncode, output


def test_check_wait_holds_until_the_schema_is_migrated_then_exits_0(fresh_database):
    code, output = held_until(
        lambda: migrate_env(fresh_database),
        *("check", "--wait", "--interval", "0.2"),
        env=fresh_database,
        hold_s=1.5,
    )
    assert code == 0, output
    messages = [e["message"] for e in _events(output)]
    assert messages[0] == "waiting for the schema"
    assert messages[-1] == "ready"


def test_wait_for_database_needs_only_host_and_port_and_returns_once_it_listens():
    port = free_port()
    env = {"DATABASE_HOST": "127.0.0.1", "DATABASE_PORT": str(port)}  # no user, no password
    with socket.socket() as listener:
        code, output = held_until(
            lambda: (listener.bind(("127.0.0.1", port)), listener.listen()),
            *("wait-for-database", "--interval", "0.2"),
            env=env,
            hold_s=1.0,
        )
    assert code == 0, output
    events = _events(output)
    assert events[0]["message"] == "waiting for the database"
    assert events[-1] == events[-1] | {"message": "database listening", "port": port}


def test_wait_for_database_names_a_malformed_port_and_exits_2():
    done = run_service("wait-for-database", env={"DATABASE_HOST": "db", "DATABASE_PORT": "x"})
    assert done.returncode == 2
    [event] = _events(done.stdout)
    assert "DATABASE_PORT" in event["message"]


def test_sleep_waits_the_given_seconds_and_exits_0():
    started = time.monotonic()
    assert run_service("sleep", "1", env={}).returncode == 0
    assert time.monotonic() - started >= 1


def test_copy_source_copies_the_package_into_a_directory_without_touching_its_root(tmp_path):
    target = tmp_path / "source"
    target.mkdir(mode=0o700)  # like an emptyDir's root: not the package's mode
    done = run_service("copy-source", str(target), env={})
    assert done.returncode == 0, done.stdout + done.stderr
    for module in (REPO / "service").glob("*.py"):
        assert (target / module.name).read_bytes() == module.read_bytes()
    assert (target / "migrations").is_dir()
    assert target.stat().st_mode & 0o777 == 0o700


def test_smoke_passes_against_a_serving_web_process(database, tmp_path):
    web = WebProcess(database, tmp_path)
    try:
        done = run_service("smoke", web.url, env={})
    finally:
        web.stop()
    assert done.returncode == 0, done.stdout
    assert [e["path"] for e in _events(done.stdout) if e["message"] == "answered"] == [
        "/readyz",
        "/users",
    ]


def test_smoke_fails_naming_the_path_that_is_not_ready(fresh_database, tmp_path):
    web = WebProcess(fresh_database, tmp_path)  # not migrated: /readyz answers 503
    try:
        done = run_service("smoke", web.url, env={})
    finally:
        web.stop()
    assert done.returncode == 1
    assert _events(done.stdout)[-1]["message"].startswith("smoke test failed: /readyz: 503")


def test_smoke_wait_retries_until_the_release_is_ready(fresh_database, tmp_path):
    web = WebProcess(fresh_database, tmp_path)  # /readyz 503 until the schema is migrated
    try:
        code, output = held_until(
            lambda: migrate_env(fresh_database), "smoke", "--wait", "60", web.url, env={}, hold_s=3
        )
    finally:
        web.stop()
    assert code == 0, output
    events = _events(output)
    assert events[0] == events[0] | {"message": "not ready yet", "path": "/readyz"}
    answered = [e for e in events if e["message"] == "answered"]
    assert answered[0] | {"path": "/readyz", "status": 200, "state": "ready"} == answered[0]
    assert answered[1] | {"path": "/users", "status": 200, "items": 0} == answered[1]
