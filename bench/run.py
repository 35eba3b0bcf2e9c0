"""Benchmark the users service against a bare Flask + PyMySQL app, its gthread twin and FastAPI.

    make bench                                    # = bench/.venv/bin/python -m bench.run
    bench/.venv/bin/python -m bench.run --quick   # a few seconds per sample, for development
    bench/.venv/bin/python -m bench.run --variants service,baseline --requests get --modes close

One database server and one seeded database (bench/database.py) serve every variant
(bench/variants.py), all started side by side with the same worker count. Then, for R rounds,
each load mode x request x variant gets one wrk sample of N seconds (bench/load.py), the
variant order reversed every other round so that a burst of foreign load on the shared machine
does not always hit the same variant. Each sample records, from /proc (bench/procstat.py), the
CPU time per request of the server (master + workers) and of the database server, wrk's own
CPU, and the "foreign" CPU of everything else on the machine. The tables (bench/report.py)
show the median over the rounds and the ratio to `baseline`; the chart (bench/chart.py), the
JSON and a Markdown copy of the tables go to --out. Every process, temp file and the database
are removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

if __package__ in {None, ""}:  # run as a script: bench/run.py
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench import load, procstat, report, servers, variants
from bench.database import ROOT, Database, admin_server, bench_database, seeded_id_range

RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"
IDENTITY = {
    f"DATABASE_{name}"
    for name in ("HOST", "PORT", "USER", "PASSWORD", "PASSWORD_FILE", "NAME", "SSL_CA")
}
FULL = {"seconds": 4, "rounds": 3, "starts": 3, "warmup": 1}
QUICK = {"seconds": 2, "rounds": 2, "starts": 1, "warmup": 1}


# --------------------------------------------------------------------------- one sample


def measure(
    server: servers.Server, what: load.Load, args: argparse.Namespace, db: Database, *, warm: bool
) -> dict:
    """One wrk sample plus the CPU every party spent during it."""

    def generate(spec: load.Load, seconds: int) -> dict:
        return load.run_wrk(
            server.port,
            spec,
            seconds=seconds,
            connections=args.connections,
            threads=args.threads,
            workdir=args.workdir,
        )

    if warm:  # every worker (thread) connected, caches and pages warm; emails stay unique
        generate(
            load.Load(what.request, what.mode, what.low, what.high, what.prefix + "w"), args.warmup
        )
    pids = server.pids()
    connects = db.connects()
    before = (
        procstat.cpu_seconds(pids),
        procstat.cpu_seconds(db.server_pids),
        procstat.children_cpu(),
        procstat.host_busy_seconds(),
    )
    result = generate(what, args.seconds)
    after = (
        procstat.cpu_seconds(server.pids()),  # a worker that died meanwhile is not counted
        procstat.cpu_seconds(db.server_pids),
        procstat.children_cpu(),
        procstat.host_busy_seconds(),
    )
    cpu, db_cpu, wrk_cpu, busy = (b - a for a, b in zip(before, after, strict=True))
    requests = max(result["requests"], 1)
    return result | {
        "db_connects": db.connects() - connects,
        "server_cpu_s": cpu,
        "cpu_ms_per_req": cpu * 1000 / requests,
        "db_cpu_ms_per_req": db_cpu * 1000 / requests,
        "loadgen_cores": wrk_cpu / result["seconds"],
        "host_busy_cores": busy / result["seconds"],
        # CPU used by neither the server, the database nor wrk: other people's work
        "foreign_cores": (busy - cpu - db_cpu - wrk_cpu) / result["seconds"],
    }


def bench_rounds(
    running: dict[str, servers.Server],
    args: argparse.Namespace,
    ids: tuple[int, int],
    db: Database,
) -> dict:
    """samples[variant][mode][request] = one sample per round."""
    samples = {
        name: {mode: {request: [] for request in args.requests} for mode in args.modes}
        for name in running
    }
    names = list(running)
    for round_no in range(args.rounds):
        order = names if round_no % 2 == 0 else names[::-1]
        for mode in args.modes:
            for request in args.requests:
                for name in order:
                    prefix = f"b{round_no}-{name}-{mode}-{os.urandom(3).hex()}-"
                    what = load.Load(request, mode, ids[0], ids[1], prefix)
                    s = measure(running[name], what, args, db, warm=round_no == 0)
                    samples[name][mode][request].append(s)
                    print(
                        f"  round {round_no + 1}/{args.rounds} {mode:9} {request:4} {name:17}"
                        f" {s['rps']:8.1f} req/s  p50 {s['p50_ms']:6.2f}  p99 {s['p99_ms']:6.2f}"
                        f" (wrk {s['p99_wrk_ms']:6.2f}) ms"
                        f"  cpu {s['cpu_ms_per_req']:.3f}  db {s['db_cpu_ms_per_req']:.3f} ms/req"
                        f"  db connects {s['db_connects']}"
                        f"  errors {s['errors'] + s['http_errors']}"
                        f"  foreign {s['foreign_cores']:.2f} cores",
                        flush=True,
                    )
    return samples


# --------------------------------------------------------------------------- arguments


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="short samples, for development")
    parser.add_argument("--seconds", type=int, help=f"per sample (default {FULL['seconds']})")
    parser.add_argument("--rounds", type=int, help=f"interleaved rounds ({FULL['rounds']})")
    parser.add_argument(
        "--starts", type=int, help=f"cold starts timed per variant ({FULL['starts']})"
    )
    parser.add_argument(
        "--warmup", type=int, help="seconds of load before a variant's first sample"
    )
    parser.add_argument("--workers", type=int, default=2, help="workers per variant (2)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (8)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--variants", help="comma-separated (default: see bench/README.md)")
    parser.add_argument("--requests", default=",".join(load.REQUESTS), help="get,list,post")
    parser.add_argument("--modes", default=",".join(load.MODES), help="keepalive,close")
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        help="directory for results.json, results.md, bench.png "
        "(default bench/results; with --quick a new temp directory)",
    )
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for name, low, high in (
        ("seconds", 1, 600),
        ("rounds", 1, 20),
        ("starts", 1, 20),
        ("warmup", 1, 60),
        ("workers", 1, 16),
        ("connections", 1, 256),
        ("threads", 1, 16),
    ):
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name} must be between {low} and {high}")
    if args.threads > args.connections:
        parser.error("--threads must not exceed --connections (wrk needs a connection per thread)")
    args.requests = _choices(parser, "requests", args.requests, load.REQUESTS)
    args.modes = _choices(parser, "modes", args.modes, load.MODES)
    if args.variants is not None:
        args.variants = _choices(parser, "variants", args.variants, variants.NAMES)
    return args


def _choices(parser: argparse.ArgumentParser, name: str, value: str, allowed: tuple) -> list[str]:
    chosen = [x.strip() for x in value.split(",") if x.strip()]
    unknown = [x for x in chosen if x not in allowed]
    if unknown or not chosen:
        parser.error(f"--{name}: choose from {', '.join(allowed)}")
    return chosen


def estimate_seconds(args: argparse.Namespace, count: int) -> int:
    cells = count * len(args.modes) * len(args.requests)
    wrk_overhead = 0.2  # start-up and Lua per run
    load_time = cells * (args.rounds * (args.seconds + wrk_overhead) + args.warmup + wrk_overhead)
    return int(load_time + count * args.starts * 1.5 + 15)


# --------------------------------------------------------------------------- outputs


def git_revision() -> str:
    def git(*argv: str) -> str:
        out = subprocess.run(
            ["git", *argv], check=False, cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip()

    dirty = (
        " (service/ has uncommitted changes)"
        if git("status", "--porcelain", "--", "service")
        else ""
    )
    return f"{git('rev-parse', '--short', 'HEAD')}{dirty}"


def write_outputs(
    out: pathlib.Path, meta: dict, results: dict, summary: dict, args: argparse.Namespace
) -> None:
    from bench import chart  # noqa: PLC0415 - matplotlib: only here, not in the harness's tests

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "results": results}, indent=2) + "\n"
    )
    chart.write(summary, args.modes, args.requests, out / "bench.png", meta["title"])
    (out / "results.md").write_text(markdown_report(meta, results, summary, args, image=True))
    if out.resolve() == RESULTS.resolve() and README.is_file():
        markdown = markdown_report(meta, results, summary, args, image=False)
        README.write_text(fill_results(README.read_text(), markdown))


def fill_results(text: str, markdown: str) -> str:
    """`text` with whatever stands between the results markers replaced by `markdown`."""
    pattern = re.compile(re.escape(MARK_START) + ".*?" + re.escape(MARK_END), re.DOTALL)
    if not pattern.search(text):
        raise RuntimeError(f"{README}: no {MARK_START} ... {MARK_END} section to fill")
    return pattern.sub(lambda _: f"{MARK_START}\n{markdown}{MARK_END}", text, count=1)


def foreign_summary(results: dict) -> str:
    """How busy the rest of the machine was during the samples: median and max "foreign" cores."""
    values = sorted(
        s["foreign_cores"]
        for info in results.values()
        for by_request in info["samples"].values()
        for runs in by_request.values()
        for s in runs
    )
    return f"median {values[len(values) // 2]:.2f}, max {values[-1]:.2f}" if values else "-"


def markdown_report(
    meta: dict, results: dict, summary: dict, args: argparse.Namespace, *, image: bool
) -> str:
    """The run's metadata, the variants' legend, (the chart,) and every table."""
    legend = "\n".join(f"- `{name}`: {text}" for name, text in meta["variants"].items())
    return (
        f"Run {meta['date']} on {meta['revision']}: `{meta['command']}`\n\n"
        f"{meta['cpus']} CPUs; load average {meta['loadavg_start']} before, "
        f"{meta['loadavg_end']} after; other work on the machine during the samples "
        f"{meta['foreign_cores']} cores; database {meta['database']}; {meta['wrk']}, "
        f"-t{args.threads} -c{args.connections}, {args.seconds} s per sample, "
        f"median of {args.rounds} rounds; {args.workers} workers per variant; "
        f"the service's configured worker model: {meta['configured_worker_model']}.\n\n"
        f"{legend}\n\n"
        + ("![throughput and latency per variant](bench.png)\n\n" if image else "")
        + report.render(results, summary, args.modes, args.requests, md=True)
    )


# --------------------------------------------------------------------------- main


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        wrk = load.wrk_version()
    except load.WrkMissingError as exc:
        print(exc, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up on kill as on Ctrl-C
    loadavg_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    # The database's identity comes from bench/database.py; tuning knobs (DATABASE_POOL_SIZE,
    # timeouts, ...) set by the caller reach the service variants unchanged.
    base_env = {
        k: v
        for k, v in os.environ.items()
        if k not in IDENTITY and not k.startswith(("MIGRATE_", "BENCH_DB_"))
    }
    for name in ("PROMETHEUS_MULTIPROC_DIR", "GUNICORN_CMD_ARGS", "WEB_CONCURRENCY", "PORT"):
        base_env.pop(name, None)
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp,
        admin_server(pathlib.Path(tmp)) as (admin, db_pids, db_label),
        bench_database(admin, db_pids, base_env) as db,
    ):
        args.workdir = pathlib.Path(tmp)
        ids = seeded_id_range(db)
        configured = variants.configured_worker_model(base_env | db.env())
        known = variants.build(args.workers, base_env, db)
        names = args.variants or variants.default_names(configured)
        print(
            f"{len(names)} variants x {len(args.modes)} modes x {len(args.requests)} requests, "
            f"{args.rounds} rounds of {args.seconds} s, wrk -t{args.threads} -c{args.connections}, "
            f"{args.workers} workers, {os.cpu_count()} cpus, load average {loadavg_start}, "
            f"database {db_label}, service configured as {configured}; "
            f"about {estimate_seconds(args, len(names)) // 60 + 1} min",
            flush=True,
        )
        running: dict[str, servers.Server] = {}
        starts: dict[str, list[dict]] = {}
        began = time.monotonic()
        try:
            for name in names:
                print(f"cold starts of {name} ...", flush=True)
                running[name], starts[name] = servers.start_timed(
                    known[name], args.starts, f"/users/{ids[0]}", args.workdir
                )
            servers.check_same_answers(
                running, [f"/users/{ids[0]}", f"/users/{ids[1]}", "/users?limit=20"]
            )
            samples = bench_rounds(running, args, ids, db)
            results = {
                name: {
                    "summary": known[name].summary,
                    "starts": starts[name],
                    "worker_class": servers.worker_class(server),
                    "memory": procstat.memory_kib(server.pids()),
                    "samples": samples[name],
                }
                for name, server in running.items()
            }
        finally:
            for server in running.values():
                servers.stop(server)
    summary = report.summaries({name: r["samples"] for name, r in results.items()})
    print()
    print(report.render(results, summary, args.modes, args.requests, md=False))
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": git_revision(),
        "command": shlex.join(["python", "-m", "bench.run", *argv]),
        "cpus": os.cpu_count(),
        "loadavg_start": loadavg_start,
        "loadavg_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "wall_seconds": round(time.monotonic() - began),
        "foreign_cores": foreign_summary(results),
        "database": db_label,
        "wrk": wrk,
        "configured_worker_model": configured,
        "variants": {name: known[name].summary for name in names},
        "args": {k: v for k, v in vars(args).items() if k not in {"workdir", "out"}},
    }
    meta["title"] = (
        f"{meta['date']}, {meta['revision']}: {args.workers} workers each, wrk -t{args.threads} "
        f"-c{args.connections}, median of {args.rounds} x {args.seconds} s; "
        f"load average {loadavg_start}"
    )
    out = args.out or (
        pathlib.Path(tempfile.mkdtemp(prefix="bench-quick-")) if args.quick else RESULTS
    )
    write_outputs(out, meta, results, summary, args)
    print(f"results: {out}/results.json, {out}/results.md, chart {out}/bench.png")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
