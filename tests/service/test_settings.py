"""service/settings.py: the environment is the only config, and bad config is named, not shown."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.settings import ConfigError, load_settings

BASE = {
    "DATABASE_HOST": "db.example.internal",
    "DATABASE_USER": "app",
    "DATABASE_PASSWORD": "s3cret-value",
    "DATABASE_NAME": "users",
}


def test_minimal_environment_gives_documented_defaults():
    settings = load_settings(BASE)
    assert settings.database.port == 3306
    assert settings.port == 5000
    assert settings.web_concurrency == 2
    assert settings.log_level == "INFO"
    assert settings.max_body_bytes == 65536
    assert settings.database.read_timeout < settings.web_timeout
    assert (settings.pool_size, settings.pool_timeout) == (4, 5)


def test_pool_size_and_timeout_are_read_from_the_environment():
    settings = load_settings({**BASE, "DATABASE_POOL_SIZE": "8", "DATABASE_POOL_TIMEOUT": "0.5"})
    assert (settings.pool_size, settings.pool_timeout) == (8, 0.5)


def test_migrate_credentials_default_to_the_runtime_ones():
    settings = load_settings(BASE)
    assert settings.migrate_database.user == "app"
    assert settings.migrate_database.password.reveal() == "s3cret-value"
    own = load_settings({**BASE, "MIGRATE_DATABASE_USER": "ddl", "MIGRATE_DATABASE_PASSWORD": "x"})
    assert (own.migrate_database.user, own.migrate_database.password.reveal()) == ("ddl", "x")


@pytest.mark.parametrize("name", ["DATABASE_HOST", "DATABASE_USER", "DATABASE_NAME"])
def test_missing_required_variable_is_named(name):
    env = {k: v for k, v in BASE.items() if k != name}
    with pytest.raises(ConfigError, match=f"^{name} is not set$"):
        load_settings(env)


def test_missing_password_names_both_ways_to_give_it():
    env = {k: v for k, v in BASE.items() if k != "DATABASE_PASSWORD"}
    with pytest.raises(ConfigError, match="DATABASE_PASSWORD \\(or DATABASE_PASSWORD_FILE\\)"):
        load_settings(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_PORT", "three"),
        ("DATABASE_PORT", "70000"),
        ("PORT", "0"),
        ("WEB_CONCURRENCY", "-1"),
        ("LOG_LEVEL", "LOUD"),
        ("WEB_RELOAD", "maybe"),
        ("DATABASE_READ_TIMEOUT", "soon"),
        ("DATABASE_SSL_CA", "/nonexistent/ca.pem"),
        ("DATABASE_HOST", "bad host name"),
        ("DATABASE_POOL_SIZE", "0"),
        ("DATABASE_POOL_SIZE", "65"),
        ("DATABASE_POOL_SIZE", "four"),
        ("DATABASE_POOL_TIMEOUT", "120"),
        ("DATABASE_POOL_TIMEOUT", "later"),
        ("WEB_WORKER_CONNECTIONS", "-5"),
        ("WEB_KEEPALIVE", "forever"),
        ("WEB_KEEPALIVE", "-3"),
        ("SHUTDOWN_DELAY_SECONDS", "-1"),
    ],
)
def test_malformed_variable_is_named_without_its_value(name, value):
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, name: value})
    assert str(info.value).startswith(name)
    assert value not in str(info.value)


def test_database_timeouts_must_fit_inside_the_worker_timeout():
    with pytest.raises(ConfigError, match="below WEB_TIMEOUT"):
        load_settings({**BASE, "WEB_TIMEOUT": "10", "DATABASE_READ_TIMEOUT": "10"})


def test_worker_settings_default_to_gevent_values_and_the_delay_fits_the_drain():
    settings = load_settings(BASE)
    assert (settings.web_worker_connections, settings.web_keepalive) == (1000, 5)
    assert settings.shutdown_delay == 0
    with pytest.raises(ConfigError, match="SHUTDOWN_DELAY_SECONDS must be below GRACEFUL_TIMEOUT"):
        load_settings({**BASE, "GRACEFUL_TIMEOUT": "10", "SHUTDOWN_DELAY_SECONDS": "10"})


def test_password_file_is_read_on_every_use_so_rotation_needs_no_restart(tmp_path: Path):
    secret = tmp_path / "password"
    secret.write_text("first\n")
    env = {k: v for k, v in BASE.items() if k != "DATABASE_PASSWORD"}
    settings = load_settings({**env, "DATABASE_PASSWORD_FILE": str(secret)})
    assert settings.database.password.reveal() == "first"
    secret.write_text("rotated")
    assert settings.database.password.reveal() == "rotated"


def test_password_and_password_file_together_are_refused(tmp_path: Path):
    secret = tmp_path / "password"
    secret.write_text("x")
    with pytest.raises(ConfigError, match="both set"):
        load_settings({**BASE, "DATABASE_PASSWORD_FILE": str(secret)})


def test_secret_never_appears_in_repr():
    settings = load_settings(BASE)
    assert "s3cret-value" not in repr(settings)


def _run_service(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "MIGRATE_"))}
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("command", ["web", "migrate", "check", "seed-demo"])
def test_every_process_exits_2_fast_with_one_line_naming_the_variable(command):
    env = {k: v for k, v in BASE.items() if k != "DATABASE_NAME"}
    started = time.monotonic()
    result = _run_service(env, command)
    elapsed = time.monotonic() - started
    output = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 2
    assert len(output) == 1, output
    assert "DATABASE_NAME is not set" in output[0]
    assert "Traceback" not in output[0]
    assert "s3cret-value" not in output[0]
    assert elapsed < 2.0, f"took {elapsed:.2f} s"
