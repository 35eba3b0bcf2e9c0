"""Latency percentiles from wrk's histogram, as recorded and as wrk reports them.

wrk 4 (Debian's 4.1.0 included) does not report the latencies it recorded. Before it prints
them, and before a script's `done()` sees them, it applies a coordinated-omission correction
(`stats_correct` in its stats.c): with `interval` = run time / (responses per connection), every
recorded latency L >= 2 x interval also counts as L - interval, L - 2 x interval, ... down to
just above one interval, as if the requests a closed-loop client did not send during a stall
had been sent on schedule and waited too. One 90 ms response on a connection whose requests
take 3 ms thus becomes about 30 samples, and a handful of slow responses can set p99.

Both views are worth reading: the correction estimates what clients arriving at a steady rate
would have seen (every request that arrives during a worker's pause waits for it), the
recorded latencies are what each request of this run took. `bench/load.py` reads wrk's
histogram in `done()` and hands it here, where the correction is undone exactly: for a value m
above one interval, the corrected count is the sum of the recorded counts at m, m + interval,
m + 2 x interval, ..., so the recorded count at m is corrected[m] - corrected[m + interval].

Histograms are {microseconds: count}; percentiles follow wrk's rank rule.
"""

from __future__ import annotations

Histogram = dict[int, int]


def interval_us(duration_us: int, responses: int, connections: int) -> int | None:
    """wrk's correction interval (integer arithmetic, as in wrk.c), or None when wrk skips it."""
    per_connection = responses // connections
    return duration_us // per_connection if per_connection > 0 else None


def correct(recorded: Histogram, interval: int) -> Histogram:
    """What wrk's `stats_correct` makes of a recorded histogram (used by the tests, and as the
    specification `recorded_from` inverts)."""
    out = dict(recorded)
    top = max(recorded, default=0)
    for n in range(2 * interval, top + 1):
        count = recorded.get(n, 0)
        m = n - interval
        while count and m > interval:
            out[m] = out.get(m, 0) + count
            m -= interval
    return out


def recorded_from(corrected: Histogram, interval: int | None) -> Histogram:
    """The histogram wrk recorded, from the one it reports. Raises ValueError when the input
    cannot be the output of wrk's correction (a count would be negative)."""
    if interval is None:
        return dict(corrected)
    out = {}
    for m, count in corrected.items():
        value = count - corrected.get(m + interval, 0) if m > interval else count
        if value < 0:
            raise ValueError(f"not a wrk-corrected histogram: {value} samples at {m} us")
        if value:
            out[m] = value
    return out


def rank(histogram: Histogram, p: float) -> int:
    """wrk's rank for percentile p: round(p / 100 x count + 0.5), C's round (half away from
    zero); wrk computes it in long double, so at an exact boundary it may differ by one."""
    return int(p / 100 * sum(histogram.values()) + 1)


def at_rank(histogram: Histogram, wanted: int) -> int:
    """The first value whose cumulative count reaches `wanted` (0 for an empty histogram)."""
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= wanted:
            return value
    return 0


def percentile(histogram: Histogram, p: float) -> int:
    """The value at percentile p, by wrk's rule."""
    return at_rank(histogram, rank(histogram, p))


def agrees_with_wrk(corrected: Histogram, p: float, reported: int) -> bool:
    """Whether wrk's own percentile fits this histogram (up to the rounding of its rank): the
    check that the histogram read through LuaJIT's FFI is the one wrk holds."""
    r = rank(corrected, p)
    return reported in {at_rank(corrected, k) for k in (r - 1, r, r + 1)}
