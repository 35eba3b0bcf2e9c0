"""The repository's own scripts (scripts/, k8s-dev/cluster/), imported by path: the one way the
suite loads a file that is not a package module.

A script is registered in sys.modules under its module name, so a script that imports another by
name (node.py imports dockerd, build.py imports oci) gets the very module object the tests hold.
`as_name` registers it under another name where the file's own name is taken (k8s-dev's build.py
against the `build` package of PyPI)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def import_script(path: Path, as_name: str | None = None) -> ModuleType:
    """The module of the script at `path`, executed once per name."""
    name = as_name or path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f"{path} cannot be imported"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
