"""Factor IX, disposability: processes start fast and stop gracefully on SIGTERM (linked
tests), and a sudden death loses nothing that was acknowledged."""

from __future__ import annotations

import json

from tests.support.processes import kill_tree
from tests.support.web import WebProcess, create_user


def test_a_crashed_process_loses_no_acknowledged_write_and_a_new_one_serves_it(database, tmp_path):
    first = WebProcess(database, tmp_path)
    user_id = create_user(first, "acknowledged@example.com")  # the 201 has arrived
    kill_tree(first.process.pid)  # SIGKILL, master and workers: no shutdown code runs
    first.process.wait(timeout=10)
    replacement = WebProcess(database, tmp_path)
    try:
        status, _, body = replacement.request("GET", f"/users/{user_id}")
        assert (status, json.loads(body)["email"]) == (200, "acknowledged@example.com")
    finally:
        assert replacement.stop() == 0
