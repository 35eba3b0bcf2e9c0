"""The command lines of scripts/standin_base.py and scripts/dockerd.py, run as processes; the parts
that need no docker daemon (part of plain `make test`). The daemon itself, the stand-ins' builds
and dockerd's clean stop are exercised by `make test-container`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STANDIN = REPO / "scripts" / "standin_base.py"
DOCKERD = REPO / "scripts" / "dockerd.py"


def run(script: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args], env={**os.environ, **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def key(**env: str) -> str:
    result = run(STANDIN, "key", **env)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"[0-9a-f]{16}\n", result.stdout), result.stdout
    return result.stdout.strip()


def test_standin_key_is_stable_and_follows_its_inputs() -> None:
    base = key()
    assert key() == base
    assert key(STANDIN_MIRROR="http://mirror.example/debian") != base
    assert key(PIP_EXTRA_INDEX_URL="https://extra.example/simple") != base
    assert key(PIP_DEFAULT_TIMEOUT="7") != key(PIP_DEFAULT_TIMEOUT="8")
    # a local file:// index does not exist inside a build: it is not an input
    assert key(PIP_EXTRA_INDEX_URL="file:///srv/wheels") == key(PIP_EXTRA_INDEX_URL="")


def test_pip_index_url_keeps_network_indexes_only() -> None:
    mirror = run(STANDIN, "pip-index-url", PIP_INDEX_URL="https://mirror.example/simple")
    assert mirror.stdout == "https://mirror.example/simple\n"
    local = run(STANDIN, "pip-index-url", PIP_INDEX_URL="file:///srv/pypi/simple")
    assert local.returncode == 0
    assert local.stdout == "\n"


def test_standin_build_reports_the_tarball_it_has_cached(tmp_path: Path) -> None:
    """With the tarball of the current key present, `build` does no work and names it."""
    cached = tmp_path / f"standin-{key()}.tar"
    cached.write_bytes(b"x")
    result = run(STANDIN, "build", STANDIN_CACHE_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{cached}\n"


def test_standin_without_a_command_is_a_usage_error() -> None:
    result = run(STANDIN)
    assert result.returncode == 2
    assert "key,build,import,pip-index-url,mysql" in result.stderr


def test_dockerd_cli_names_a_missing_daemon_in_one_line(tmp_path: Path) -> None:
    env = run(DOCKERD, "env", str(tmp_path))
    assert env.returncode == 1
    assert env.stderr.strip().splitlines() == [
        f"dockerd.py env: no running dockerd of this helper in {tmp_path}"
    ]
    stop = run(DOCKERD, "stop", "--state", str(tmp_path))
    assert stop.returncode == 0
    assert "nothing to stop" in stop.stderr
    usage = run(DOCKERD, "start")
    assert usage.returncode == 2
    assert "STATE_DIR" in usage.stderr
