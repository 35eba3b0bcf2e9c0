"""Factor VI, processes: web processes are stateless and share nothing; whatever must last is
in the database, so any process can serve any request and any process can vanish."""

from __future__ import annotations

import json

from tests.support.processes import kill_tree
from tests.support.web import WebProcess, create_user


def test_two_web_processes_share_nothing_but_the_database(database, tmp_path):
    first = WebProcess(database, tmp_path)
    second = WebProcess(database, tmp_path)
    try:
        user_id = create_user(first, "made-on-first@example.com")
        status, headers, body = second.request("GET", f"/users/{user_id}")
        assert status == 200
        assert json.loads(body)["email"] == "made-on-first@example.com"
        assert "Set-Cookie" not in headers  # no session to keep a client on one process

        status, _, _ = second.request("PATCH", f"/users/{user_id}", {"name": "Renamed"})
        assert status == 200
        kill_tree(first.process.pid)  # the first process vanishes, state and all
        first.process.wait(timeout=10)
        status, _, body = second.request("GET", f"/users/{user_id}")
        assert (status, json.loads(body)["name"]) == (200, "Renamed")
    finally:
        first.stop()
        assert second.stop() == 0
