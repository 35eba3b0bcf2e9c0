"""service/migrations.py: forward-only, checksummed, locked, dirty-aware schema migrations."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pymysql
import pytest

from service import db
from service.migrations import (
    MIGRATIONS_DIR,
    MigrationError,
    load_migrations,
    migrate,
    split_statements,
    status,
)
from service.settings import load_settings


def connect(env: dict[str, str], *, migrate_user: bool = True) -> pymysql.Connection:
    settings = load_settings(env)
    return db.connect(settings.migrate_database if migrate_user else settings.database)


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target)
    return target


def test_empty_database_is_migrated_to_the_latest_version(fresh_database):
    known = load_migrations()
    with connect(fresh_database) as conn:
        assert status(conn, known).pending == tuple(m.version for m in known)
        assert migrate(conn, known) == [m.version for m in known]
        after = status(conn, known)
    assert after.ok
    assert after.current == max(m.version for m in known)


def test_second_run_applies_nothing(fresh_database):
    known = load_migrations()
    with connect(fresh_database) as conn:
        migrate(conn, known)
        assert migrate(conn, known) == []


def test_two_concurrent_runs_apply_each_migration_exactly_once(fresh_database, migrations_dir):
    (migrations_dir / "0002_slow.sql").write_text("SELECT SLEEP(1);\n")
    known = load_migrations(migrations_dir)
    results: list[list[int]] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        with connect(fresh_database) as conn:
            barrier.wait()
            results.append(migrate(conn, known))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=len) == [[], [1, 2]]


def test_lock_held_elsewhere_times_out_with_a_clear_error(fresh_database):
    with connect(fresh_database) as holder, connect(fresh_database) as conn:
        with holder.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (f"schema_migrations:{conn.db.decode()}",))
        with pytest.raises(MigrationError, match="holds the lock"):
            migrate(conn, load_migrations(), lock_timeout=1)


def test_failed_migration_is_left_dirty_and_refused_next_time(fresh_database, migrations_dir):
    (migrations_dir / "0002_broken.sql").write_text(
        "ALTER TABLE users ADD COLUMN nick TEXT;\nTHIS IS NOT SQL;\n"
    )
    known = load_migrations(migrations_dir)
    with connect(fresh_database) as conn:
        with pytest.raises(pymysql.err.ProgrammingError):
            migrate(conn, known)
        assert not status(conn, known).ok
        with pytest.raises(MigrationError, match="migration 2 is dirty"):
            migrate(conn, known)


def test_a_newer_releases_failed_migration_leaves_the_old_code_serving(
    fresh_database, migrations_dir
):
    # A rollout whose migration fails: the running version must stay ready and its own migrate
    # (helm rollback re-runs it) must succeed; the new code still refuses until it is repaired.
    (migrations_dir / "0002_broken.sql").write_text(
        "ALTER TABLE users ADD COLUMN nick TEXT;\nTHIS IS NOT SQL;\n"
    )
    old_code, new_code = load_migrations(), load_migrations(migrations_dir)
    with connect(fresh_database) as conn:
        migrate(conn, old_code)
        with pytest.raises(pymysql.err.ProgrammingError):
            migrate(conn, new_code)
        assert status(conn, old_code).ok, status(conn, old_code).reason()
        assert migrate(conn, old_code) == []
        assert not status(conn, new_code).ok
        with pytest.raises(MigrationError, match="migration 2 is dirty"):
            migrate(conn, new_code)


def test_migration_edited_after_it_was_applied_is_refused(fresh_database, migrations_dir):
    with connect(fresh_database) as conn:
        migrate(conn, load_migrations(migrations_dir))
        first = sorted(migrations_dir.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        edited = load_migrations(migrations_dir)
        with pytest.raises(MigrationError, match="changed after it was applied"):
            migrate(conn, edited)
        assert "changed after it was applied" in status(conn, edited).reason()


def test_newer_schema_than_the_code_knows_still_counts_as_current(fresh_database, migrations_dir):
    (migrations_dir / "0002_extra.sql").write_text("CREATE INDEX users_name ON users (name);\n")
    with connect(fresh_database) as conn:
        migrate(conn, load_migrations(migrations_dir))
        assert status(conn, load_migrations()).ok  # old code, expanded schema: still serves


def test_web_user_cannot_run_ddl(fresh_database):
    with (
        connect(fresh_database, migrate_user=False) as conn,
        pytest.raises(pymysql.err.OperationalError),
    ):
        migrate(conn, load_migrations())


def test_statements_split_on_line_ending_semicolons_and_skip_comments():
    sql = "-- a comment; with a semicolon\nCREATE TABLE a (x INT);\nCREATE TABLE b (y INT)\n;\n"
    assert split_statements(sql) == ("CREATE TABLE a (x INT)", "CREATE TABLE b (y INT)")


def test_badly_named_migration_file_is_rejected(migrations_dir):
    (migrations_dir / "3_oops.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_description\.sql"):
        load_migrations(migrations_dir)
