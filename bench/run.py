"""Benchmark the users service against the bare Flask + PyMySQL baseline (bench/baseline_app.py).

    .venv/bin/python bench/run.py [--seconds N] [--workers W] [--connections C] [--rounds R]
                                  [--starts S] [--json FILE]

Creates a database and two users with random names on the MariaDB/MySQL server at
$BENCH_DB_HOST:$BENCH_DB_PORT (127.0.0.1:3306, root, empty password by default), migrates it
with `python -m service migrate`, seeds 1000 users with `python -m service seed-demo`, then
runs three apps, each under gunicorn with W sync workers and its stdout going to a file:

  service        `python -m service web` (JSON access + error logs on stdout, Prometheus
                 multiprocess metrics in a temp dir, request ids, validation)
  baseline       `python -m gunicorn -w W bench.baseline_app:app`, gunicorn's access log off
                 (its default)
  baseline+log   the same with `--access-logfile -` (gunicorn's plain-text access log on stdout)

and measures for each:
  (1) seconds from process start to the first 200 on /healthz (service only) and on
      GET /users/<id> (all), over S cold starts (the last server is kept for the load);
  (2) requests/s and latency p50/p99 of GET /users/<random seeded id> and of POST /users (unique
      emails), C connections for N seconds, with wrk (Lua scripts) when it is on PATH, else a
      stdlib threaded http.client load generator. R rounds, the app order alternating each
      round; the table shows the median. Each sample also records, from /proc, the CPU time
      per request of the server (master + workers) and of MariaDB, the load generator's CPU
      and "foreign" CPU (everything else on the machine: other people's jobs);
  (3) RSS and PSS of the gunicorn master + workers after the load.
Processes, temp files and the database are removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import pathlib
import random
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pymysql

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYTHON = sys.executable
HOST = "127.0.0.1"
SEED_COUNT = 1000
READY_TIMEOUT = 30.0  # seconds a server gets to answer its first 200
STOP_TIMEOUT = 10.0  # seconds after SIGTERM before SIGKILL
POLL_INTERVAL = 0.005
WARMUP_SECONDS = 2


def _load_localdb() -> ModuleType:
    spec = importlib.util.spec_from_file_location("localdb", ROOT / "scripts" / "localdb.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["localdb"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


localdb = _load_localdb()


# --------------------------------------------------------------------------- database


@dataclass
class Database:
    admin: dict[str, Any]
    name: str = field(default_factory=lambda: f"bench_{secrets.token_hex(4)}")
    web_user: str = field(default_factory=lambda: f"bench_web_{secrets.token_hex(4)}")
    web_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    migrate_user: str = field(default_factory=lambda: f"bench_mig_{secrets.token_hex(4)}")
    migrate_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    def env(self) -> dict[str, str]:
        return {
            "DATABASE_HOST": self.admin["host"],
            "DATABASE_PORT": str(self.admin["port"]),
            "DATABASE_USER": self.web_user,
            "DATABASE_PASSWORD": self.web_password,
            "DATABASE_NAME": self.name,
            "MIGRATE_DATABASE_USER": self.migrate_user,
            "MIGRATE_DATABASE_PASSWORD": self.migrate_password,
        }


@contextlib.contextmanager
def bench_database(admin: dict[str, Any], base_env: dict[str, str]) -> Iterator[Database]:
    db = Database(admin)
    try:
        localdb.create_database(
            admin, db.name, db.web_user, db.web_password, db.migrate_user, db.migrate_password
        )
        env = base_env | db.env()
        for args in (["migrate"], ["seed-demo", "--count", str(SEED_COUNT)]):
            subprocess.run(
                [PYTHON, "-m", "service", *args],
                env=env,
                cwd=ROOT,
                check=True,
                timeout=120,
                stdout=subprocess.DEVNULL,
            )
        yield db
    finally:
        localdb.drop_database(admin, db.name, [db.web_user, db.migrate_user])


def seeded_id_range(db: Database) -> tuple[int, int]:
    conn = pymysql.connect(
        host=db.admin["host"],
        port=db.admin["port"],
        user=db.web_user,
        password=db.web_password,
        database=db.name,
    )
    with conn, conn.cursor() as cursor:
        cursor.execute("SELECT MIN(id), MAX(id), COUNT(*) FROM users")
        low, high, count = cursor.fetchone()
    if count != SEED_COUNT or high - low + 1 != count:
        raise RuntimeError(f"unexpected seed: ids {low}..{high}, {count} rows")
    return int(low), int(high)


# --------------------------------------------------------------------------- servers


@dataclass
class AppSpec:
    label: str
    argv: Callable[[int], list[str]]  # port -> argv
    env: Callable[[int, pathlib.Path], dict[str, str]]  # port, scratch dir -> env
    health_path: str | None  # the liveness path to time, if the app has one


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: pathlib.Path

    def pids(self) -> list[int]:
        """The master and its children (the workers)."""
        master = self.process.pid
        children: list[int] = []
        with contextlib.suppress(OSError):
            for task in pathlib.Path(f"/proc/{master}/task").iterdir():
                text = (task / "children").read_text()
                children += [int(pid) for pid in text.split()]
        return [master, *children]


def start(spec: AppSpec, workdir: pathlib.Path) -> Server:
    port = localdb.free_port()
    log = workdir / f"{spec.label}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            spec.argv(port),
            env=spec.env(port, workdir),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # its own process group: a Ctrl-C here reaches only us
        )
    return Server(process, port, log)


def stop(server: Server) -> None:
    process = server.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the group we created at start
            process.wait(STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # orphaned workers of a killed master, if any


def get_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def wait_for_200(server: Server, path: str, started: float) -> float:
    """Seconds from `started` to the first 200 on `path`; polls every 5 ms."""
    deadline = started + READY_TIMEOUT
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}: {tail(server)}")
        if get_status(server.port, path) == 200:
            return time.perf_counter() - started
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"no 200 on {path} within {READY_TIMEOUT}s: {tail(server)}")


def tail(server: Server, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(server.log.read_text(errors="replace").splitlines()[-lines:])
    return ""


def cold_start(spec: AppSpec, workdir: pathlib.Path, user_path: str) -> tuple[Server, dict]:
    started = time.perf_counter()
    server = start(spec, workdir)
    try:
        timings = {}
        if spec.health_path is not None:
            timings["healthz"] = wait_for_200(server, spec.health_path, started)
        timings["first_get"] = wait_for_200(server, user_path, started)
    except BaseException:
        stop(server)
        raise
    return server, timings


# --------------------------------------------------------------------------- /proc


def cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def database_pids() -> list[int]:
    """The MariaDB/MySQL server processes on this machine (their CPU time, read-only)."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in {"mariadbd", "mysqld"}:
                    found.append(int(entry.name))
    return found


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children (wrk runs as one)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def host_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    values = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def memory_kib(pids: list[int]) -> dict[str, int]:
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            status = pathlib.Path(f"/proc/{pid}/status").read_text()
            rss += int(re.search(r"^VmRSS:\s+(\d+)", status, re.MULTILINE).group(1))
        with contextlib.suppress(OSError):
            rollup = pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text()
            pss += int(re.search(r"^Pss:\s+(\d+)", rollup, re.MULTILINE).group(1))
    return {"rss_kib": rss, "pss_kib": pss, "processes": len(pids)}


# --------------------------------------------------------------------------- load


WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,'
    .. '"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""

WRK_GET = """
math.randomseed({seed})
request = function()
  return wrk.format("GET", "/users/" .. math.random({low}, {high}))
end
"""

WRK_POST = """
local counter = 0
local headers = {{["Content-Type"] = "application/json"}}
request = function()
  counter = counter + 1
  local body = '{{"name":"Bench User","email":"{prefix}' .. counter .. '@example.com"}}'
  return wrk.format("POST", "/users", headers, body)
end
"""


@dataclass
class Load:
    kind: str  # "get" or "post"
    low: int
    high: int
    prefix: str  # unique email prefix for POSTs


def run_wrk(port: int, load: Load, seconds: int, connections: int, workdir: pathlib.Path) -> dict:
    if load.kind == "get":
        body = WRK_GET.format(seed=secrets.randbelow(1 << 30), low=load.low, high=load.high)
    else:
        body = WRK_POST.format(prefix=load.prefix)
    script = workdir / f"{load.kind}-{load.prefix}.lua"
    script.write_text(body + WRK_DONE)
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    out = subprocess.run(
        [*argv, "-s", str(script), f"http://{HOST}:{port}"],
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
    return {
        "requests": raw["requests"],
        "seconds": elapsed,
        "rps": raw["requests"] / elapsed,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["errors"],
        "non_2xx": raw["status_errors"],
    }


def run_stdlib(port: int, load: Load, seconds: int, connections: int) -> dict:
    """A closed-loop load generator: `connections` threads, one request in flight each."""
    stop_at = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(connections)]
    failures = [0] * connections
    non_2xx = [0] * connections
    max_requests = 2_000_000  # per thread; the clock ends the loop long before this

    def worker(index: int) -> None:
        rng = random.Random(index)  # noqa: S311 - ids to fetch, not secrets
        for n in range(max_requests):
            if time.perf_counter() >= stop_at:
                return
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            if load.kind == "get":
                args: tuple = ("GET", f"/users/{rng.randint(load.low, load.high)}")
                headers = {}
            else:
                email = f"{load.prefix}{index}-{n}@example.com"
                body = json.dumps({"name": "Bench User", "email": email})
                args = ("POST", "/users", body)
                headers = {"Content-Type": "application/json"}
            began = time.perf_counter()
            try:
                conn.request(*args, headers=headers)
                response = conn.getresponse()
                response.read()
            except OSError:
                failures[index] += 1
                continue
            finally:
                conn.close()
            latencies[index].append(time.perf_counter() - began)
            if not 200 <= response.status < 300:
                non_2xx[index] += 1

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    elapsed = time.perf_counter() - began
    all_latencies = sorted(x for per in latencies for x in per)
    if not all_latencies:
        raise RuntimeError("no request succeeded")
    cuts = statistics.quantiles(all_latencies, n=100, method="inclusive")
    return {
        "requests": len(all_latencies),
        "seconds": elapsed,
        "rps": len(all_latencies) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "errors": sum(failures),
        "non_2xx": sum(non_2xx),
    }


def measure(
    server: Server,
    load: Load,
    seconds: int,
    connections: int,
    workdir: pathlib.Path,
    *,
    warm: bool,
) -> dict:
    def generate(what: Load, duration: int) -> dict:
        if shutil.which("wrk"):
            return run_wrk(server.port, what, duration, connections, workdir)
        return run_stdlib(server.port, what, duration, connections)

    warm_load = Load(load.kind, load.low, load.high, load.prefix + "warm-")  # emails stay unique
    if warm:  # every worker connected, caches and pages warm
        generate(warm_load, WARMUP_SECONDS)
    pids, db_pids = server.pids(), database_pids()
    before = (cpu_seconds(pids), cpu_seconds(db_pids), children_cpu(), host_busy_seconds())
    result = generate(load, seconds)
    after = (cpu_seconds(pids), cpu_seconds(db_pids), children_cpu(), host_busy_seconds())
    cpu, db_cpu, load_cpu, busy = (b - a for a, b in zip(before, after, strict=True))
    result["server_cpu_s"] = cpu
    result["cpu_ms_per_req"] = cpu * 1000 / max(result["requests"], 1)
    result["db_cpu_ms_per_req"] = db_cpu * 1000 / max(result["requests"], 1)
    result["loadgen_cores"] = load_cpu / result["seconds"]
    result["host_busy_cores"] = busy / result["seconds"]
    # CPU used by neither the server, the database nor the load generator: other agents' work
    result["foreign_cores"] = (busy - cpu - db_cpu - load_cpu) / result["seconds"]
    return result


# --------------------------------------------------------------------------- the apps


def app_specs(workers: int, base_env: dict[str, str], db: Database) -> list[AppSpec]:
    def service_env(port: int, workdir: pathlib.Path) -> dict[str, str]:
        return base_env | {
            **db.env(),
            "PORT": str(port),
            "WEB_CONCURRENCY": str(workers),
            "GRACEFUL_TIMEOUT": "5",
            "LOG_LEVEL": "INFO",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
        }

    def baseline_env(port: int, workdir: pathlib.Path) -> dict[str, str]:
        return base_env | db.env()

    def baseline_argv(access_log: bool) -> Callable[[int], list[str]]:
        def argv(port: int) -> list[str]:
            return [
                PYTHON,
                "-m",
                "gunicorn",
                "-w",
                str(workers),
                "-b",
                f"{HOST}:{port}",
                "--worker-tmp-dir",
                "/dev/shm",  # as the service: only the app differs  # noqa: S108
                "--graceful-timeout",
                "5",
                "--no-control-socket",
                *(["--access-logfile", "-"] if access_log else []),
                "bench.baseline_app:app",
            ]

        return argv

    return [
        AppSpec("service", lambda port: [PYTHON, "-m", "service", "web"], service_env, "/healthz"),
        AppSpec("baseline", baseline_argv(access_log=False), baseline_env, None),
        AppSpec("baseline+log", baseline_argv(access_log=True), baseline_env, None),
    ]


def start_app(spec: AppSpec, starts: int, user_path: str, workdir: pathlib.Path) -> tuple:
    """Time `starts` cold starts; the last server is left running and returned."""
    timings = []
    for attempt in range(starts):
        server, timing = cold_start(spec, workdir, user_path)
        timings.append(timing)
        if attempt < starts - 1:
            stop(server)
    return server, timings


def bench_rounds(
    apps: list[tuple[AppSpec, Server]],
    args: argparse.Namespace,
    ids: tuple[int, int],
    workdir: pathlib.Path,
) -> dict[str, dict[str, list[dict]]]:
    """Per app and path, one measurement per round; the app order alternates every round so
    that a burst of foreign load on the shared machine does not always hit the same app."""
    samples: dict[str, dict[str, list[dict]]] = {s.label: {"get": [], "post": []} for s, _ in apps}
    for round_no in range(args.rounds):
        order = apps if round_no % 2 == 0 else apps[::-1]
        for kind in ("get", "post"):
            for spec, server in order:
                tag = f"{spec.label.replace('+', '')}-{round_no}-{secrets.token_hex(3)}"
                load = Load(kind, ids[0], ids[1], f"bench-{tag}-")
                result = measure(
                    server, load, args.seconds, args.connections, workdir, warm=round_no == 0
                )
                samples[spec.label][kind].append(result)
                print(
                    f"  round {round_no + 1} {kind:4} {spec.label:13} "
                    f"{result['rps']:8.1f} req/s  p50 {result['p50_ms']:6.2f} ms  "
                    f"p99 {result['p99_ms']:6.2f} ms  app {result['cpu_ms_per_req']:.3f} ms/req  "
                    f"db {result['db_cpu_ms_per_req']:.3f} ms/req  "
                    f"wrk {result['loadgen_cores']:.2f} "
                    f"foreign {result['foreign_cores']:.2f} cores",
                    flush=True,
                )
    return samples


# --------------------------------------------------------------------------- report


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rows(result: dict) -> dict[str, float | None]:
    starts = result["starts"]
    healthz = [s["healthz"] for s in starts if "healthz" in s]

    def med(kind: str, key: str) -> float:
        return _median([sample[key] for sample in result[kind]])

    def total(kind: str, *keys: str) -> float:
        return sum(sample[key] for sample in result[kind] for key in keys)

    return {
        "ready: first 200 /healthz, median s": _median(healthz) if healthz else None,
        "ready: first 200 GET /users/<id>, median s": _median([s["first_get"] for s in starts]),
        "ready: first 200 GET /users/<id>, max s": max(s["first_get"] for s in starts),
        "ready: first 200 /healthz, max s": max(healthz) if healthz else None,
        "GET  req/s (median)": med("get", "rps"),
        "GET  p50 ms (median)": med("get", "p50_ms"),
        "GET  p99 ms (median)": med("get", "p99_ms"),
        "GET  server CPU ms/req (median)": med("get", "cpu_ms_per_req"),
        "GET  MariaDB CPU ms/req (median)": med("get", "db_cpu_ms_per_req"),
        "GET  foreign CPU, cores (median)": med("get", "foreign_cores"),
        "GET  errors + non-2xx (all rounds)": total("get", "errors", "non_2xx"),
        "POST req/s (median)": med("post", "rps"),
        "POST p50 ms (median)": med("post", "p50_ms"),
        "POST p99 ms (median)": med("post", "p99_ms"),
        "POST server CPU ms/req (median)": med("post", "cpu_ms_per_req"),
        "POST MariaDB CPU ms/req (median)": med("post", "db_cpu_ms_per_req"),
        "POST foreign CPU, cores (median)": med("post", "foreign_cores"),
        "POST errors + non-2xx (all rounds)": total("post", "errors", "non_2xx"),
        "RSS master+workers MiB": result["memory"]["rss_kib"] / 1024,
        "PSS master+workers MiB": result["memory"]["pss_kib"] / 1024,
    }


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value)}"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3g}"


def table(results: list[dict]) -> str:
    baselines = results[1:]
    headers = ["metric", *(r["label"] for r in results)]
    headers += [f"svc/{b['label']}" for b in baselines]
    columns = [rows(r) for r in results]
    lines = []
    for metric in columns[0]:
        values = [c[metric] for c in columns]
        ratios = []
        for base in values[1:]:
            ok = values[0] is not None and base not in (None, 0)
            ratios.append(f"{values[0] / base:.2f}" if ok else "-")
        lines.append([metric, *(_cell(v) for v in values), *ratios])
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *lines, strict=True)]
    out = []
    for line in [headers, *lines]:
        cells = [
            str(x).ljust(w) if i == 0 else str(x).rjust(w)
            for i, (x, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells))
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per path")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per app")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections")
    parser.add_argument("--starts", type=int, default=3, help="cold starts timed per app")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per path")
    parser.add_argument("--json", type=pathlib.Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    for name, low, high in (
        ("seconds", 1, 600),
        ("workers", 1, 16),
        ("connections", 1, 256),
        ("starts", 1, 20),
        ("rounds", 1, 20),
    ):
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name} must be between {low} and {high}")
    return args


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up on kill as on Ctrl-C
    admin = {
        "host": os.environ.get("BENCH_DB_HOST", HOST),
        "port": int(os.environ.get("BENCH_DB_PORT", "3306")),
        "user": os.environ.get("BENCH_DB_USER", "root"),
        "password": os.environ.get("BENCH_DB_PASSWORD", ""),
    }
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "MIGRATE_"))}
    base_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    load_tool = "wrk -t1" if shutil.which("wrk") else "stdlib http.client threads"
    print(
        f"workers={args.workers} connections={args.connections} seconds={args.seconds} "
        f"rounds={args.rounds} starts={args.starts} load={load_tool} cpus={os.cpu_count()}",
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp,
        bench_database(admin, base_env) as db,
    ):
        workdir = pathlib.Path(tmp)
        ids = seeded_id_range(db)
        user_path = f"/users/{ids[0]}"
        apps: list[tuple[AppSpec, Server]] = []
        starts: dict[str, list[dict]] = {}
        try:
            for spec in app_specs(args.workers, base_env, db):
                print(f"cold starts of {spec.label} ...", flush=True)
                server, starts[spec.label] = start_app(spec, args.starts, user_path, workdir)
                apps.append((spec, server))
            samples = bench_rounds(apps, args, ids, workdir)
            results = []
            for spec, server in apps:
                memory = memory_kib(server.pids())
                results.append(
                    {"label": spec.label, "starts": starts[spec.label], "memory": memory}
                    | samples[spec.label]
                )
        finally:
            for _, server in apps:
                stop(server)
    print(table(results))
    if args.json is not None:
        meta = vars(args) | {"json": str(args.json), "load": load_tool, "cpus": os.cpu_count()}
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
