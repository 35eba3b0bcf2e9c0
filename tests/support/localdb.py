"""scripts/localdb.py (the throwaway MySQL-family server of `make run`), imported once, by path.

It is registered as the module `localdb`, so a script that imports it by that name gets this
same module object."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.support.paths import SCRIPTS


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
