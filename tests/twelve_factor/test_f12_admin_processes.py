"""Factor XII, admin processes: migrations, checks and data tasks are one-off processes of the
same code, run with the same environment as the web process (Jobs on Kubernetes)."""

from __future__ import annotations

import json

from tests.support.web import WebProcess, run_service


def test_admin_commands_are_one_off_processes_of_the_same_code_and_environment(
    fresh_database, tmp_path
):
    listed = run_service("--help", env={})
    assert listed.returncode == 0
    for command in ("web", "migrate", "check", "seed-demo"):
        assert f"  {command} " in listed.stdout

    before = run_service("check", env=fresh_database)
    assert before.returncode != 0  # nothing migrated yet, and it says so
    for command in (["migrate"], ["migrate"], ["check"], ["seed-demo", "--count", "5"]):
        done = run_service(*command, env=fresh_database)
        assert done.returncode == 0, done.stdout + done.stderr

    web = WebProcess(fresh_database, tmp_path)  # the same variables, the long-running process
    try:
        status, _, body = web.request("GET", "/users?limit=100")
        assert status == 200
        assert len(json.loads(body)["items"]) == 5
    finally:
        assert web.stop() == 0
