"""`python -m service …` invoked in-process (click's CliRunner) with a given environment."""

from __future__ import annotations

import os

from click.testing import CliRunner, Result

from service.cli import main


class Runner:
    """Invokes `python -m service …` in-process with a given environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def invoke(self, *args: str, env: dict[str, str] | None = None) -> Result:
        environ: dict[str, str | None] = {**self.env, **(env or {})}
        # CliRunner overlays env on os.environ; blank out the DATABASE_* it must not inherit.
        for key in os.environ:
            if key.startswith(("DATABASE_", "MIGRATE_DATABASE_")) and key not in environ:
                environ[key] = None
        return CliRunner().invoke(main, list(args), env=environ)
