"""bench/latency.py: wrk's coordinated-omission correction, undone exactly; and the same on a
real wrk run against a real server (a small threaded HTTP server in this process)."""

from __future__ import annotations

import http.server
import itertools
import random
import threading
import time
from collections.abc import Iterator

import pytest

from bench import latency, load
from tests.support.tools import require_tool


def test_the_correction_adds_a_sample_every_interval_below_a_slow_response():
    corrected = latency.correct({3: 10, 40: 1}, interval=10)
    assert corrected == {3: 10, 40: 1, 30: 1, 20: 1}  # 10 is not above one interval: not added


@pytest.mark.parametrize("seed", range(5))
def test_undoing_the_correction_gives_back_the_recorded_histogram(seed):
    rng = random.Random(seed)
    recorded: dict[int, int] = {}
    for _ in range(3000):
        value = int(rng.lognormvariate(7.5, 0.8))  # mostly ~2 ms, a tail to ~100 ms
        recorded[value] = recorded.get(value, 0) + 1
    interval = latency.interval_us(1_000_000, sum(recorded.values()), connections=8)
    assert interval is not None
    corrected = latency.correct(recorded, interval)
    assert sum(corrected.values()) > sum(recorded.values())
    assert latency.recorded_from(corrected, interval) == recorded


def test_a_histogram_the_correction_cannot_have_produced_is_refused():
    with pytest.raises(ValueError, match="not a wrk-corrected histogram"):
        latency.recorded_from({30: 1, 40: 2}, interval=10)


def test_without_a_full_round_per_connection_wrk_does_not_correct():
    assert latency.interval_us(1_000_000, responses=7, connections=8) is None
    assert latency.recorded_from({5: 1, 900: 2}, None) == {5: 1, 900: 2}


def test_percentiles_follow_wrks_rank_rule():
    histogram = {1: 98, 50: 1, 70: 1}
    assert latency.percentile(histogram, 50) == 1
    assert latency.percentile(histogram, 98) == 50  # rank round(98 + 0.5) = 99
    assert latency.percentile(histogram, 99) == 70  # rank 100


class _SometimesSlow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk's connections expect
    served = itertools.count(1)

    def do_GET(self) -> None:
        if next(self.served) % 40 == 0:
            time.sleep(0.05)
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def sometimes_slow_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SometimesSlow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_real_wrk_run_yields_one_recorded_latency_per_response(sometimes_slow_server, tmp_path):
    """The histogram read through LuaJIT's FFI is wrk's (run_wrk checks it against wrk's own
    p50 and p99), and undoing the correction leaves exactly one sample per response; a 50 ms
    pause every 40th request sets wrk's p99 far above the recorded one."""
    require_tool("wrk", "apt-get install wrk (.ci/run installs it)")
    what = load.Load("list", "keepalive", 1, 1, "")
    result = load.run_wrk(
        sometimes_slow_server, what, seconds=2, connections=4, threads=1, workdir=tmp_path
    )
    assert result["requests"] > 100
    assert result["recorded"] == result["requests"]
    assert result["p50_ms"] < 50
    assert result["p99_wrk_ms"] >= result["p99_ms"]
