"""service/cli.py: the admin process types as one-off commands."""

from __future__ import annotations

import json

from tests.support.cli import Runner
from tests.support.localdb import free_port


def events(result) -> list[dict]:
    return [json.loads(line) for line in result.output.splitlines()]


def test_check_passes_on_a_migrated_database(runner):
    result = runner.invoke("check")
    assert result.exit_code == 0, result.output
    assert events(result)[-1]["message"] == "ready"


def test_check_fails_with_one_reason_before_migrating(fresh_database):
    result = Runner(fresh_database).invoke("check")
    assert result.exit_code == 1
    assert "expects 1" in events(result)[-1]["message"]


def test_migrate_is_idempotent_and_logs_json(fresh_database):
    runner = Runner(fresh_database)
    first = runner.invoke("migrate")
    assert first.exit_code == 0, first.output
    assert events(first)[-1]["applied"] == [1]
    second = runner.invoke("migrate")
    assert second.exit_code == 0
    assert events(second)[-1]["applied"] == []


def test_migrate_against_an_unreachable_database_fails_with_one_line(fresh_database):
    result = Runner(fresh_database).invoke(
        "migrate", env={"DATABASE_PORT": str(free_port()), "DATABASE_CONNECT_TIMEOUT": "1"}
    )
    assert result.exit_code == 1
    assert events(result)[-1]["message"].startswith("database unavailable")
    assert fresh_database["MIGRATE_DATABASE_PASSWORD"] not in result.output


def test_seed_demo_inserts_users_once(runner, client):
    assert runner.invoke("seed-demo", "--count", "3").exit_code == 0
    assert runner.invoke("seed-demo", "--count", "3").exit_code == 0
    emails = [u["email"] for u in client.get("/users").get_json()["items"]]
    assert emails == ["demo-1@example.com", "demo-2@example.com", "demo-3@example.com"]


def test_password_file_rotation_is_picked_up_by_the_next_connection(database, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("wrong")
    env = {**database, "DATABASE_PASSWORD": None, "DATABASE_PASSWORD_FILE": str(secret)}
    assert Runner({}).invoke("check", env=env).exit_code == 1
    secret.write_text(database["DATABASE_PASSWORD"])
    assert Runner({}).invoke("check", env=env).exit_code == 0
