"""bench/run.py: argument presets and the README's Results section."""

from __future__ import annotations

import pytest

from bench import run


def test_quick_is_shorter_than_the_full_run_and_the_full_run_fits_in_ten_minutes():
    quick, full = run.parse_args(["--quick"]), run.parse_args([])
    assert (quick.seconds, quick.rounds) < (full.seconds, full.rounds)
    assert run.estimate_seconds(full, count=6) <= 600


def test_unknown_variants_requests_or_modes_are_refused_before_anything_starts(capsys):
    for argv in (["--variants", "service,nope"], ["--requests", "delete"], ["--modes", "h2"]):
        with pytest.raises(SystemExit) as exc:
            run.parse_args(argv)
        assert exc.value.code == 2
    assert "choose from" in capsys.readouterr().err


def test_results_section_is_replaced_and_the_rest_of_the_readme_kept():
    readme = f"# B\n\n## Results\n\n{run.MARK_START}\nold\n{run.MARK_END}\n\n## After\n"
    filled = run.fill_results(readme, "| new |\n")
    assert filled == f"# B\n\n## Results\n\n{run.MARK_START}\n| new |\n{run.MARK_END}\n\n## After\n"
    assert run.fill_results(filled, "again\n").count(run.MARK_START) == 1
    with pytest.raises(RuntimeError, match="no <!-- results:start -->"):
        run.fill_results("# no markers\n", "x")


def test_the_readme_has_the_results_markers():
    assert run.MARK_START in run.README.read_text()
    assert run.MARK_END in run.README.read_text()
