"""The load: wrk with a generated Lua script per request kind and connection mode.

wrk only, no fallback: a Python load generator would compete with the servers for the same two
cores and report other numbers, so a run without wrk would not be comparable with one with it.

Requests:  get   GET /users/<random seeded id>        (seeded per wrk thread and sample)
           list  GET /users?limit=20                  (the first page of the list)
           post  POST /users with a unique email      (prefix per sample, counter per thread)
Modes:     keepalive  wrk's persistent connections
           close      `Connection: close` on every request: one request per connection
"""

from __future__ import annotations

import json
import pathlib
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass

from bench import latency

HOST = "127.0.0.1"
REQUESTS = ("get", "list", "post")
MODES = ("keepalive", "close")
LABELS = {
    "get": "GET /users/<id>",
    "list": "GET /users?limit=20",
    "post": "POST /users",
    "keepalive": "keep-alive",
    "close": "Connection: close",
}
WRK_PACKAGE = "wrk"  # the Debian package

# Each wrk thread has its own Lua state: setup() (main state) numbers the threads, so random
# ids and email counters differ per thread.
_COMMON = """
local thread_count = 0
setup = function(thread)
  thread_count = thread_count + 1
  thread:set("thread_no", thread_count)
end
local headers = {{{headers}}}
"""

_GET = """
init = function(args)
  math.randomseed({seed} + thread_no)
end
request = function()
  return wrk.format("GET", "/users/" .. math.random({low}, {high}), headers)
end
"""

_LIST = """
local path = "/users?limit=20"
request = function()
  return wrk.format("GET", path, headers)
end
"""

_POST = """
local counter = 0
request = function()
  counter = counter + 1
  local body = '{{"name":"Bench User","email":"{prefix}' .. thread_no .. '-' .. counter
    .. '@example.com"}}'
  return wrk.format("POST", "/users", headers, body)
end
"""

# done(): the summary, wrk's own p50/p99, and its whole latency histogram. wrk's Lua API gives
# no access to the buckets, so the script reads wrk's `stats` struct (stats.h: count, limit,
# min, max, then one uint64 per microsecond) through LuaJIT's FFI; run_wrk checks what it read
# against wrk's percentiles. What the histogram holds, and why: bench/latency.py.
_DONE = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct {
  uint64_t count; uint64_t limit; uint64_t min; uint64_t max; uint64_t data[?];
} bench_wrk_stats;
]]
done = function(summary, latency, requests)
  local e = summary.errors
  local stats = ffi.cast("bench_wrk_stats **", latency)[0]
  local buckets = {}
  if tonumber(stats.count) > 0 then
    for us = tonumber(stats.min), tonumber(stats.max) do
      local n = tonumber(stats.data[us])
      if n > 0 then buckets[#buckets + 1] = "[" .. us .. "," .. n .. "]" end
    end
  end
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,'
    .. '"p50_us":%d,"p99_us":%d,"histogram":[%s]}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), table.concat(buckets, ",")))
end
"""


class WrkMissingError(RuntimeError):
    pass


def wrk_binary() -> str:
    """wrk's path, or WrkMissingError naming the package to install."""
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissingError(
            f"bench: wrk is not installed: install the Debian package {WRK_PACKAGE} "
            f"(apt-get install {WRK_PACKAGE}); `make bench` does so when run as root"
        )
    return found


def wrk_version() -> str:
    out = subprocess.run(
        [wrk_binary(), "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    return (out.stdout or out.stderr).split("Copyright")[0].strip()


@dataclass(frozen=True)
class Load:
    request: str  # one of REQUESTS
    mode: str  # one of MODES
    low: int  # seeded id range, for "get"
    high: int
    prefix: str  # unique email prefix, for "post"


def script(load: Load) -> str:
    """The Lua script for one sample (exposed for the harness's own tests)."""
    headers = []
    if load.mode == "close":
        headers.append('["Connection"] = "close"')
    if load.request == "post":
        headers.append('["Content-Type"] = "application/json"')
    text = _COMMON.format(headers=", ".join(headers))
    if load.request == "get":
        text += _GET.format(seed=secrets.randbelow(1 << 30), low=load.low, high=load.high)
    elif load.request == "list":
        text += _LIST
    else:
        text += _POST.format(prefix=load.prefix)
    return text + _DONE


def run_wrk(
    port: int,
    load: Load,
    *,
    seconds: int,
    connections: int,
    threads: int,
    workdir: pathlib.Path,
) -> dict:
    """One closed-loop sample: requests, req/s, p50/p99 (ms) as recorded and p99 as wrk reports
    it (bench/latency.py), socket errors, 4xx/5xx responses."""
    path = workdir / f"{load.request}-{load.mode}-{secrets.token_hex(4)}.lua"
    path.write_text(script(load))
    argv = [wrk_binary(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    out = subprocess.run(
        [*argv, "-s", str(path), f"http://{HOST}:{port}"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    match = re.search(r"^BENCH (\{.*\})$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no summary in wrk output:\n{out}")
    raw = json.loads(match.group(1))
    elapsed = raw["duration_us"] / 1e6
    reported = {int(us): int(n) for us, n in raw["histogram"]}
    for p in (50, 99):
        if reported and not latency.agrees_with_wrk(reported, p, raw[f"p{p}_us"]):
            raise RuntimeError(
                f"the histogram read from wrk does not give wrk's p{p} ({raw[f'p{p}_us']} us):"
                f" {wrk_version()} may lay out its stats differently from wrk 4.1.0"
            )
    interval = latency.interval_us(raw["duration_us"], raw["requests"], connections)
    recorded = latency.recorded_from(reported, interval)
    return {
        "requests": raw["requests"],
        "seconds": elapsed,
        "rps": raw["requests"] / elapsed,
        "p50_ms": latency.percentile(recorded, 50) / 1000,
        "p99_ms": latency.percentile(recorded, 99) / 1000,
        "p99_wrk_ms": raw["p99_us"] / 1000,
        "recorded": sum(recorded.values()),
        "errors": raw["errors"],
        "http_errors": raw["status_errors"],
    }
