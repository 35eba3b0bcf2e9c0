"""The four ways of running the service locally claim four different host ports, so one never
blocks another: `make run` 5000, docker compose 8000, kind's NodePort 30080, skaffold's
port-forward 8080. Each port is read from where the path really takes it (the service's PORT
default, `docker compose config` over .env.example, k8s-dev/kind.yaml, skaffold.yaml)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

from service.settings import load_settings
from tests.support.paths import REPO
from tests.support.tools import require_tool

EXPECTED = {"make run": 5000, "docker compose": 8000, "kind": 30080, "skaffold": 8080}


def compose_api_port(env_file: Path) -> tuple[str, int]:
    """(host ip, host port) of the compose api, as Compose v2 itself interpolates them."""
    compose = require_tool("docker-compose")
    files = ["-f", str(REPO / "docker-compose.yml"), "--env-file", str(env_file)]
    out = subprocess.run(
        [compose, *files, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COMPOSE_PROJECT_NAME": "users-service-port-test"},
    )
    assert out.returncode == 0, out.stderr
    (port,) = json.loads(out.stdout)["services"]["api"]["ports"]
    return port["host_ip"], int(port["published"])


def make_run_port() -> int:
    # `make run` serves on the service's PORT default (scripts/localdb.py keeps it).
    required = ("DATABASE_HOST", "DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_NAME")
    return load_settings(dict.fromkeys(required, "x")).port


def kind_port() -> tuple[str, int]:
    kind = yaml.safe_load((REPO / "k8s-dev/kind.yaml").read_text())
    (mapping,) = [m for n in kind["nodes"] for m in n.get("extraPortMappings", [])]
    return mapping["listenAddress"], mapping["hostPort"]


def skaffold_port() -> tuple[str, int]:
    skaffold = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    (forward,) = skaffold["portForward"]
    return forward.get("address", "127.0.0.1"), forward["localPort"]  # skaffold's default address


def test_the_four_local_paths_claim_four_distinct_host_ports() -> None:
    compose_ip, compose_port = compose_api_port(REPO / ".env.example")
    kind_ip, kind_host_port = kind_port()
    skaffold_ip, skaffold_local_port = skaffold_port()
    ports = {
        "make run": make_run_port(),
        "docker compose": compose_port,
        "kind": kind_host_port,
        "skaffold": skaffold_local_port,
    }
    assert len(set(ports.values())) == len(ports), ports
    assert ports == EXPECTED
    assert compose_ip == kind_ip == skaffold_ip == "127.0.0.1", "published on loopback only"


def test_compose_defaults_to_8000_without_api_port_in_env(tmp_path: Path) -> None:
    lines = (REPO / ".env.example").read_text().splitlines()
    env_file = tmp_path / "no-api-port.env"
    env_file.write_text("\n".join(line for line in lines if not line.startswith("API_PORT=")))
    assert compose_api_port(env_file) == ("127.0.0.1", EXPECTED["docker compose"])


def test_readmes_name_the_port_of_each_path() -> None:
    readme = (REPO / "README.md").read_text()
    for path, port in EXPECTED.items():
        assert f"http://127.0.0.1:{port}" in readme, f"README.md: no URL with {path}'s port {port}"
    k8s_dev = (REPO / "k8s-dev/README.md").read_text()
    assert "http://127.0.0.1:30080/readyz" in k8s_dev
    assert "127.0.0.1:5000" not in k8s_dev, "kind no longer publishes on 5000"
