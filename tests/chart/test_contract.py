"""The chart against the process contract: the rendered Job and Deployment, run as local processes.

Their environment is resolved from the rendered ConfigMap and Secret exactly as the kubelet
would (envFrom, env, volume mounts), with three substitutions only: the database coordinates and
passwords of a fresh test database (`fresh_database`, tests/conftest.py), mount paths re-mapped
under tmp_path, and a free PORT. Then each container's command (the image's ENTRYPOINT
`python -m service` plus the container's args, or its own command) runs with the repo's
python, in the order Kubernetes runs them: the web pod's wait-for-schema initContainer keeps
waiting until the migration Job has run; the probes answer on the manifest's paths; the preStop
hook runs while the server still serves; SIGTERM then ends it with exit 0 within
GRACEFUL_TIMEOUT, inside terminationGracePeriodSeconds.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pymysql
import pytest

from tests.support.chart import REPO, Rendered, render
from tests.support.database import empty_database
from tests.support.http import request_json
from tests.support.localdb import free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

# The image's ENTRYPOINT (Dockerfile): `python -m service`; container args pick the process.
ENTRYPOINT = ["python", "-m", "service"]
# Which password of the test database each Secret key of the chart carries.
SECRET_KEYS = {"web-password": "DATABASE_PASSWORD", "migrate-password": "MIGRATE_DATABASE_PASSWORD"}
# Settings that point at the database: the manifest must set them; the test re-targets them.
DATABASE_VARS = ("DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME", "DATABASE_USER")


class Pod:
    """One pod spec of the rendered manifests, materialised under a local directory."""

    def __init__(self, rendered: Rendered, spec: dict, db: dict[str, str], root: Path) -> None:
        self.rendered, self.spec, self.db, self.root = rendered, spec, db, root
        self.volumes = {v["name"]: v for v in spec.get("volumes", [])}
        root.mkdir(parents=True)

    def _materialise(self, mount: dict) -> Path:
        volume = self.volumes[mount["name"]]
        local = self.root / "volumes" / mount["name"]
        if local.exists():
            return local
        local.mkdir(parents=True)
        if "secret" in volume:
            secret = volume["secret"]
            items = secret.get("items") or [{"key": k, "path": k} for k in SECRET_KEYS]
            for item in items:
                # the chart's key names, filled with the test database's passwords
                (local / item["path"]).write_text(self.db[SECRET_KEYS[item["key"]]])
        elif "configMap" in volume:
            data = self.rendered.named("ConfigMap", volume["configMap"]["name"])["data"]
            for item in volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
                (local / item["path"]).write_text(data[item["key"]])
        else:
            assert "emptyDir" in volume, f"unexpected volume type {volume}"
        return local

    def env(self, container: dict, port: int) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            name = source["configMapRef"]["name"]
            env.update(self.rendered.named("ConfigMap", name)["data"])
        for entry in container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = entry["value"]
            else:
                ref = entry["valueFrom"].get("configMapKeyRef")
                assert ref, f"{entry['name']}: only plain values and ConfigMap keys expected"
                env[entry["name"]] = self.rendered.named("ConfigMap", ref["name"])["data"][
                    ref["key"]
                ]
        for var in DATABASE_VARS:
            assert env.get(var), f"the manifest does not set {var} for {container['name']}"
        assert not any(k.endswith("PASSWORD") for k in env), "passwords must come as files"
        # Mounted paths -> local directories (longest mount path first).
        mounts = sorted(container.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
        for key, value in env.items():
            for mount in mounts:
                prefix = mount["mountPath"].rstrip("/")
                if value == prefix or value.startswith(prefix + "/"):
                    env[key] = str(self._materialise(mount)) + value[len(prefix) :]
                    break
        for mount in mounts:
            self._materialise(mount)
        for key, value in env.items():
            if key.endswith("_FILE") or key in ("DATABASE_SSL_CA",):
                assert Path(value).is_file(), f"{key} points at no mounted file: {value}"
        env.update({var: self.db[var] for var in DATABASE_VARS})
        if "MIGRATE_DATABASE_USER" in env:
            env["MIGRATE_DATABASE_USER"] = self.db["MIGRATE_DATABASE_USER"]
        env["PORT"] = str(port)
        return {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **env}


def argv(container: dict) -> list[str]:
    command = list(container.get("command") or ENTRYPOINT) + list(container.get("args", []))
    assert command[0] in ("python", "/opt/venv/bin/python"), command
    return [sys.executable, *command[1:]]


def run_to_completion(container: dict, env: dict[str, str], timeout: float) -> None:
    """Run a container's command like a Job's pod would, and require exit 0."""
    result = subprocess.run(
        argv(container),
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def start(container: dict, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        argv(container), env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def get(port: int, path: str, timeout: float = 5) -> tuple[int, dict]:
    response = request_json("GET", f"http://127.0.0.1:{port}{path}", timeout=timeout)
    return response.status, json.loads(response.body or b"{}")


def wait_for(probe: dict, port: int, process: subprocess.Popen, log: Path) -> float:
    """Poll an httpGet probe as the kubelet would, within its failure budget."""
    budget = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
    started = time.monotonic()

    def answers() -> bool:
        assert process.poll() is None, log.read_text()
        return get(port, probe["httpGet"]["path"])[0] == 200

    path = probe["httpGet"]["path"]
    wait_until(
        f"{path} to answer 200", answers, budget, 0.2, errors=(OSError,), context=log.read_text
    )
    return time.monotonic() - started


@pytest.fixture(scope="module")
def manifests() -> Rendered:
    # Kubernetes 1.29: the preStop hook is an exec command, so this test runs it for real
    # (from 1.30 the chart uses the kubelet's native sleep action for the same duration).
    return render(kube_version="1.29.0")


def test_rendered_job_and_deployment_honour_the_process_contract(
    manifests: Rendered, fresh_database: dict[str, str], tmp_path: Path
) -> None:
    job_spec = manifests.job["spec"]["template"]["spec"]
    pod_spec = manifests.deployment["spec"]["template"]["spec"]
    job_pod = Pod(manifests, job_spec, fresh_database, tmp_path / "job")
    web_pod = Pod(manifests, pod_spec, fresh_database, tmp_path / "web")
    web = pod_spec["containers"][0]
    port = free_port()
    [http] = [p for p in web["ports"] if p["name"] == "http"]
    assert manifests.named("ConfigMap", web["envFrom"][0]["configMapRef"]["name"])["data"][
        "PORT"
    ] == str(http["containerPort"])

    # 1. The web pod's initContainer waits: the schema is not there yet.
    [wait_init] = pod_spec["initContainers"]
    wait_log = tmp_path / "wait-for-schema.log"
    waiting = start(wait_init, web_pod.env(wait_init, port), wait_log)
    try:
        time.sleep(3)
        assert waiting.poll() is None, "wait-for-schema exited before any migration ran"

        # 2. The migration Job: its initContainers, then `migrate`, with the migration user.
        for init in job_spec["initContainers"]:
            run_to_completion(init, job_pod.env(init, port), timeout=30)
        migrate = job_spec["containers"][0]
        run_to_completion(migrate, job_pod.env(migrate, port), timeout=60)

        # 3. ... after which the initContainer's `service check` passes and it exits 0.
        assert waiting.wait(timeout=20) == 0, wait_log.read_text()
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()

    # 4. The web container: startup, liveness and readiness probes answer as declared.
    web_env = web_pod.env(web, port)
    assert web_env["PROMETHEUS_MULTIPROC_DIR"].startswith(str(tmp_path))
    web_log = tmp_path / "web.log"
    server = start(web, web_env, web_log)
    try:
        wait_for(web["startupProbe"], port, server, web_log)
        assert get(port, web["livenessProbe"]["httpGet"]["path"]) == (200, {"status": "ok"})
        status, body = get(port, web["readinessProbe"]["httpGet"]["path"])
        assert (status, body["status"]) == (200, "ready"), body

        # 5. The helm test pod's own command passes against the running server.
        test_container = manifests.one("Pod", "test")["spec"]["containers"][0]
        command = [*argv(test_container)[:-1], f"http://127.0.0.1:{port}"]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=30, check=False, cwd=REPO
        )
        assert result.returncode == 0, result.stdout + result.stderr

        # 6. preStop runs (the server keeps serving), then SIGTERM: exit 0 within GRACEFUL_TIMEOUT.
        pre_stop = web["lifecycle"]["preStop"]["exec"]["command"]
        drain_started = time.monotonic()
        hook = subprocess.Popen([sys.executable, *pre_stop[1:]], cwd=REPO)
        time.sleep(1)
        assert get(port, "/healthz")[0] == 200, "stopped serving during the preStop drain"
        assert hook.wait(timeout=120) == 0
        drained = time.monotonic() - drain_started
        assert get(port, "/users")[0] == 200, "stopped serving before SIGTERM"

        graceful = int(web_env["GRACEFUL_TIMEOUT"])
        stop_started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=graceful + 5)
        stopped = time.monotonic() - stop_started
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert code == 0, web_log.read_text()
    assert stopped < graceful, f"took {stopped:.1f} s, GRACEFUL_TIMEOUT is {graceful} s"
    assert drained + stopped < pod_spec["terminationGracePeriodSeconds"]


def test_secret_keys_of_the_chart_are_the_ones_the_contract_test_fills(
    manifests: Rendered,
) -> None:
    secret = manifests.one("Secret", "database")
    keys = set(secret["data"])
    assert set(SECRET_KEYS) <= keys
    for value in secret["data"].values():
        assert len(base64.b64decode(value)) >= 24


def test_in_chart_mysql_grants_are_enough_for_migrate_and_check_and_no_more(
    mysql_admin: dict, tmp_path: Path
) -> None:
    """The in-chart MySQL's init script (rendered, run through bash with the image entrypoint's
    two helper functions stubbed) creates users whose grants suffice for `migrate` (DDL) and
    `check` (web user), while the web user cannot change the schema."""
    tag = secrets.token_hex(4)
    name, web_user, migrate_user = f"chart_{tag}", f"chart_{tag}_w", f"chart_{tag}_m"
    rendered = render(
        "--set", f"mysql.auth.database={name}",
        "--set", f"mysql.auth.user={web_user}",
        "--set", f"mysql.auth.migrateUser={migrate_user}",
    )  # fmt: skip
    [script] = rendered.one("ConfigMap", "database")["data"].values()
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    db = {
        "DATABASE_HOST": str(mysql_admin["host"]),
        "DATABASE_PORT": str(mysql_admin["port"]),
        "DATABASE_NAME": name,
        "DATABASE_USER": web_user,
        "DATABASE_PASSWORD": "web'pw\\" + secrets.token_hex(6),  # quoting must survive
        "MIGRATE_DATABASE_USER": migrate_user,
        "MIGRATE_DATABASE_PASSWORD": secrets.token_hex(12),
    }
    for key, var in SECRET_KEYS.items():
        (credentials / key).write_text(db[var])
    stubs = "docker_process_sql() { cat; }\nmysql_note() { :; }\nset -eo pipefail\n"
    sql = subprocess.run(
        ["bash", "-c", stubs + script.replace("/etc/mysql-credentials", str(credentials))],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    # MYSQL_DATABASE creates the database in the real image
    with empty_database(mysql_admin, name, [web_user, migrate_user], "utf8mb4") as admin:
        for statement in filter(None, (s.strip() for s in sql.split(";\n"))):
            admin.execute(statement)
        job = Pod(rendered, rendered.job["spec"]["template"]["spec"], db, tmp_path / "job")
        migrate = rendered.job["spec"]["template"]["spec"]["containers"][0]
        result = subprocess.run(
            argv(migrate), env=job.env(migrate, free_port()), cwd=REPO,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        spec = rendered.deployment["spec"]["template"]["spec"]
        web = Pod(rendered, spec, db, tmp_path / "web")
        [wait] = spec["initContainers"]
        result = subprocess.run(
            argv(wait), env=web.env(wait, free_port()), cwd=REPO,
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        as_web = pymysql.connect(
            host=db["DATABASE_HOST"], port=int(db["DATABASE_PORT"]),
            user=web_user, password=db["DATABASE_PASSWORD"], database=name,
        )  # fmt: skip
        with as_web, as_web.cursor() as cursor, pytest.raises(pymysql.err.OperationalError):
            cursor.execute("CREATE TABLE not_allowed (id INT)")
