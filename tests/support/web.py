"""The real web process, `python -m service web` (gunicorn, 2 workers), driven as a black box
over HTTP on loopback, and the one-off processes of the same package."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.support.http import Response, request_json
from tests.support.localdb import free_port
from tests.support.wait import wait_until


def clean_environ() -> dict[str, str]:
    """This process's environment without any DATABASE_*/MIGRATE_* a developer may have set."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "MIGRATE_"))}


def run_service(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """A one-off process: `python -m service <args>` with exactly `env` on top of a clean
    environment, as a Job or `docker run` would start it."""
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env={**clean_environ(), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class WebProcess:
    """`python -m service web` on a free loopback port: 2 workers, short timeouts, its metrics
    under `tmp`. stdout goes to `log`; stderr too, unless `separate_stderr` (then `err_log`).
    `overrides` replace any of these settings; `cwd` is the working directory."""

    def __init__(
        self,
        env: dict[str, str],
        tmp: Path,
        *,
        overrides: dict[str, str] | None = None,
        cwd: Path | None = None,
        separate_stderr: bool = False,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"web-{self.port}.log"  # by port: several may share one tmp dir
        self.err_log = tmp / f"web-{self.port}.err" if separate_stderr else self.log
        self.metrics_dir = tmp / f"metrics-{self.port}"
        self.env = {
            **clean_environ(),
            **env,
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            "GRACEFUL_TIMEOUT": "15",
            "DATABASE_CONNECT_TIMEOUT": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
            **(overrides or {}),
        }
        stdout = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", "web"],
            env=self.env,
            cwd=cwd,
            stdout=stdout,
            stderr=self.err_log.open("wb") if separate_stderr else subprocess.STDOUT,
        )
        self.wait_until_serving()

    def wait_until_serving(self, timeout: float = 15) -> None:
        def serving() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            return self.request("GET", "/healthz").status == 200

        wait_until(
            "the web process to serve", serving, timeout, 0.05, errors=(OSError,),
            context=self.log.read_text,
        )  # fmt: skip

    def request(
        self, method: str, path: str, body: dict | None = None, headers: dict | None = None
    ) -> Response:
        """(status, headers, body bytes); always with Content-Type: application/json."""
        headers = {"Content-Type": "application/json", **(headers or {})}
        return request_json(method, self.url + path, body, headers=headers, timeout=30)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()


def block_a_worker(
    web: WebProcess, admin_conn, user_id: int, name: str
) -> tuple[threading.Thread, dict]:
    """Hold a row lock from the test, send a PATCH of that row: one worker is now busy until
    `admin_conn.commit()`. Returns the thread and the dict its response lands in."""
    admin_conn.autocommit(False)
    with admin_conn.cursor() as cursor:
        cursor.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user_id,))
    result: dict = {}
    patch = threading.Thread(
        target=lambda: result.update(
            response=web.request("PATCH", f"/users/{user_id}", {"name": name})
        )
    )
    patch.start()

    def blocked() -> bool:
        with admin_conn.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.processlist "
                "WHERE info LIKE 'UPDATE users SET%%'"
            )
            return bool(cursor.fetchone()[0])

    # until the PATCH is blocked on our row lock
    wait_until("the PATCH to reach the database", blocked, 10, 0.05, errors=())
    return patch, result


def create_user(web: WebProcess, email: str) -> int:
    status, _, body = web.request("POST", "/users", {"name": "Someone", "email": email})
    assert status == 201
    return json.loads(body)["id"]


def metric_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
