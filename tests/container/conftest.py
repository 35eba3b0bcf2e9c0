"""Fixtures for the container tier (tests/container).

test_image.py, test_mysql_standin.py and test_compose.py need the images and the private dockerd
that scripts/test-container.sh (`make test-container`) provides (CONTAINER_IMAGE,
CONTAINER_MYSQL_IMAGE, DOCKER_HOST) and skip with the reason printed without them;
test_build_files.py (hadolint, `docker compose config`, the compose init script) needs no daemon
and runs in plain `make test` as well. The database fixtures of tests/conftest.py (`mysql_admin`:
TEST_DATABASE_* if set, else a throwaway server on loopback) apply here too.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import localdb  # noqa: E402

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
    tag = secrets.token_hex(4)
    name, web, mig = f"ct_{tag}", f"ct_{tag}_web", f"ct_{tag}_mig"
    web_pw, mig_pw = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    localdb.create_database(mysql_admin, name, web, web_pw, mig, mig_pw)
    try:
        yield {
            "DATABASE_HOST": "127.0.0.1",
            "DATABASE_PORT": str(mysql_admin["port"]),
            "DATABASE_NAME": name,
            "DATABASE_USER": web,
            "DATABASE_PASSWORD": web_pw,
            "MIGRATE_DATABASE_USER": mig,
            "MIGRATE_DATABASE_PASSWORD": mig_pw,
        }
    finally:
        localdb.drop_database(mysql_admin, name, [web, mig])
