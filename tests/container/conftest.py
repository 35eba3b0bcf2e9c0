"""Fixtures for the container tier (tests/container).

test_image.py, test_mysql_standin.py and test_compose.py need the images and the private dockerd
that scripts/test-container.sh (`make test-container`) provides (CONTAINER_IMAGE,
CONTAINER_MYSQL_IMAGE, DOCKER_HOST) and skip with the reason printed without them;
test_build_files.py (hadolint, `docker compose config`, the compose init script) needs no daemon
and runs in plain `make test` as well. The database fixtures of tests/conftest.py (`mysql_admin`:
TEST_DATABASE_* if set, else a throwaway server on loopback) apply here too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.database import database_env

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(scope="module")
def container_db(mysql_admin: dict) -> Iterator[dict[str, str]]:
    """DATABASE_* and MIGRATE_DATABASE_* for a new database (random names) on the test server,
    with a DML-only web user and a DDL migrate user; dropped afterwards."""
    if str(mysql_admin["host"]) not in LOOPBACK:
        pytest.fail(
            f"TEST_DATABASE_HOST={mysql_admin['host']}: the containers use --network host and "
            "must reach the database on loopback"
        )
    with database_env(mysql_admin, prefix="ct", host="127.0.0.1") as env:
        yield env
