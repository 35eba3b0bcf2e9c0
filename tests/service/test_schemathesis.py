"""schemathesis against the real web process: the OpenAPI document and the code agree.

`python -m service web` (gunicorn, 2 workers) on a fresh, migrated database, driven by
schemathesis' CLI with every check, every phase (examples, coverage, fuzzing, stateful, the
last following the document's links), a fixed seed and a bounded number of cases. It fails
on any failed check, on schemathesis erring or crashing, and when no case ran; the failing
cases are printed with a curl line to replay each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.web import WebProcess

pytestmark = pytest.mark.slow

SEED = 8
MAX_EXAMPLES = 20  # per operation and phase: about 390 cases, 15-25 s on 2 cores
MIN_CASES = 200  # far fewer means phases or operations silently stopped being tested


# Statuses that count as rejecting schema-violating input: schemathesis' defaults plus 413 and
# 414 (a body or request line over the server's limits is refused, and documented as such).
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 414, 415, 422, 428, 429, "5xx"]
"""


def run_schemathesis(url: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    config = tmp / "schemathesis.toml"
    config.write_text(CONFIG)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            f"--config-file={config}",
            "run",
            f"{url}/openapi.json",
            "--checks=all",
            "--phases=examples,coverage,fuzzing,stateful",
            f"--seed={SEED}",
            f"--max-examples={MAX_EXAMPLES}",
            "--generation-database=none",
            "--workers=1",
            "--request-timeout=10",
            "--no-color",
            "--report=json",
            f"--report-json-path={tmp / 'report.json'}",
        ],
        cwd=tmp,  # it keeps a cache folder (.schemathesis) in its working directory
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_schemathesis_finds_no_failure_against_the_real_process(database, tmp_path):
    web = WebProcess(database, tmp_path)
    try:
        result = run_schemathesis(web.url, tmp_path)
        print(result.stdout[-30000:], result.stderr[-5000:])
        exit_code = web.stop()
    finally:
        web.stop()
    assert result.returncode == 0, "schemathesis found failures, erred or crashed (output above)"
    report = json.loads((tmp_path / "report.json").read_text())
    cases = report["test_cases"]
    print(f"schemathesis ran {cases['generated']} cases (seed {SEED}), phases {report['phases']}")
    assert report["complete"] and report["exit_code"] == 0
    assert cases["with_failures"] == cases["errored"] == 0
    assert cases["generated"] >= MIN_CASES, "far fewer cases than usual: what stopped running?"
    assert report["operations"]["tested"] == report["operations"]["total"] == 9
    assert {name: p["status"] for name, p in report["phases"].items()} == dict.fromkeys(
        ("examples", "coverage", "fuzzing", "stateful"), "success"
    )
    # e.g. a pattern it cannot use (then it tests less than the document says), or operations
    # it never reached with real data
    assert not {kind: found for kind, found in report["warnings"].items() if found}
    assert exit_code == 0
    problems = [line for line in web.lines() if '"level": "ERROR"' in line]
    assert not problems, "the web process logged errors (an unhandled exception?)"
