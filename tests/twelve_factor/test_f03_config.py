"""Factor III, config: everything that varies between deploys is read from the environment, in
one place (service/settings.py), and nothing else in the code reads it."""

from __future__ import annotations

import ast
import json

from tests.support.paths import REPO
from tests.support.web import WebProcess

SETTINGS_READERS = {"load_settings", "load_endpoint"}  # service/settings.py's two entry points


def _environment_reads(path) -> list[str]:
    """Every use of os.environ / os.getenv in a module, except handing the whole mapping to
    settings.py and the one assignment that passes the metrics path on to gunicorn."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in {"environ", "getenv", "environb"}
        ):
            continue
        parent = parents[node]
        if isinstance(parent, ast.Call) and getattr(parent.func, "id", "") in SETTINGS_READERS:
            continue
        if isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store):
            continue
        found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_only_the_settings_module_reads_the_environment():
    modules = sorted((REPO / "service").glob("*.py"))
    assert len(modules) > 10
    reads = [r for m in modules if m.name != "settings.py" for r in _environment_reads(m)]
    assert reads == []


def test_the_same_code_behaves_differently_by_environment_alone(database, tmp_path):
    big = {"name": "Someone", "email": "big@example.com", "pad": "x" * 3000}
    default = WebProcess(database, tmp_path)
    try:
        status, _, _ = default.request("POST", "/users", big)
        assert status == 422  # read in full, refused for its unknown field: not for its size
    finally:
        assert default.stop() == 0
    small = WebProcess(database, tmp_path, overrides={"MAX_BODY_BYTES": "2048"})
    try:
        status, headers, body = small.request("POST", "/users", big)
        assert status == 413
        assert headers["Content-Type"] == "application/problem+json"
        assert json.loads(body)["status"] == 413
    finally:
        assert small.stop() == 0
