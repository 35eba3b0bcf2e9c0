"""Factor IV, backing services: the database is an attached resource, named by DATABASE_* only;
pointing the same code at another server or database is a change of environment."""

from __future__ import annotations

import json

from tests.support.database import database_env, migrate_env
from tests.support.web import WebProcess, create_user


def _emails(web: WebProcess) -> set[str]:
    status, _, body = web.request("GET", "/users?limit=100")
    assert status == 200
    return {user["email"] for user in json.loads(body)["items"]}


def test_swapping_the_database_is_a_change_of_environment_only(database, mysql_admin, tmp_path):
    with database_env(mysql_admin) as other:
        migrate_env(other)
        first = WebProcess(database, tmp_path)
        second = WebProcess(other, tmp_path)
        try:
            create_user(first, "first@example.com")
            create_user(second, "second@example.com")
            assert _emails(first) == {"first@example.com"}
            assert _emails(second) == {"second@example.com"}
            assert first.env.keys() == second.env.keys()
            changed = {k for k in first.env if first.env[k] != second.env[k]}
            assert changed <= {
                "DATABASE_USER",
                "DATABASE_PASSWORD",
                "DATABASE_NAME",
                "MIGRATE_DATABASE_USER",
                "MIGRATE_DATABASE_PASSWORD",
                "PORT",
                "PROMETHEUS_MULTIPROC_DIR",
            }
        finally:
            assert first.stop() == 0
            assert second.stop() == 0
