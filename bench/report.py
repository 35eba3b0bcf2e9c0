"""From raw samples to the tables: medians over rounds, ratios to `baseline`, text and Markdown.

Ratios are variant / baseline for the same load and request: req/s above 1.0 is faster, p99
and CPU per request below 1.0 are better. p50 and p99 are the latencies wrk recorded; "wrk p99"
is the p99 wrk itself reports, after its coordinated-omission correction (bench/latency.py).
The issue's goal for the service is req/s >= 1.0x and p99 <= 1.0x on every load and request;
the `goal` column says whether this run met it, on both p99s.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

from bench.load import LABELS

BASE = "baseline"
COLUMNS = (
    "variant",
    "req/s",
    "x base",
    "p50 ms",
    "p99 ms",
    "p99 x base",
    "wrk p99 ms",
    "wrk p99 x base",
    "CPU ms/req",
    "CPU x base",
    "DB CPU ms/req",
    "DB connects",
    "errors",
    "foreign cores",
    "goal",
)


def _median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else math.nan


def summarise(samples: list[dict]) -> dict[str, float]:
    """Median of each measure over the rounds; errors summed over them."""
    keys = (
        "rps",
        "p50_ms",
        "p99_ms",
        "p99_wrk_ms",
        "cpu_ms_per_req",
        "db_cpu_ms_per_req",
        "foreign_cores",
    )
    summary = {key: _median(s[key] for s in samples if key in s) for key in keys}
    summary["db_connects"] = _median(s.get("db_connects", 0) for s in samples)
    summary["errors"] = sum(s["errors"] + s["http_errors"] for s in samples)
    summary["rounds"] = len(samples)
    return summary


def summaries(samples: dict) -> dict:
    """samples[variant][mode][request] -> list of samples  =>  same shape -> summary."""
    return {
        variant: {
            mode: {request: summarise(runs) for request, runs in by_request.items()}
            for mode, by_request in by_mode.items()
        }
        for variant, by_mode in samples.items()
    }


def _ratio(value: float, base: float | None) -> float | None:
    if base is None or not base or math.isnan(base) or math.isnan(value):
        return None
    return value / base


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def rows_for(summary: dict, mode: str, request: str) -> list[list[str]]:
    """One row per variant for one load mode and request."""
    base = summary.get(BASE, {}).get(mode, {}).get(request)
    out = []
    for variant, by_mode in summary.items():
        s = by_mode.get(mode, {}).get(request)
        if s is None:
            continue
        rps = _ratio(s["rps"], base and base["rps"])
        p99 = _ratio(s["p99_ms"], base and base["p99_ms"])
        wrk_p99 = _ratio(s["p99_wrk_ms"], base and base["p99_wrk_ms"])
        cpu = _ratio(s["cpu_ms_per_req"], base and base["cpu_ms_per_req"])
        goal = ""
        if variant.startswith("service") and None not in (rps, p99, wrk_p99):
            goal = "met" if rps >= 1.0 and p99 <= 1.0 and wrk_p99 <= 1.0 else "missed"
        out.append(
            [
                variant,
                _fmt(s["rps"]),
                _x(rps),
                _fmt(s["p50_ms"]),
                _fmt(s["p99_ms"]),
                _x(p99),
                _fmt(s["p99_wrk_ms"]),
                _x(wrk_p99),
                _fmt(s["cpu_ms_per_req"]),
                _x(cpu),
                _fmt(s["db_cpu_ms_per_req"]),
                f"{s['db_connects']:.0f}",
                str(int(s["errors"])),
                f"{s['foreign_cores']:.2f}",
                goal,
            ]
        )
    return out


def start_rows(results: dict) -> list[list[str]]:
    """Cold start and memory, one row per variant."""
    out = []
    for variant, info in results.items():
        health = [s["healthz"] for s in info["starts"] if "healthz" in s]
        first = [s["first_get"] for s in info["starts"]]
        out.append(
            [
                variant,
                info.get("worker_class", "-"),
                _fmt(_median(health)) if health else "-",
                _fmt(_median(first)),
                _fmt(max(first)),
                f"{info['memory']['rss_kib'] / 1024:.0f}",
                f"{info['memory']['pss_kib'] / 1024:.0f}",
                str(info["memory"]["processes"]),
            ]
        )
    return out


START_COLUMNS = (
    "variant",
    "gunicorn worker",
    "first /healthz s",
    "first GET s (median)",
    "(max)",
    "RSS MiB",
    "PSS MiB",
    "processes",
)


def text_table(header: Iterable[str], rows: list[list[str]]) -> str:
    header = list(header)
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    lines = []
    for line in [header, *rows]:
        cells = [
            x.ljust(w) if i == 0 else x.rjust(w)
            for i, (x, w) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def markdown_table(header: Iterable[str], rows: list[list[str]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(results: dict, summary: dict, modes: list[str], requests: list[str], md: bool) -> str:
    """All tables: one per load mode and request, then starts and memory."""
    table = markdown_table if md else text_table
    parts = []
    for mode in modes:
        for request in requests:
            title = f"{LABELS[mode]}, {LABELS[request]}"
            heading = f"#### {title}" if md else f"== {title}"
            parts.append(f"{heading}\n\n{table(COLUMNS, rows_for(summary, mode, request))}")
    heading = "#### Start and memory" if md else "== start and memory (after the load)"
    parts.append(f"{heading}\n\n{table(START_COLUMNS, start_rows(results))}")
    return "\n\n".join(parts) + "\n"
