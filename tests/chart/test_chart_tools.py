"""Which helm the chart tests run: the pinned one from `make tools` when it runs, else a working
one on PATH (the bundled helm is a Linux x86-64 binary), else a failure saying what to install."""

from __future__ import annotations

from pathlib import Path

import chart_helpers
import pytest


def fake_helm(directory: Path, *, works: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    helm = directory / "helm"
    body = "echo v3.99.0" if works else "echo 'cannot execute binary file' >&2; exit 126"
    helm.write_text(f"#!/bin/sh\n{body}\n")
    helm.chmod(0o755)
    return helm


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(chart_helpers, "TOOLS", tmp_path / "tools")
    return tmp_path / "tools"


def test_a_bundled_helm_that_cannot_run_gives_way_to_a_working_one_on_path(
    tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_helm(tools, works=False)
    own = fake_helm(tmp_path / "bin", works=True)
    monkeypatch.setenv("PATH", str(own.parent))
    assert chart_helpers.tool("helm") == str(own)


def test_the_bundled_helm_wins_when_it_runs(
    tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = fake_helm(tools, works=True)
    monkeypatch.setenv("PATH", str(fake_helm(tmp_path / "bin", works=True).parent))
    assert chart_helpers.tool("helm") == str(bundled)


def test_without_a_working_helm_the_tests_fail_naming_what_to_install(
    tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_helm(tools, works=False)
    monkeypatch.setenv("PATH", str(fake_helm(tmp_path / "bin", works=False).parent))
    with pytest.raises(pytest.fail.Exception, match=r"https://helm\.sh/docs/intro/install/"):
        chart_helpers.tool("helm")
