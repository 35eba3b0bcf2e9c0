"""Factor XI, logs: every process writes its event stream as JSON lines to stdout, unbuffered,
and never to a file; routing and storage are the platform's job."""

from __future__ import annotations

import json

from tests.support.paths import REPO
from tests.support.web import WebProcess, run_service


def _json_lines(text: str) -> list[dict]:
    lines = text.splitlines()
    assert lines, "no events at all"
    return [json.loads(line) for line in lines]


def test_every_process_writes_json_lines_to_stdout_nothing_to_stderr_and_no_file(
    fresh_database, tmp_path
):
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    # The code is found through PYTHONPATH, as the image finds it in /app: cwd stays empty.
    env = {**fresh_database, "HOME": str(home), "PYTHONPATH": str(REPO)}
    for command in (["migrate"], ["check"], ["seed-demo", "--count", "3"]):
        done = run_service(*command, env=env, cwd=cwd)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stderr == ""
        assert all(e["level"] for e in _json_lines(done.stdout))

    web = WebProcess(env, tmp_path, cwd=cwd, separate_stderr=True)
    try:
        assert web.request("GET", "/users")[0] == 200
        assert web.request("GET", "/nowhere")[0] == 404
    finally:
        assert web.stop() == 0
    events = _json_lines(web.log.read_text())
    assert {"service.access"} <= {e["logger"] for e in events}
    assert web.err_log.read_text() == ""
    assert list(cwd.iterdir()) == []
    assert list(home.iterdir()) == []
