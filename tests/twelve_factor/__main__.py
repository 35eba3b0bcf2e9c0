"""`make factors`: run every factor's proofs (tests/twelve_factor/catalog.py) in one pytest
session and print one row per factor: its proofs, and pass or fail.

    .venv/bin/python -m tests.twelve_factor [pytest options, e.g. -x]

A factor passes when every test of its module and every linked test passed. A skipped proof is
not a pass: the row says `skip`, and the exit status is 1 under CI=true (where nothing may be
missing) and 0 otherwise, after a loud line. A linked test that no longer exists fails its row.
The image-tier proofs are listed, not run: `make test-container` runs them.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict

import pytest

from tests.twelve_factor.catalog import FACTORS, Factor


class _Outcomes:
    """pytest plugin: the outcome of every test, by node id (a failed setup or teardown counts)."""

    def __init__(self) -> None:
        self.by_id: dict[str, str] = defaultdict(lambda: "passed")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.by_id[report.nodeid] = "failed"
        elif report.skipped and self.by_id[report.nodeid] != "failed":
            self.by_id[report.nodeid] = "skipped"
        else:
            self.by_id.setdefault(report.nodeid, "passed")


def verdict(factor: Factor, outcomes: dict[str, str]) -> tuple[str, int, list[str]]:
    """(pass/fail/skip, tests run, what failed or was skipped) for one factor."""
    module = factor.node_ids[0]
    ran = {nodeid: result for nodeid, result in outcomes.items() if nodeid.startswith(module)}
    problems = [] if ran else [f"{module}: no test ran"]
    for link in factor.links:
        matching = {n: r for n, r in outcomes.items() if n == link or n.startswith(link + "[")}
        if not matching:
            problems.append(f"{link}: not collected (renamed or removed?)")
        ran |= matching
    problems += [f"{nodeid}: {result}" for nodeid, result in ran.items() if result != "passed"]
    if any(not p.endswith("skipped") for p in problems):
        return "fail", len(ran), problems
    return ("skip" if problems else "pass"), len(ran), problems


def table(rows: list[tuple[Factor, str, int, list[str]]]) -> str:
    lines = [f"{'#':>2}  {'factor':<20} {'proof':<52} {'tests':>5}  result"]
    for factor, result, count, _ in rows:
        proof = f"{factor.module} + {len(factor.links)} linked"
        lines.append(f"{factor.number:>2}  {factor.name:<20} {proof:<52} {count:>5}  {result}")
    for factor, _, _, problems in rows:
        lines += [f"    factor {factor.number}: {p}" for p in problems]
    image = sorted({t for f in FACTORS for t in f.image})
    lines.append(f"image-tier proofs, run by `make test-container`: {len(image)}")
    lines += [f"    {t}" for t in image]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ids = list(dict.fromkeys(i for factor in FACTORS for i in factor.node_ids))
    outcomes = _Outcomes()
    code = pytest.main([*ids, "-p", "no:cacheprovider", *argv], plugins=[outcomes])
    rows = [(f, *verdict(f, outcomes.by_id)) for f in FACTORS]
    print("\n== the twelve factors (docs/twelve-factor.md)\n")
    print(table(rows))
    results = {result for _, result, _, _ in rows}
    if "fail" in results or code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return 1
    if "skip" in results:
        print("\n!!! some proofs were skipped: the factors above marked skip are NOT proven here")
        return 1 if os.environ.get("CI") == "true" else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
