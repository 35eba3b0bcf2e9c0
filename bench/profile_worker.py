"""cProfile one gunicorn worker of the service and of the baseline under the same load.

    bench/.venv/bin/python -m bench.profile_worker [--seconds N]

For each app and request (GET /users/<id>, GET /users?limit=20, POST /users) it starts a fresh
server with ONE sync worker under bench/gunicorn_profile.py, drives it with wrk at one
connection for N seconds,
stops it (the worker dumps its profile) and prints, per request, the cumulative time of the
functions that take at least 3% of a request. cProfile inflates call-heavy code, so read the
shares, not the absolute microseconds. The database (bench/database.py) and the processes are
handled and cleaned up as in run.py.
"""

from __future__ import annotations

import argparse
import pathlib
import pstats
import sys
import tempfile

from bench import load, servers
from bench.database import PYTHON, Database, admin_server, bench_database, seeded_id_range
from bench.variants import Variant

MIN_SHARE = 0.03
ROOT_FUNCTION = "handle_request"  # gunicorn.workers.sync.SyncWorker.handle_request


def profile(
    label: str,
    kind: str,
    *,
    db: Database,
    ids: tuple[int, int],
    seconds: int,
    workdir: pathlib.Path,
) -> tuple[pstats.Stats, int]:
    out = workdir / f"prof-{label}-{kind}"
    out.mkdir()
    argv = [PYTHON, "-m", "gunicorn", "--config", "python:bench.gunicorn_profile"]

    def env(port: int, scratch: pathlib.Path) -> dict[str, str]:
        metrics = scratch / f"metrics-{label}-{kind}"
        metrics.mkdir()
        return db.env() | {
            "PATH": "/usr/bin:/bin",
            "BENCH_PROFILE_APP": label,
            "BENCH_PROFILE_DIR": str(out),
            "PORT": str(port),
            "WEB_CONCURRENCY": "1",
            "GRACEFUL_TIMEOUT": "5",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        }

    variant = Variant(label, "profiled", lambda port: argv, env)
    server, _ = servers.cold_start(variant, workdir, f"/users/{ids[0]}")
    try:
        what = load.Load(kind, "keepalive", ids[0], ids[1], f"prof-{label}-{kind}-")
        result = load.run_wrk(
            server.port, what, seconds=seconds, connections=1, threads=1, workdir=workdir
        )
    finally:
        servers.stop(server)
    files = sorted(out.glob("*.prof"))
    if not files:
        raise RuntimeError(f"no profile written: {servers.tail(server)}")
    return pstats.Stats(*map(str, files)), result["requests"]


def report(label: str, kind: str, stats: pstats.Stats, requests: int) -> None:
    entries = stats.stats  # type: ignore[attr-defined]
    roots = [v[3] for k, v in entries.items() if k[2] == ROOT_FUNCTION]
    total = max(roots) if roots else 0.0
    per_request = total / requests * 1e6
    print(f"\n== {label} {kind.upper()}: {requests} requests, {per_request:.0f} us/request in")
    print(f"   {ROOT_FUNCTION} (profiled; cProfile adds overhead)")
    rows = []
    for (path, line, func), (_, calls, _, cumulative, _) in entries.items():
        if total and cumulative / total >= MIN_SHARE and "cProfile" not in func:
            where = "/".join(pathlib.Path(path).parts[-2:])
            rows.append((cumulative, calls, f"{where}:{line} {func}"))
    for cumulative, calls, name in sorted(rows, reverse=True)[:45]:
        micros, share = cumulative / requests * 1e6, cumulative / total
        print(f"   {micros:7.1f} us {share:6.1%} {calls / requests:5.1f}x  {name}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args(argv)
    base_env = {"PATH": "/usr/bin:/bin"}
    with (
        tempfile.TemporaryDirectory(prefix="bench-prof-") as tmp,
        admin_server(pathlib.Path(tmp)) as (admin, db_pids, _),
        bench_database(admin, db_pids, base_env) as db,
    ):
        ids = seeded_id_range(db)
        for kind in ("get", "list", "post"):
            for label in ("service", "baseline"):
                stats, requests = profile(
                    label, kind, db=db, ids=ids, seconds=args.seconds, workdir=pathlib.Path(tmp)
                )
                report(label, kind, stats, requests)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
