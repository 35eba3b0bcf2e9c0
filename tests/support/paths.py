"""Where things are in the repository, for every test tier."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart"
SCRIPTS = REPO / "scripts"
CLUSTER = REPO / "k8s-dev" / "cluster"  # the local cluster's scripts (node.py, build.py, …)
TOOLS = REPO / ".tools" / "bin"
