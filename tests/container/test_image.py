"""The real image, run for real: `make test-container` builds it under a private dockerd and
runs this module with CONTAINER_IMAGE set. Every container uses --network host, a read-only
root filesystem with tmpfs /tmp, no capabilities, and the image's own non-root user.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pymysql
import pytest

from tests.support.docker import docker
from tests.support.http import request_json
from tests.support.load import connection_per_request, running_clients
from tests.support.localdb import free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

IMAGE = os.environ.get("CONTAINER_IMAGE", "")
APP_UID = 10001

if not IMAGE:
    pytest.skip(
        "CONTAINER_IMAGE is not set: the image is built and run by `make test-container` "
        "(root; starts a private dockerd), not by plain `make test`",
        allow_module_level=True,
    )

# A read-only root filesystem; the only writable paths are tmpfs mounts. A --tmpfs mount is
# root-owned, hence uid/gid: the app user must be able to create its metrics dir under /tmp.
HARDENED = [
    "--network",
    "host",
    "--read-only",
    "--tmpfs",
    f"/tmp:rw,nosuid,nodev,noexec,size=64m,uid={APP_UID},gid={APP_UID},mode=0700",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
]


def env_flags(env: dict[str, str]) -> list[str]:
    return [flag for name in sorted(env) for flag in ("-e", name)]


def inspect(ref: str, kind: str = "container") -> dict:
    return json.loads(docker(kind, "inspect", ref).stdout)[0]


# (status, headers, body bytes); the first requests to a fresh container may be slow.
http = functools.partial(request_json, timeout=30)


@dataclass
class Web:
    """A running `web` container of the image under test."""

    name: str
    port: int
    env: dict[str, str] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr


def start_web(image: str, env: dict[str, str], port: int, timeout: float = 60) -> Web:
    """`docker run -d` the image's default command (web), hardened, on the host network;
    returns once /healthz answers."""
    name = f"ct-web-{secrets.token_hex(4)}"
    app_env = {**env, "PORT": str(port)}
    docker("run", "-d", "--name", name, *HARDENED, *env_flags(app_env), image, env=app_env)
    web = Web(name, port, app_env)

    def healthy() -> bool:
        try:
            if http("GET", f"{web.url}/healthz", timeout=2)[0] == 200:
                return True
        except OSError:
            pass
        state = inspect(name)["State"]
        if not state["Running"]:
            pytest.fail(f"web container exited before /healthz (state {state['Status']}):\n"
                        f"{web.logs()}")  # fmt: skip
        return False

    try:
        wait_until("the web container to answer /healthz", healthy, timeout, 0.3, errors=(),
                   context=web.logs)  # fmt: skip
    except BaseException:
        docker("rm", "-f", name, check=False)
        raise
    return web


def remove(web: Web) -> None:
    docker("rm", "-f", web.name, check=False)


def run_once(*command: str, env: dict[str, str], extra: tuple[str, ...] = ()) -> tuple[int, str]:
    """`docker run --rm` one process type of the image; returns (exit code, stdout+stderr)."""
    result = docker(
        "run", "--rm", *HARDENED, *extra, *env_flags(env), IMAGE, *command,
        env=env, check=False, timeout=180,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def image() -> dict:
    return inspect(IMAGE, kind="image")


@pytest.fixture(scope="module")
def migrated(container_db: dict[str, str]) -> dict[str, str]:
    code, output = run_once("migrate", env=container_db)
    assert code == 0, output
    return container_db


@pytest.fixture(scope="module")
def web(migrated: dict[str, str]) -> Iterator[Web]:
    server = start_web(IMAGE, migrated, free_port())
    yield server
    remove(server)


# ---- the image's configuration ------------------------------------------------------------------


def test_image_runs_as_fixed_numeric_non_root_user(image: dict) -> None:
    assert image["Config"]["User"] == f"{APP_UID}:{APP_UID}"


def test_image_entrypoint_and_cmd_are_exec_form_python_m_service_web(image: dict) -> None:
    assert image["Config"]["Entrypoint"] == ["/opt/venv/bin/python", "-m", "service"]
    assert image["Config"]["Cmd"] == ["web"]
    assert "5000/tcp" in image["Config"]["ExposedPorts"]


def test_image_env_and_oci_labels_carry_the_same_release_metadata(image: dict) -> None:
    env = dict(item.split("=", 1) for item in image["Config"]["Env"])
    labels = image["Config"]["Labels"]
    assert env["GIT_SHA"] == labels["org.opencontainers.image.revision"]
    assert env["APP_VERSION"] == labels["org.opencontainers.image.version"]
    assert env["BUILD_DATE"] == labels["org.opencontainers.image.created"]
    assert re.fullmatch(r"[0-9a-f]{40}", env["GIT_SHA"]), env["GIT_SHA"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", env["BUILD_DATE"])
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/service-metrics"
    assert not [name for name in env if re.search("PASSWORD|SECRET|TOKEN", name)]


INSPECT_FILESYSTEM = """
import json, os, shutil
found = {
    "tools": [t for t in ("gcc", "cc", "c++", "make", "ld", "as") if shutil.which(t)],
    "venv_pip": [p for p in ("/opt/venv/bin/pip", "/opt/venv/bin/pip3") if os.path.exists(p)],
    "caches": [p for p in ("/root/.cache/pip", "/tmp/requirements.txt") if os.path.exists(p)],
    "app": sorted(os.listdir("/app")),
    "stray": [os.path.join(d, f) for d, _, fs in os.walk("/app") for f in fs
              if f in (".env", "pyproject.toml", "conftest.py") or f.startswith("test_")],
    "compiled": os.path.isdir("/app/service/__pycache__"),
}
print(json.dumps(found))
"""


def test_runtime_stage_has_no_compilers_pip_caches_tests_or_local_files() -> None:
    result = docker(
        "run", "--rm", "--network", "host", "--read-only", "--user", "0:0",
        "--entrypoint", "/opt/venv/bin/python", IMAGE, "-c", INSPECT_FILESYSTEM,
    )  # fmt: skip
    found = json.loads(result.stdout)
    assert found == {
        "tools": [],
        "venv_pip": [],
        "caches": [],
        "app": ["service"],
        "stray": [],
        "compiled": True,
    }


def test_missing_config_exits_2_with_one_json_line_naming_the_variable() -> None:
    env = {"DATABASE_PASSWORD": "s3cret-" + secrets.token_hex(4), "DATABASE_USER": "u"}
    code, output = run_once("check", env=env)
    assert code == 2, output
    lines = json_lines(output)
    assert len(lines) == 1, output
    assert "DATABASE_HOST" in json.dumps(lines[0])
    assert env["DATABASE_PASSWORD"] not in output


def test_web_on_read_only_root_without_tmpfs_exits_2_naming_the_metrics_dir(
    container_db: dict[str, str],
) -> None:
    """The failure mode of a missing emptyDir/tmpfs: a clear config error, not a traceback."""
    no_tmp = [arg for arg in HARDENED if not arg.startswith(("--tmpfs", "/tmp:"))]
    result = docker(
        "run", "--rm", *no_tmp, *env_flags(container_db), IMAGE,
        env=container_db, check=False, timeout=60,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "PROMETHEUS_MULTIPROC_DIR" in output
    assert "Traceback" not in output


# ---- migrate, check, web ------------------------------------------------------------------------


def test_migrate_runs_as_one_off_container_idempotently_then_check_passes(
    migrated: dict[str, str],
) -> None:
    code, output = run_once("migrate", env=migrated)
    assert code == 0, output
    web_only = {k: v for k, v in migrated.items() if not k.startswith("MIGRATE_")}
    code, output = run_once("check", env=web_only)
    assert code == 0, output


def test_web_serves_readyz_users_version_and_metrics_from_read_only_root(
    web: Web, image: dict
) -> None:
    status, _, body = http("GET", f"{web.url}/readyz")
    assert status == 200, body
    assert json.loads(body)["status"] == "ready"

    email = f"ct-{secrets.token_hex(4)}@example.com"
    status, headers, body = http("POST", f"{web.url}/users", {"name": "Ada", "email": email})
    assert status == 201, body
    location = headers["Location"]
    status, _, body = http("GET", location if "://" in location else web.url + location)
    assert status == 200, body
    assert json.loads(body)["email"] == email

    status, _, body = http("GET", f"{web.url}/version")
    labels = image["Config"]["Labels"]
    assert json.loads(body) == {
        "version": labels["org.opencontainers.image.version"],
        "git_sha": labels["org.opencontainers.image.revision"],
        "build_date": labels["org.opencontainers.image.created"],
    }

    status, headers, body = http("GET", f"{web.url}/metrics")
    assert status == 200
    text = body.decode()
    assert 'users_db_query_duration_seconds_count{operation="insert"}' in text
    assert re.search(r"flask_http_request_(total|duration_seconds_count)\{[^}]*/users", text), text


def test_web_pid1_is_gunicorn_as_the_app_user_not_a_shell(web: Web) -> None:
    cmdline = docker("exec", web.name, "cat", "/proc/1/cmdline").stdout.split("\0")
    assert "gunicorn" in " ".join(cmdline), cmdline
    assert cmdline[0] not in {"sh", "/bin/sh", "bash", "/bin/bash"}
    status = docker("exec", web.name, "cat", "/proc/1/status").stdout
    uids = re.search(r"^Uid:\s+(.*)$", status, re.MULTILINE).group(1).split()
    assert set(uids) == {str(APP_UID)}


def test_image_healthcheck_command_passes_in_the_read_only_container(web: Web, image: dict) -> None:
    kind, *command = image["Config"]["Healthcheck"]["Test"]
    assert kind == "CMD"
    result = docker("exec", web.name, *command, check=False)
    assert result.returncode == 0, result.stderr


def test_web_logs_are_json_lines_without_errors(web: Web) -> None:
    http("GET", f"{web.url}/users")
    time.sleep(0.5)
    logs = web.logs()
    records = json_lines(logs)  # raises on any non-JSON line
    assert records, "no log output"
    assert "Traceback" not in logs
    assert "Read-only file system" not in logs
    assert any("/users" in json.dumps(record) for record in records), logs


# ---- graceful stop ------------------------------------------------------------------------------


def test_docker_stop_drains_in_flight_request_and_exits_0(
    migrated: dict[str, str], mysql_admin: dict
) -> None:
    """SIGTERM reaches gunicorn (PID 1): it stops accepting, lets the worker finish the request
    it is serving, and exits 0 well inside the stop timeout. The request is held in flight by a
    row lock taken from outside, released only after `docker stop` has been sent."""
    server = start_web(IMAGE, {**migrated, "DATABASE_READ_TIMEOUT": "20"}, free_port())
    admin = {**mysql_admin, "database": migrated["DATABASE_NAME"]}
    locker = pymysql.connect(**admin, autocommit=False)
    watcher = pymysql.connect(**admin, autocommit=True)
    try:
        status, _, body = http(
            "POST", f"{server.url}/users", {"name": "Grace", "email": "grace@example.com"}
        )
        assert status == 201, body
        user_id = json.loads(body)["id"]

        with locker.cursor() as cursor:
            cursor.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user_id,))

        patch: dict = {}

        def send_patch() -> None:
            try:
                patch["result"] = http(
                    "PATCH", f"{server.url}/users/{user_id}", {"name": "Grace H."}, timeout=60
                )
            except OSError as exc:
                patch["error"] = exc

        sender = threading.Thread(target=send_patch)
        sender.start()

        def update_blocked() -> int:
            with watcher.cursor() as cursor:
                cursor.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                    "WHERE DB = %s AND INFO LIKE 'UPDATE users%%'",
                    (migrated["DATABASE_NAME"],),
                )
                return cursor.fetchone()[0]

        # until the UPDATE is blocked on the lock inside MySQL
        wait_until("the PATCH's UPDATE to reach the database", update_blocked, 15, 0.1, errors=())

        stop: dict = {}

        def docker_stop() -> None:
            started = time.monotonic()
            stop["result"] = docker("stop", "--time", "30", server.name, check=False, timeout=60)
            stop["seconds"] = time.monotonic() - started

        stopper = threading.Thread(target=docker_stop)
        stopper.start()
        time.sleep(2)  # SIGTERM delivered; gunicorn is draining
        assert inspect(server.name)["State"]["Running"], "exited before the request finished"
        assert "result" not in patch, "PATCH answered while its row was still locked"
        locker.rollback()  # release the row: the UPDATE proceeds

        sender.join(30)
        stopper.join(60)
        assert "error" not in patch, patch.get("error")
        status, _, body = patch["result"]
        assert status == 200, body
        assert json.loads(body)["name"] == "Grace H."

        assert stop["result"].returncode == 0, stop["result"].stderr
        assert stop["seconds"] < 20, f"docker stop took {stop['seconds']:.1f}s"
        state = inspect(server.name)["State"]
        assert state["ExitCode"] == 0, server.logs()
        assert not state["OOMKilled"]
    finally:
        locker.close()
        watcher.close()
        remove(server)


def test_docker_stop_under_load_answers_every_request_that_reached_the_socket(
    migrated: dict[str, str],
) -> None:
    """No preStop hook in front of `docker stop`: SIGTERM arrives while clients still connect.
    Every connection the kernel completed gets its response; later ones are refused, never
    reset (tests/service/test_worker.py holds the same for the bare process)."""
    server = start_web(IMAGE, migrated, free_port())
    with running_clients(connection_per_request, server.port, 32) as counts:
        time.sleep(2)
        result = docker("stop", "--time", "30", server.name, check=False, timeout=60)
        time.sleep(0.5)
    try:
        print(f"\ndocker stop under load (32 clients): {dict(sorted(counts.items()))}")
        assert result.returncode == 0, result.stderr
        assert inspect(server.name)["State"]["ExitCode"] == 0, server.logs()
        assert any(k.startswith("status") for k in counts)
        assert {k: v for k, v in counts.items() if k.startswith("lost")} == {}
        assert {k for k in counts if k.startswith("status")} <= {"status 200", "status 201"}
    finally:
        remove(server)
