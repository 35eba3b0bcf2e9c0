"""Which helm the chart tests run: the pinned one from `make tools` when it runs, else a working
one on PATH (the bundled helm is a Linux x86-64 binary), else, naming what to install, a failure
under CI=true and a loud skip otherwise (tests/support/tools.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import paths
from tests.support.chart import tool


def fake_helm(directory: Path, *, works: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    helm = directory / "helm"
    body = "echo v3.99.0" if works else "echo 'cannot execute binary file' >&2; exit 126"
    helm.write_text(f"#!/bin/sh\n{body}\n")
    helm.chmod(0o755)
    return helm


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(paths, "TOOLS", tmp_path / "tools")
    return tmp_path / "tools"


@pytest.fixture
def no_working_helm(tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_helm(tools, works=False)
    monkeypatch.setenv("PATH", str(fake_helm(tmp_path / "bin", works=False).parent))


def test_a_bundled_helm_that_cannot_run_gives_way_to_a_working_one_on_path(
    tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_helm(tools, works=False)
    own = fake_helm(tmp_path / "bin", works=True)
    monkeypatch.setenv("PATH", str(own.parent))
    assert tool("helm") == str(own)


def test_the_bundled_helm_wins_when_it_runs(
    tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = fake_helm(tools, works=True)
    monkeypatch.setenv("PATH", str(fake_helm(tmp_path / "bin", works=True).parent))
    assert tool("helm") == str(bundled)


def test_without_a_working_helm_the_tests_fail_naming_what_to_install(
    no_working_helm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"https://helm\.sh/docs/intro/install/"):
        tool("helm")


def test_outside_ci_without_a_working_helm_the_tests_skip_loudly_naming_what_to_install(
    no_working_helm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(
        pytest.skip.Exception, match=r"^SKIPPED LOUDLY: .*https://helm\.sh/docs/intro/install/"
    ):
        tool("helm")


def test_a_tier_that_requires_its_tools_fails_without_them_outside_ci_too(
    no_working_helm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.fail.Exception, match=r"no working helm"):
        tool("helm", required=True)
