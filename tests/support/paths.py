"""Where things are in the repository, for every test tier."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart"
SCRIPTS = REPO / "scripts"
TOOLS = REPO / ".tools" / "bin"
