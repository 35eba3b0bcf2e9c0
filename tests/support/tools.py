"""The one policy for the external tools the tests run (helm, kubectl, yamllint, hadolint, …).

A tool is the pinned one from `make tools` (<repo>/.tools/bin) first, so runs are reproducible,
else a working one on PATH (the bundled helm is a Linux x86-64 binary: a helm must run
`helm version`). A missing tool fails the test under CI=true, or where the caller says the tool is
required (a tier that must not pass without running); otherwise the test is skipped, loudly."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from typing import NoReturn

import pytest

from tests.support import paths

MAKE_TOOLS = "run `make tools`"
HINTS = {"helm": f"{MAKE_TOOLS} or install helm: https://helm.sh/docs/intro/install/"}


def must_fail() -> bool:
    return os.environ.get("CI") == "true"


def require_tool(
    name: str, hint: str | None = None, *, required: bool = False, bundled_only: bool = False
) -> str:
    """The path of a working `name`. `hint` says how to get it (default: `make tools`, for helm
    also its install page); `bundled_only`: only .tools/bin counts, never PATH."""
    path = "" if bundled_only else os.environ.get("PATH", "")
    found = _find_tool(name, str(paths.TOOLS), path)
    if found is not None:
        return found
    where = f"in {paths.TOOLS}" + ("" if bundled_only else " or on PATH")
    missing(f"no working {name} {where}: {hint or HINTS.get(name, MAKE_TOOLS)}", required=required)


def require_root(why: str) -> None:
    """Root is a prerequisite like a tool, under the same policy; `why` says what needs it."""
    if os.geteuid() != 0:
        missing(f"needs root: {why}")


def missing(message: str, *, required: bool = False) -> NoReturn:
    """The policy itself, for a prerequisite found some other way (e.g. the database server)."""
    if required or must_fail():
        pytest.fail(message)
    pytest.skip(f"SKIPPED LOUDLY: {message}")


@functools.cache
def _find_tool(name: str, tools: str, path: str) -> str | None:
    bundled = os.path.join(tools, name)
    for candidate in (bundled, shutil.which(name, path=path) if path else None):
        if candidate and os.access(candidate, os.X_OK) and _runs(name, candidate):
            return candidate
    return None


def _runs(name: str, candidate: str) -> bool:
    if name != "helm":
        return True  # the Python tools of .tools/venv run wherever Python does
    try:
        check = subprocess.run(
            [candidate, "version", "--short"], capture_output=True, timeout=30, check=False
        )
    except OSError:  # e.g. Exec format error: a binary for another platform
        return False
    return check.returncode == 0
