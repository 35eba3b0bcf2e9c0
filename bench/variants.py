"""The web processes under test: how each is started, and nothing else.

Every variant gets the same worker count, the same database and the same DATABASE_* variables.

The service is always `python -m service web` as it is in the tree. Its worker model is varied
for the comparison through GUNICORN_CMD_ARGS, gunicorn's own variable, whose settings override
the service's config file (gunicorn: defaults < config file < GUNICORN_CMD_ARGS < argv), so no
setting of the service is changed except the worker class and its thread count.
"""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from bench.database import PYTHON, ROOT, Database

HOST = "127.0.0.1"
THREADS = 4  # per worker, for the gthread variants
SERVICE_GEVENT_WORKER = "service.worker.Worker"  # the service's own gevent worker, when it has one


@dataclass(frozen=True)
class Variant:
    name: str
    summary: str  # one line for the table's legend and the README
    argv: Callable[[int], list[str]]  # port -> argv
    env: Callable[[int, pathlib.Path], dict[str, str]]  # port, scratch dir -> environment
    health_path: str | None = None  # the liveness path to time at start, if the app has one


def gevent_worker_class() -> str:
    """The service's gevent worker if the tree has one (it adds shutdown and slow-client
    handling to gunicorn's), else gunicorn's stock gevent worker."""
    return SERVICE_GEVENT_WORKER if (ROOT / "service" / "worker.py").is_file() else "gevent"


WORKER_MODELS: dict[str, Callable[[], str]] = {
    "sync": lambda: "-k sync --threads 1",
    "gthread": lambda: f"-k gthread --threads {THREADS}",
    "gevent": lambda: f"-k {gevent_worker_class()}",
}
NAMES = (
    "service",
    *(f"service-{model}" for model in WORKER_MODELS),
    "baseline",
    "baseline-gthread",
    "baseline+log",
    "fastapi",
)


def configured_worker_model(env: dict[str, str]) -> str:
    """The worker model the service's gunicorn config selects today: sync, gthread, gevent, or
    the class path as written. Read by importing the config in a child process (it needs the
    service's environment) exactly as gunicorn would."""
    code = (
        "from service import gunicorn_conf as c;"
        "print(getattr(c, 'worker_class', 'sync'), getattr(c, 'threads', 1))"
    )
    out = subprocess.run(
        [PYTHON, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    worker_class, threads = out[-2], int(out[-1])
    if worker_class in {"sync", "gunicorn.workers.sync.SyncWorker"}:
        return "gthread" if threads > 1 else "sync"  # gunicorn switches to gthread itself
    if worker_class in {"gthread", "gunicorn.workers.gthread.ThreadWorker"}:
        return "gthread"
    if worker_class in {"gevent", SERVICE_GEVENT_WORKER, "gunicorn.workers.ggevent.GeventWorker"}:
        return "gevent"
    return worker_class


def build(workers: int, base_env: dict[str, str], db: Database) -> dict[str, Variant]:
    """Every variant the benchmark knows, by name."""

    def service_env(model: str | None) -> Callable[[int, pathlib.Path], dict[str, str]]:
        def env(port: int, workdir: pathlib.Path) -> dict[str, str]:
            metrics = workdir / f"metrics-{model or 'as-configured'}"  # one per server
            extra = {"GUNICORN_CMD_ARGS": WORKER_MODELS[model]()} if model else {}
            return (
                base_env
                | db.env()
                | {
                    "PORT": str(port),
                    "WEB_CONCURRENCY": str(workers),
                    "GRACEFUL_TIMEOUT": "5",
                    "LOG_LEVEL": "INFO",
                    "PROMETHEUS_MULTIPROC_DIR": str(metrics),
                }
                | extra
            )

        return env

    def service_argv(port: int) -> list[str]:
        return [PYTHON, "-m", "service", "web"]

    def plain_env(port: int, workdir: pathlib.Path) -> dict[str, str]:
        return base_env | db.env()

    def gunicorn_argv(*extra: str) -> Callable[[int], list[str]]:
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
                "--no-control-socket",  # one per server (gunicorn >= 25.1 shares $HOME's)
                *extra,
                "bench.baseline_app:app",
            ]

        return argv

    def uvicorn_argv(port: int) -> list[str]:
        return [
            PYTHON,
            "-m",
            "uvicorn",
            "bench.fastapi_app:app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]

    variants = [
        Variant(
            "service",
            "python -m service web, as configured in the tree",
            service_argv,
            service_env(None),
            "/healthz",
        ),
        *(
            Variant(
                f"service-{model}",
                f"the service with GUNICORN_CMD_ARGS='{WORKER_MODELS[model]()}'",
                service_argv,
                service_env(model),
                "/healthz",
            )
            for model in WORKER_MODELS
        ),
        Variant(
            "baseline",
            "bench/baseline_app.py (Flask + PyMySQL) under gunicorn defaults (sync)",
            gunicorn_argv(),
            plain_env,
        ),
        Variant(
            "baseline-gthread",
            f"the baseline under gunicorn -k gthread --threads {THREADS}",
            gunicorn_argv("-k", "gthread", "--threads", str(THREADS)),
            plain_env,
        ),
        Variant(
            "baseline+log",
            "the baseline with gunicorn's plain-text access log on stdout",
            gunicorn_argv("--access-logfile", "-"),
            plain_env,
        ),
        Variant(
            "fastapi",
            "bench/fastapi_app.py (sync def handlers) under uvicorn defaults",
            uvicorn_argv,
            plain_env,
        ),
    ]
    assert tuple(v.name for v in variants) == NAMES
    return {v.name: v for v in variants}


def default_names(configured: str) -> list[str]:
    """service as configured, the two other worker models, the baselines and FastAPI."""
    models = [f"service-{m}" for m in WORKER_MODELS if m != configured]
    return ["service", *models, "baseline", "baseline-gthread", "fastapi"]
