"""The benchmark's database: one MariaDB/MySQL server, one fresh seeded database, shared by
every variant so that only the web process differs.

By default a throwaway server is started from the mariadbd/mysqld on PATH (scripts/localdb.py,
as the tests do) and only its process is counted as "MariaDB CPU". BENCH_DB_HOST/PORT/USER/
PASSWORD name an existing server instead (an account that may create databases and users);
then every mariadbd/mysqld process on this machine is counted, which includes other people's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pymysql

from bench import procstat

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SEED_COUNT = 1000


def _load_localdb() -> ModuleType:
    spec = importlib.util.spec_from_file_location("localdb", ROOT / "scripts" / "localdb.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["localdb"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


localdb = sys.modules.get("localdb") or _load_localdb()


@dataclass
class Database:
    admin: dict[str, Any]
    server_pids: list[int]  # whose CPU counts as the database's
    name: str = field(default_factory=lambda: f"bench_{secrets.token_hex(4)}")
    web_user: str = field(default_factory=lambda: f"bench_web_{secrets.token_hex(4)}")
    web_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    migrate_user: str = field(default_factory=lambda: f"bench_mig_{secrets.token_hex(4)}")
    migrate_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    _status: pymysql.Connection | None = field(default=None, repr=False)

    def connects(self) -> int:
        """The server's count of connections ever opened (status `Connections`), read over one
        admin connection kept for the run, so that reading it opens none. The difference over
        a sample is how many connections the variant under load opened: one per worker (or
        thread) once warm, unless its worker model opens one per client connection."""
        if self._status is None:
            self._status = pymysql.connect(**self.admin, autocommit=True)
        with self._status.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
            return int(cursor.fetchone()[1])

    def close(self) -> None:
        if self._status is not None:
            with contextlib.suppress(pymysql.err.Error):
                self._status.close()
            self._status = None

    def env(self) -> dict[str, str]:
        """The DATABASE_* variables every variant reads (the service and both baselines)."""
        return {
            "DATABASE_HOST": self.admin["host"],
            "DATABASE_PORT": str(self.admin["port"]),
            "DATABASE_USER": self.web_user,
            "DATABASE_PASSWORD": self.web_password,
            "DATABASE_NAME": self.name,
            "MIGRATE_DATABASE_USER": self.migrate_user,
            "MIGRATE_DATABASE_PASSWORD": self.migrate_password,
        }


@contextlib.contextmanager
def admin_server(workdir: pathlib.Path) -> Iterator[tuple[dict[str, Any], list[int], str]]:
    """(admin connection parameters, database server pids, label) for the run."""
    if os.environ.get("BENCH_DB_HOST"):
        admin = {
            "host": os.environ["BENCH_DB_HOST"],
            "port": int(os.environ.get("BENCH_DB_PORT", "3306")),
            "user": os.environ.get("BENCH_DB_USER", "root"),
            "password": os.environ.get("BENCH_DB_PASSWORD", ""),
        }
        yield admin, procstat.database_pids(), f"{admin['host']}:{admin['port']} (BENCH_DB_HOST)"
        return
    if localdb.find_server_binary() is None:
        raise SystemExit(f"bench: {localdb.INSTALL_HINT}")
    server = localdb.start_server(workdir / "mysql")
    try:
        yield server.conn_params(), [server.process.pid], f"{server.label} (throwaway)"
    finally:
        server.stop()


@contextlib.contextmanager
def bench_database(
    admin: dict[str, Any], server_pids: list[int], base_env: dict[str, str]
) -> Iterator[Database]:
    """A new database, migrated and seeded with SEED_COUNT users by the service's own commands;
    dropped (with its users) on the way out, also on failure."""
    db = Database(admin, server_pids)
    try:
        localdb.create_database(
            admin, db.name, db.web_user, db.web_password, db.migrate_user, db.migrate_password
        )
        env = base_env | db.env()
        for args in (["migrate"], ["seed-demo", "--count", str(SEED_COUNT)]):
            subprocess.run(
                [PYTHON, "-m", "service", *args],
                env=env,
                cwd=ROOT,
                check=True,
                timeout=120,
                stdout=subprocess.DEVNULL,
            )
        yield db
    finally:
        db.close()
        localdb.drop_database(admin, db.name, [db.web_user, db.migrate_user])


def seeded_id_range(db: Database) -> tuple[int, int]:
    """The seeded ids, checked to be one contiguous block (GETs pick from it at random)."""
    conn = pymysql.connect(
        host=db.admin["host"],
        port=db.admin["port"],
        user=db.web_user,
        password=db.web_password,
        database=db.name,
    )
    with conn, conn.cursor() as cursor:
        cursor.execute("SELECT MIN(id), MAX(id), COUNT(*) FROM users")
        low, high, count = cursor.fetchone()
    if count != SEED_COUNT or high - low + 1 != count:
        raise RuntimeError(f"unexpected seed: ids {low}..{high}, {count} rows")
    return int(low), int(high)
