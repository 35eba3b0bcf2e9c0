"""Configuration: one typed, immutable object built from the environment at start-up.

Every setting the service reads is declared here and nowhere else. A missing or malformed
variable raises `ConfigError` naming the variable (never its value); the process entry point
turns that into one log line and exit code 2.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_HOST = re.compile(r"^[A-Za-z0-9._:\-\[\]]{1,253}$")


class ConfigError(Exception):
    """A configuration variable is missing or malformed. The message names the variable only."""


@dataclasses.dataclass(frozen=True)
class Secret:
    """A credential given either as a value or as a file path (re-read on every use, so a
    rotated Kubernetes Secret volume takes effect without a restart). repr never shows it."""

    value: str | None = dataclasses.field(default=None, repr=False)
    file: Path | None = None
    name: str = "DATABASE_PASSWORD"

    def reveal(self) -> str:
        if self.file is None:
            return self.value or ""
        try:
            return self.file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"{self.name}_FILE: cannot read {self.file} ({exc.strerror})"
            ) from None


@dataclasses.dataclass(frozen=True)
class DatabaseSettings:
    host: str
    port: int
    user: str
    password: Secret
    name: str
    ssl_ca: Path | None
    connect_timeout: float
    read_timeout: float
    write_timeout: float


@dataclasses.dataclass(frozen=True)
class Settings:
    database: DatabaseSettings
    migrate_database: DatabaseSettings
    port: int
    web_concurrency: int
    web_timeout: int
    graceful_timeout: int
    web_reload: bool
    web_worker_connections: int
    web_keepalive: int
    shutdown_delay: float
    log_level: str
    max_body_bytes: int
    readiness_timeout: float
    idle_check_seconds: float
    reconnect_backoff: float
    pool_size: int
    pool_timeout: float
    metrics_dir: Path
    multiprocess_metrics: bool  # PROMETHEUS_MULTIPROC_DIR is set: workers share metric files
    worker_tmp_dir: Path
    app_version: str
    git_sha: str
    build_date: str


class _Reader:
    """Typed accessors over an environment mapping; each failure names the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.env = environ

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def required(self, name: str) -> str:
        value = self.raw(name)
        if value is None:
            raise ConfigError(f"{name} is not set")
        return value

    def string(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value, 10)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number") from None
        if not low <= number <= high:
            raise ConfigError(f"{name} must be between {low} and {high}")
        return number

    def seconds(self, name: str, default: float, low: float = 0.1, high: float = 3600) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number of seconds") from None
        if not low <= number <= high:
            raise ConfigError(f"{name} must be between {low:g} and {high:g} seconds")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = (self.raw(name) or default).upper()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}")
        return value

    def path(self, name: str, *, must_exist: bool) -> Path | None:
        value = self.raw(name)
        if value is None:
            return None
        path = Path(value)
        if must_exist and not path.is_file():
            raise ConfigError(f"{name} names a file that does not exist")
        return path

    def secret(self, name: str, fallback: Secret | None = None) -> Secret:
        value, file = self.env.get(name), self.path(f"{name}_FILE", must_exist=True)
        if value is not None and file is not None:
            raise ConfigError(f"{name} and {name}_FILE are both set; set only one")
        if file is not None:
            return Secret(file=file, name=name)
        if value is not None:
            return Secret(value=value, name=name)
        if fallback is not None:
            return fallback
        raise ConfigError(f"{name} (or {name}_FILE) is not set")


def _endpoint(read: _Reader) -> tuple[str, int]:
    host = read.required("DATABASE_HOST")
    if not _HOST.match(host):
        raise ConfigError("DATABASE_HOST is not a valid host name or address")
    return host, read.integer("DATABASE_PORT", 3306, 1, 65535)


def load_endpoint(environ: Mapping[str, str]) -> tuple[str, int]:
    """Only the database's host and port: for a process that waits for the server to listen
    before anything else (the migration Job's init container has no credentials)."""
    return _endpoint(_Reader(environ))


def _database(read: _Reader) -> DatabaseSettings:
    host, port = _endpoint(read)
    return DatabaseSettings(
        host=host,
        port=port,
        user=read.required("DATABASE_USER"),
        password=read.secret("DATABASE_PASSWORD"),
        name=read.required("DATABASE_NAME"),
        ssl_ca=read.path("DATABASE_SSL_CA", must_exist=True),
        connect_timeout=read.seconds("DATABASE_CONNECT_TIMEOUT", 5, high=60),
        read_timeout=read.seconds("DATABASE_READ_TIMEOUT", 10, high=600),
        write_timeout=read.seconds("DATABASE_WRITE_TIMEOUT", 10, high=600),
    )


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build the settings from an environment mapping (normally `os.environ`)."""
    read = _Reader(environ)
    database = _database(read)
    migrate = dataclasses.replace(
        database,
        user=read.string("MIGRATE_DATABASE_USER", database.user),
        password=read.secret("MIGRATE_DATABASE_PASSWORD", fallback=database.password),
    )
    web_timeout = read.integer("WEB_TIMEOUT", 30, 1, 3600)
    settings = Settings(
        database=database,
        migrate_database=migrate,
        port=read.integer("PORT", 5000, 1, 65535),
        web_concurrency=read.integer("WEB_CONCURRENCY", 2, 1, 64),
        web_timeout=web_timeout,
        graceful_timeout=read.integer("GRACEFUL_TIMEOUT", 20, 0, 3600),
        web_reload=read.boolean("WEB_RELOAD", False),
        web_worker_connections=read.integer("WEB_WORKER_CONNECTIONS", 1000, 1, 100_000),
        web_keepalive=read.integer("WEB_KEEPALIVE", 5, 1, 300),
        shutdown_delay=read.seconds("SHUTDOWN_DELAY_SECONDS", 0, low=0, high=300),
        log_level=read.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
        max_body_bytes=read.integer("MAX_BODY_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
        readiness_timeout=read.seconds("READINESS_TIMEOUT", 2, high=30),
        idle_check_seconds=read.seconds("DATABASE_IDLE_CHECK_SECONDS", 10, low=0, high=86400),
        reconnect_backoff=read.seconds("DATABASE_RECONNECT_BACKOFF", 2, low=0, high=60),
        # per worker process: WEB_CONCURRENCY x this is the pod's share of max_connections
        pool_size=read.integer("DATABASE_POOL_SIZE", 4, 1, 64),
        pool_timeout=read.seconds("DATABASE_POOL_TIMEOUT", 5, high=60),
        # tmpfs/emptyDir paths, the only places the web process writes
        metrics_dir=Path(read.string("PROMETHEUS_MULTIPROC_DIR", "/tmp/service-metrics")),  # noqa: S108
        multiprocess_metrics="PROMETHEUS_MULTIPROC_DIR" in environ,
        worker_tmp_dir=Path(read.string("WORKER_TMP_DIR", "/dev/shm")),  # noqa: S108
        app_version=read.string("APP_VERSION", "unknown"),
        git_sha=read.string("GIT_SHA", "unknown"),
        build_date=read.string("BUILD_DATE", "unknown"),
    )
    if max(database.read_timeout, database.write_timeout) >= web_timeout:
        raise ConfigError(
            "DATABASE_READ_TIMEOUT and DATABASE_WRITE_TIMEOUT must be below WEB_TIMEOUT"
        )
    if settings.shutdown_delay and settings.shutdown_delay >= settings.graceful_timeout:
        raise ConfigError("SHUTDOWN_DELAY_SECONDS must be below GRACEFUL_TIMEOUT")
    return settings
