"""scripts/localdb.py (the throwaway MySQL-family server of `make run`), imported once, by path.

It is registered as the module `localdb`, so a script that imports it by that name gets this
same module object."""

from __future__ import annotations

from pathlib import Path

from tests.support.paths import SCRIPTS
from tests.support.scripts import import_script
from tests.support.tools import missing

localdb = import_script(SCRIPTS / "localdb.py")
free_port = localdb.free_port


SERVER_HINT = "install one (apt-get install mariadb-server)"


def require_server_binary(why: str, *, required: bool = False) -> Path:
    """The mariadbd/mysqld a test starts a server of its own with; missing, by the tool policy
    of tests/support/tools.py."""
    found = localdb.find_server_binary()
    if found is None:
        missing(f"no mariadbd/mysqld binary {why}: {SERVER_HINT}", required=required)
    return found
