"""Versioned, forward-only SQL migrations, run as a one-off admin process.

Files `service/migrations/NNNN_description.sql` are applied in version order and recorded in
`schema_migrations` with a SHA-256 checksum. Concurrent runs are serialised by a MySQL
advisory lock (`GET_LOCK`, released by the server when the session ends, even if the process
is killed). A row is written "dirty" before a migration runs and cleaned after it, so a
migration that failed half-way (MySQL DDL commits implicitly and cannot be rolled back) is
detected and refused instead of being skipped. A migration file edited after it was applied
is refused too.

The web process never migrates; it only reads the status (`status()`), for `/readyz` and
`python -m service check`. Older code keeps working on a newer schema (expand/contract), so
"current" means every migration this code knows is applied and clean.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import time
from pathlib import Path

import pymysql
from pymysql.constants import ER

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
LOCK_TIMEOUT_SECONDS = 300
_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

log = logging.getLogger(__name__)

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INT UNSIGNED NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    checksum CHAR(64) NOT NULL,
    dirty BOOLEAN NOT NULL,
    started_at DATETIME(6) NOT NULL,
    finished_at DATETIME(6) NULL,
    execution_ms INT UNSIGNED NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4
"""


class MigrationError(Exception):
    """The schema cannot be migrated safely; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    name: str
    checksum: str
    statements: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Applied:
    version: int
    checksum: str
    dirty: bool


def split_statements(sql: str) -> tuple[str, ...]:
    """Split a migration file into statements: `;` at the end of a line ends one. Full-line
    `--` comments are dropped. (No stored routines with inner semicolons: keep DDL plain.)"""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    parts = re.split(r";[ \t]*(?:\n|$)", "\n".join(lines))
    return tuple(part.strip() for part in parts if part.strip())


def load_migrations(directory: Path = MIGRATIONS_DIR) -> tuple[Migration, ...]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_description.sql")
        data = path.read_bytes()
        migrations.append(
            Migration(
                version=int(match[1]),
                name=path.stem,
                checksum=hashlib.sha256(data).hexdigest(),
                statements=split_statements(data.decode("utf-8")),
            )
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return tuple(migrations)


def _applied(cursor: pymysql.cursors.Cursor) -> dict[int, Applied]:
    cursor.execute("SELECT version, checksum, dirty FROM schema_migrations")
    return {row[0]: Applied(row[0], row[1], bool(row[2])) for row in cursor.fetchall()}


def _problems(known: tuple[Migration, ...], applied: dict[int, Applied]) -> list[str]:
    """Reasons the recorded history is unsafe to build on: dirty rows and edited files.

    Only migrations this code ships count. A newer release's migration that failed (dirty, and
    unknown here) is that release's to repair: the version being rolled back to still has every
    migration it knows applied, so it keeps serving and its own `migrate` has nothing to do.
    """
    versions = {m.version for m in known}
    problems = [
        f"migration {v} is dirty: it failed or was interrupted. Repair the schema by hand, then "  # noqa: S608 - advice text, not a query
        f"DELETE FROM schema_migrations WHERE version = {v} to let it run again"
        for v, row in sorted(applied.items())
        if row.dirty and v in versions
    ]
    problems += [
        f"migration {m.name} was changed after it was applied (checksum differs); "
        "add a new migration instead of editing an applied one"
        for m in known
        if m.version in applied and applied[m.version].checksum != m.checksum
    ]
    return problems


@dataclasses.dataclass(frozen=True)
class Status:
    expected: int
    current: int
    pending: tuple[int, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.pending and not self.problems

    def reason(self) -> str:
        if self.problems:
            return self.problems[0]
        if self.pending:
            return f"schema is at version {self.current}, this code expects {self.expected}"
        return "schema is current"


def status(conn: pymysql.Connection, known: tuple[Migration, ...]) -> Status:
    """Compare the database's recorded migrations with the ones this code ships."""
    expected = max((m.version for m in known), default=0)
    with conn.cursor() as cursor:
        try:
            applied = _applied(cursor)
        except pymysql.err.ProgrammingError as exc:
            if exc.args[0] != ER.NO_SUCH_TABLE:  # nothing migrated yet
                raise
            applied = {}
    clean = [v for v, row in applied.items() if not row.dirty]
    return Status(
        expected=expected,
        current=max(clean, default=0),
        pending=tuple(m.version for m in known if m.version not in applied),
        problems=tuple(_problems(known, applied)),
    )


def _acquire_lock(cursor: pymysql.cursors.Cursor, name: str, timeout: int) -> None:
    cursor.execute("SELECT GET_LOCK(%s, %s)", (name, timeout))
    (got,) = cursor.fetchone()
    if got != 1:
        raise MigrationError(
            f"another migration holds the lock {name!r}; gave up after {timeout} s"
            if got == 0
            else f"could not take the lock {name!r}"
        )


def _apply(cursor: pymysql.cursors.Cursor, migration: Migration) -> int:
    started = time.monotonic()
    cursor.execute(
        "INSERT INTO schema_migrations (version, name, checksum, dirty, started_at) "
        "VALUES (%s, %s, %s, TRUE, UTC_TIMESTAMP(6))",
        (migration.version, migration.name, migration.checksum),
    )
    for statement in migration.statements:
        cursor.execute(statement)
    elapsed_ms = round((time.monotonic() - started) * 1000)
    cursor.execute(
        "UPDATE schema_migrations SET dirty = FALSE, finished_at = UTC_TIMESTAMP(6), "
        "execution_ms = %s WHERE version = %s",
        (elapsed_ms, migration.version),
    )
    return elapsed_ms


def migrate(
    conn: pymysql.Connection,
    known: tuple[Migration, ...],
    lock_timeout: int = LOCK_TIMEOUT_SECONDS,
) -> list[int]:
    """Apply every pending migration under the advisory lock; return the versions applied.
    `conn` must be in autocommit mode (DDL commits implicitly anyway)."""
    lock = f"schema_migrations:{conn.db.decode() if isinstance(conn.db, bytes) else conn.db}"[:64]
    with conn.cursor() as cursor:
        _acquire_lock(cursor, lock, lock_timeout)
        try:
            cursor.execute(CREATE_TABLE)
            applied = _applied(cursor)
            problems = _problems(known, applied)
            if problems:
                raise MigrationError(problems[0])
            done = []
            for migration in known:
                if migration.version in applied:
                    continue
                log.info("applying migration", extra={"migration": migration.name})
                elapsed_ms = _apply(cursor, migration)
                log.info(
                    "applied migration",
                    extra={"migration": migration.name, "duration_ms": elapsed_ms},
                )
                done.append(migration.version)
            return done
        finally:
            cursor.execute("SELECT RELEASE_LOCK(%s)", (lock,))
