"""Factor II, dependencies: every dependency is declared with an exact version and hash, and
installed in isolation (a virtualenv locally, the image's own venv in the container)."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys

from tests.support.paths import REPO

_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)")


def pins(path) -> dict[str, tuple[str, int]]:
    """{normalised name: (version, number of hashes)} of a pip-compile output."""
    out: dict[str, tuple[str, int]] = {}
    current = None
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            current = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            out[current] = (match.group(2), line.count("--hash="))
        elif current and line.strip().startswith("--hash="):
            version, hashes = out[current]
            out[current] = (version, hashes + 1)
        elif line.strip() and not line.startswith(("#", "--", "    ")):  # comments, pip options
            raise AssertionError(f"not an exact pin: {line!r}")
    return out


def test_runtime_requirements_are_exact_hashed_pins_installed_as_pinned_in_a_venv():
    runtime = pins(REPO / "requirements.txt")
    assert len(runtime) > 10
    assert all(hashes > 0 for _, hashes in runtime.values())
    assert sys.prefix != sys.base_prefix, "the tests must run in the project's virtualenv"
    config = (REPO / ".venv" / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in config
    for name, (version, _) in runtime.items():
        assert importlib.metadata.version(name) == version, name


def test_every_module_the_web_process_loads_comes_from_a_pinned_distribution():
    # Modules loaded by importing the app, its worker and gunicorn (not those the interpreter
    # loaded at start-up, such as setuptools' .pth hook), that live in a file under
    # site-packages: each must belong to a distribution pinned in requirements.txt.
    code = (
        "import json, sys, importlib.metadata as md\n"
        "before = set(sys.modules)\n"
        "from service import create_app\n"
        "from service.settings import load_settings\n"
        "import service.worker, gunicorn.app.wsgiapp\n"
        "create_app(load_settings({'DATABASE_HOST': 'h', 'DATABASE_USER': 'u',"
        " 'DATABASE_PASSWORD': 'p', 'DATABASE_NAME': 'n'}))\n"
        "owners = md.packages_distributions()\n"
        "new = [sys.modules[m] for m in set(sys.modules) - before]\n"
        "files = {m.__name__.split('.')[0] for m in new"
        " if 'site-packages' in (getattr(m, '__file__', None) or '')}\n"
        "print(json.dumps(sorted({d for t in files for d in owners.get(t, [t])})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = {re.sub(r"[-_.]+", "-", d).lower() for d in json.loads(out.stdout.splitlines()[-1])}
    assert {"flask", "gunicorn", "gevent", "pymysql", "prometheus-flask-exporter"} <= loaded
    undeclared = loaded - set(pins(REPO / "requirements.txt"))
    assert not undeclared, f"imported but not pinned in requirements.txt: {sorted(undeclared)}"
