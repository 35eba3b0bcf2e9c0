"""scripts/localdb.py (the throwaway MySQL-family server of `make run`), imported once, by path.

It is registered as the module `localdb`, so a script that imports it by that name gets this
same module object."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.support.paths import SCRIPTS
from tests.support.tools import missing


def _load() -> ModuleType:
    if "localdb" in sys.modules:
        return sys.modules["localdb"]
    spec = importlib.util.spec_from_file_location("localdb", SCRIPTS / "localdb.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["localdb"] = module
    spec.loader.exec_module(module)
    return module


localdb = _load()
free_port = localdb.free_port


SERVER_HINT = "install one (apt-get install mariadb-server)"


def require_server_binary(why: str, *, required: bool = False) -> Path:
    """The mariadbd/mysqld a test starts a server of its own with; missing, by the tool policy
    of tests/support/tools.py."""
    found = localdb.find_server_binary()
    if found is None:
        missing(f"no mariadbd/mysqld binary {why}: {SERVER_HINT}", required=required)
    return found
