"""bench/report.py: medians over rounds, ratios to the baseline, and the goal verdict."""

from __future__ import annotations

from bench import report


def sample(
    rps: float, p99: float, cpu: float = 0.5, errors: int = 0, wrk_p99: float | None = None
) -> dict:
    return {
        "rps": rps,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "p99_wrk_ms": p99 if wrk_p99 is None else wrk_p99,
        "cpu_ms_per_req": cpu,
        "db_cpu_ms_per_req": 0.1,
        "foreign_cores": 0.0,
        "errors": errors,
        "http_errors": 0,
    }


def table(service: list[dict], baseline: list[dict]) -> dict[str, list[str]]:
    samples = {"service": {"close": {"get": service}}, "baseline": {"close": {"get": baseline}}}
    rows = report.rows_for(report.summaries(samples), "close", "get")
    return {row[0]: dict(zip(report.COLUMNS, row, strict=True)) for row in rows}


def test_medians_over_rounds_and_errors_summed():
    rows = table(
        [sample(100, 9, errors=1), sample(300, 1), sample(200, 5, errors=2)], [sample(200, 5)]
    )
    assert rows["service"]["req/s"] == "200"
    assert rows["service"]["p99 ms"] == "5"
    assert rows["service"]["errors"] == "3"


def test_ratios_are_to_the_baseline_of_the_same_load_and_request():
    rows = table([sample(110, 4, cpu=0.75)], [sample(100, 5, cpu=0.5)])
    assert rows["service"]["x base"] == "1.10"
    assert rows["service"]["p99 x base"] == "0.80"
    assert rows["service"]["CPU x base"] == "1.50"
    assert rows["baseline"]["x base"] == "1.00"


def test_goal_is_met_only_with_both_throughput_and_p99_at_least_as_good():
    assert table([sample(100, 5)], [sample(100, 5)])["service"]["goal"] == "met"
    assert table([sample(99, 4)], [sample(100, 5)])["service"]["goal"] == "missed"
    assert table([sample(120, 5.5)], [sample(100, 5)])["service"]["goal"] == "missed"
    assert table([sample(120, 5.5)], [sample(100, 5)])["baseline"]["goal"] == ""


def test_goal_needs_the_p99_wrk_reports_too_not_only_the_recorded_one():
    worse_after_correction = sample(120, 4, wrk_p99=9)
    assert table([worse_after_correction], [sample(100, 5)])["service"]["goal"] == "missed"
    assert table([worse_after_correction], [sample(100, 5)])["service"]["wrk p99 x base"] == "1.80"


def test_markdown_has_one_table_per_load_and_request():
    samples = {
        "baseline": {
            m: {r: [sample(1, 1)] for r in ("get", "post")} for m in ("keepalive", "close")
        }
    }
    info = {
        "baseline": {
            "starts": [{"first_get": 0.5}],
            "memory": {"rss_kib": 1024, "pss_kib": 512, "processes": 3},
        }
    }
    text = report.render(
        info, report.summaries(samples), ["keepalive", "close"], ["get", "post"], md=True
    )
    assert text.count("#### ") == 5  # 2 modes x 2 requests + start and memory
    assert "#### Connection: close, POST /users" in text
