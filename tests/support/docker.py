"""The docker CLI as the container tier runs it: the binary from $DOCKER (the private daemon's
client under `make test-container`), a bounded run, and a test failure naming the command."""

from __future__ import annotations

import os
import subprocess

import pytest

DOCKER = os.environ.get("DOCKER", "docker")


def docker(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `docker ARGS`. Values in env reach `-e NAME` options through the CLI's own
    environment, so passwords never appear on a command line. With check, a non-zero exit
    fails the test with the command's first words and both output streams."""
    result = subprocess.run(
        [DOCKER, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"docker {' '.join(args[:3])} … exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result
