"""docs/container.md's compose quickstart, for real: in a temporary copy of the repository,
`cp .env.example .env` (with the passwords changed), `docker compose up --build`, then
`docker compose down -v`, with Compose v2 (.tools/bin/docker-compose) against the private
bridge + iptables dockerd of `make test-container` (scripts/dockerd.py).

db (`mysql:8.4`, here the stand-in of images/mysql-standin) must turn healthy, the one-off migrate
must exit 0, the api must serve POST/GET /users on the host port docker-compose.yml publishes
(API_PORT from .env; another free port only if that one is taken), and `down -v` must remove the
containers, the network and the volume. The build really runs pip: on the guarded bridge, through
the docker client's standard proxy setting and an index-only proxy on the host (index_proxy.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.container.index_proxy import IndexProxy, index_hosts
from tests.support.docker import docker
from tests.support.http import request_json
from tests.support.localdb import free_port
from tests.support.paths import REPO, SCRIPTS
from tests.support.scripts import import_script
from tests.support.wait import wait_until

dockerd = import_script(SCRIPTS / "dockerd.py")
standin_base = import_script(SCRIPTS / "standin_base.py")

pytestmark = pytest.mark.slow

COMPOSE = REPO / ".tools" / "bin" / "docker-compose"
PROJECT = "users-service"  # `name:` in docker-compose.yml
UP_TIMEOUT = 420  # cold build (pip through the proxy) + first database initialisation
DOWN_TIMEOUT = 120

if not os.environ.get("CONTAINER_IMAGE") or not os.environ.get("DOCKER_HOST"):
    pytest.skip(
        "CONTAINER_IMAGE/DOCKER_HOST not set: `docker compose up --build` runs under "
        "`make test-container` (root; its private dockerd), not plain `make test`",
        allow_module_level=True,
    )


@dataclass
class Project:
    """A temporary copy of the repository with its .env, and how to run compose in it."""

    root: Path
    env: dict[str, str]
    secrets: list[str] = field(repr=False)
    up_log: Path

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(COMPOSE), *args], cwd=self.root, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def redact(self, text: str) -> str:
        for value in self.secrets:
            text = text.replace(value, "<redacted>")
        return text

    def raw_output(self) -> tuple[str, str]:
        """Everything `up` printed and `docker compose logs`, unredacted: not for printing."""
        result = self.compose("logs", "--no-color", "--timestamps")
        up = self.up_log.read_text(errors="replace") if self.up_log.exists() else ""
        return up, result.stdout + result.stderr

    def logs(self) -> str:
        """For failure messages: the end of `up`'s output and the logs, passwords redacted."""
        up, logs = self.raw_output()
        tail = "\n".join(up.splitlines()[-60:])
        return self.redact(
            f"---- docker compose up output (last 60 lines) ----\n{tail}\n"
            f"---- docker compose logs ----\n{logs}"
        )

    def states(self) -> dict[str, dict]:
        result = self.compose("ps", "--all", "--format", "json")
        text = result.stdout.strip()
        if text.startswith("["):
            items = json.loads(text)
        else:  # one JSON object per line (Compose 2.21 and later)
            items = [json.loads(line) for line in text.splitlines() if line]
        return {item["Service"]: item for item in items}


def copy_repository(target: Path) -> None:
    """The working tree's tracked files (uncommitted edits included), as a clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def bridge_gateway() -> str:
    config = json.loads(docker("network", "inspect", "bridge").stdout)[0]["IPAM"]["Config"]
    return config[0]["Gateway"]


@pytest.fixture(scope="module")
def index_proxy() -> Iterator[IndexProxy]:
    pip = standin_base.pip_settings()
    proxy = IndexProxy(bridge_gateway(), index_hosts(pip["index-url"], pip["extra-index-url"]))
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, index_proxy: IndexProxy) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("compose-quickstart") / "users-service"
    root.mkdir()
    copy_repository(root)
    subprocess.run(["cp", ".env.example", ".env"], cwd=root, check=True)  # the doc's step
    # "...change the passwords": random ones, which must then never show up in any output
    env_text = (root / ".env").read_text()
    passwords: list[str] = []

    def change(match: re.Match[str]) -> str:
        passwords.append(secrets.token_urlsafe(18))
        return f"{match.group(1)}={passwords[-1]}"

    (root / ".env").write_text(re.sub(r"^(\w*PASSWORD)=change-me.*$", change, env_text, flags=re.M))
    assert passwords, "no change-me passwords in .env.example"

    client = root.parent / "docker-client"
    client.mkdir()
    # The docker client's standard proxy setting (what a machine behind a proxy has): builds get
    # HTTPS_PROXY; plain-http healthchecks and the compose network stay direct.
    (client / "config.json").write_text(json.dumps({"proxies": {"default": {
        "httpsProxy": index_proxy.url, "noProxy": "localhost,127.0.0.1,db,api,migrate",
    }}}))  # fmt: skip
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(root.parent),
        "DOCKER_HOST": os.environ["DOCKER_HOST"],
        "DOCKER_CONFIG": str(client),
    }
    proj = Project(root, env, passwords, root.parent / "compose-up.log")
    port = published_port(proj)
    if not localhost_port_free(port):
        # another process here holds the default port: the same quickstart, on a free one
        env["API_PORT"] = str(free_port())
        print(f"port {port} is busy on 127.0.0.1: API_PORT={env['API_PORT']}", file=sys.stderr)
    yield proj
    # whatever happened: no containers, network or volume left in the daemon
    proj.compose("down", "-v", "--remove-orphans", "--timeout", "5", timeout=DOWN_TIMEOUT)


def published_port(project: Project) -> int:
    result = project.compose("config", "--format", "json")
    assert result.returncode == 0, project.redact(result.stderr)
    ports = json.loads(result.stdout)["services"]["api"]["ports"]
    assert len(ports) == 1, ports
    return int(ports[0]["published"])


def localhost_port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def project_objects() -> dict[str, list[str]]:
    label = f"label=com.docker.compose.project={PROJECT}"
    return {
        "containers": docker("ps", "-aq", "--filter", label).stdout.split(),
        "networks": docker("network", "ls", "-q", "--filter", label).stdout.split(),
        "volumes": docker("volume", "ls", "-q", "--filter", label).stdout.split(),
    }


def wait_until_serving(project: Project, up: subprocess.Popen, url: str) -> float:
    """Seconds until GET /readyz answers 200; fails with the logs if `up` dies or time runs out."""
    started = time.monotonic()

    def ready() -> bool:
        if up.poll() is not None:
            pytest.fail(f"`docker compose up --build` exited {up.returncode}\n{project.logs()}")
        return request_json("GET", f"{url}/readyz").status == 200

    wait_until(f"the api to answer {url}/readyz", ready, UP_TIMEOUT, errors=(OSError,),
               context=project.logs)  # fmt: skip
    return time.monotonic() - started


def test_compose_up_build_serves_users_then_down_v_removes_everything(
    project: Project, index_proxy: IndexProxy
) -> None:
    assert project_objects() == {"containers": [], "networks": [], "volumes": []}
    url = f"http://127.0.0.1:{published_port(project)}"
    with project.up_log.open("w") as log:
        up = subprocess.Popen(
            [str(COMPOSE), "up", "--build"], cwd=project.root, env=project.env,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        seconds = wait_until_serving(project, up, url)
        print(f"docker compose up --build: serving after {seconds:.0f}s", file=sys.stderr)

        states = project.states()
        assert states["db"]["Health"] == "healthy", project.logs()
        assert states["migrate"]["State"] == "exited", project.logs()
        assert states["migrate"]["ExitCode"] == 0, project.logs()
        assert states["api"]["State"] == "running", project.logs()

        email = f"compose-{secrets.token_hex(4)}@example.com"
        status, _, body = request_json(
            "POST", f"{url}/users", {"name": "Ada Lovelace", "email": email}
        )
        assert status == 201, body
        status, _, body = request_json("GET", f"{url}/users")
        assert status == 200, body
        assert email in [item["email"] for item in json.loads(body)["items"]]

        # the build ran pip for real, through the index-only proxy, and nothing else went out
        assert index_proxy.served, "the build never reached the package index (cached?)"
        assert index_proxy.refused == []
        # the compose network sits inside the guarded range
        network = json.loads(docker("network", "inspect", f"{PROJECT}_default").stdout)[0]
        subnet = ipaddress.ip_network(network["IPAM"]["Config"][0]["Subnet"])
        assert subnet.subnet_of(ipaddress.ip_network(dockerd.POOL)), subnet
        guards = docker_guard_rules()
        assert any(f"-s {dockerd.POOL}" in rule for rule in guards), guards

        output = "".join(project.raw_output())
        assert "Ready for start up" in output  # the db's log is really in there
        for value in project.secrets:
            assert value not in output, "a password reached the output of up or the logs"
    except BaseException:
        print(project.logs(), file=sys.stderr)
        raise
    finally:
        down = project.compose("down", "-v", timeout=DOWN_TIMEOUT)
        try:
            up.wait(DOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
            pytest.fail("`docker compose up` did not exit after `down -v`")
    assert down.returncode == 0, project.redact(down.stderr)
    assert project_objects() == {"containers": [], "networks": [], "volumes": []}


def docker_guard_rules() -> list[str]:
    result = subprocess.run(
        ["iptables", "-w", "10", "-t", "mangle", "-S", "POSTROUTING"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return [line for line in result.stdout.splitlines() if dockerd.GUARD_COMMENT in line]
