"""A throwaway local MariaDB/MySQL server for `make run` and the test suite.

Library (tests import it): find_server_binary, start_server -> Server, create_database,
drop_database.
CLI:
  python scripts/localdb.py run   migrate, then serve the API; starts a local server in .local/mysql
                                  unless DATABASE_HOST points at an existing one
  python scripts/localdb.py env   print `export ...` lines for the local server (no password values)

Environment knobs: LOCALDB_PORT (3307), LOCALDB_SEARCH_PATH (directories searched for the server
binary instead of PATH + the usual sbin folders), LOCALDB_PROJECT_DIR (where `.local/` lives and
where `python -m service` runs; default: this repository).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import pathlib
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pymysql

HOST = "127.0.0.1"
DEFAULT_PORT = 3307
DB_NAME = "users"
WEB_USER = "users_web"
MIGRATE_USER = "users_migrate"
EXTRA_SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin", "/opt/homebrew/bin")
INSTALL_HINT = (
    "no MariaDB/MySQL server binary found: install one (sudo apt-get install mariadb-server, "
    "or brew install mysql) or point DATABASE_HOST/DATABASE_USER/DATABASE_PASSWORD/DATABASE_NAME "
    "at an existing server"
)
_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_ACCESS_DENIED = 1045
_MAX_SOCKET_PATH = 100  # sun_path is 104-108 bytes depending on the platform


# --------------------------------------------------------------------------- server binary


def _search_dirs() -> list[str]:
    override = os.environ.get("LOCALDB_SEARCH_PATH")
    if override is not None:
        return [d for d in override.split(os.pathsep) if d]
    dirs = [d for d in os.environ.get("PATH", os.defpath).split(os.pathsep) if d]
    return dirs + [d for d in EXTRA_SEARCH_DIRS if d not in dirs]


def find_server_binary() -> pathlib.Path | None:
    """mariadbd or mysqld on PATH (or LOCALDB_SEARCH_PATH), /usr/sbin, /usr/local/mysql/bin."""
    path = os.pathsep.join(_search_dirs())
    for name in ("mariadbd", "mysqld"):
        found = shutil.which(name, path=path)
        if found:
            return pathlib.Path(found)
    return None


def _server_version(binary: pathlib.Path) -> str:
    out = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return out.stdout + out.stderr


def _find_install_db(binary: pathlib.Path) -> pathlib.Path | None:
    real = binary.resolve()
    dirs = [binary.parent, real.parent, real.parent.parent / "bin", real.parent.parent / "scripts"]
    path = os.pathsep.join([str(d) for d in dirs] + _search_dirs())
    for name in ("mariadb-install-db", "mysql_install_db"):
        found = shutil.which(name, path=path)
        if found:
            return pathlib.Path(found)
    return None


# --------------------------------------------------------------------------- server lifecycle


@dataclasses.dataclass
class Server:
    host: str
    port: int
    user: str
    password: str
    datadir: pathlib.Path
    process: subprocess.Popen[bytes]
    socket: pathlib.Path
    error_log: pathlib.Path
    version: str = ""  # SELECT VERSION(), e.g. "10.11.19-MariaDB-0+deb12u1"

    @property
    def label(self) -> str:
        """Short product name and version, e.g. "MariaDB 10.11" or "MySQL 8.4"."""
        product = "MariaDB" if "mariadb" in self.version.lower() else "MySQL"
        return f"{product} {'.'.join(self.version.split('-')[0].split('.')[:2])}"

    def conn_params(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password}

    def stop(self) -> None:
        """SIGTERM, wait up to 30 s, then SIGKILL. Safe to call more than once."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait()


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as mysqld does: ignore TIME_WAIT
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _log_size(path: pathlib.Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tail(path: pathlib.Path, since: int = 0, lines: int = 25) -> str:
    """The last lines the server wrote to its error log after byte offset `since`."""
    try:
        with path.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _socket_path(basedir: pathlib.Path) -> pathlib.Path:
    path = basedir / "mysqld.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    # A deep basedir would overflow sun_path: fall back to a short name derived from basedir.
    tag = hashlib.sha256(str(basedir).encode()).hexdigest()[:12]
    return pathlib.Path(tempfile.gettempdir()) / f"localdb-{tag}.sock"


def _is_mariadb(binary: pathlib.Path) -> bool:
    return "mariadb" in _server_version(binary).lower()


def _user_args() -> list[str]:
    return ["--user=root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


def _initialise(
    binary: pathlib.Path, mariadb: bool, datadir: pathlib.Path, basedir: pathlib.Path
) -> None:
    """Create the system tables in datadir.tmp, then rename it to datadir (no half-made datadir)."""
    staging = datadir.with_name(datadir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    install_base = binary.resolve().parent.parent
    if mariadb:
        install_db = _find_install_db(binary)
        if install_db is None:
            raise RuntimeError(f"{binary} is MariaDB but mariadb-install-db was not found")
        cmd = [
            str(install_db),
            "--no-defaults",
            f"--datadir={staging}",
            f"--basedir={install_base}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            *_user_args(),
        ]
    else:  # MySQL 8: the server initialises itself
        cmd = [
            str(binary),
            "--no-defaults",
            "--initialize-insecure",
            f"--datadir={staging}",
            f"--basedir={install_base}",
            *_user_args(),
        ]
    env = {**os.environ, "TMPDIR": str(basedir / "tmp")}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-25:])
        raise RuntimeError(f"initialising {datadir} failed (exit {out.returncode}):\n{tail}")
    staging.rename(datadir)


def _server_args(  # noqa: PLR0917
    binary: pathlib.Path,
    mariadb: bool,
    basedir: pathlib.Path,
    port: int,
    sock: pathlib.Path,
    extra_args: Sequence[str] = (),
) -> list[str]:
    args = [
        str(binary),
        "--no-defaults",
        f"--datadir={basedir / 'data'}",
        f"--port={port}",
        f"--bind-address={HOST}",
        f"--socket={sock}",
        f"--pid-file={basedir / 'mysqld.pid'}",
        f"--tmpdir={basedir / 'tmp'}",
        f"--secure-file-priv={basedir / 'tmp'}",
        f"--log-error={basedir / 'error.log'}",
        "--skip-name-resolve",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_unicode_ci",
        *_user_args(),
    ]
    if not mariadb:
        args += ["--mysqlx=OFF", "--skip-log-bin"]  # X protocol would listen on 0.0.0.0:33060
    return [*args, *extra_args]


def _connect(params: Mapping[str, Any], **extra: Any) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=params["host"],
        port=int(params["port"]),
        user=params["user"],
        password=params.get("password") or "",
        connect_timeout=5,
        read_timeout=30,
        write_timeout=30,
        autocommit=True,
        **extra,
    )


def _allow_root_over_tcp(sock: pathlib.Path) -> None:
    """MySQL --initialize-insecure makes only root@localhost: add root@127.0.0.1 (via socket)."""
    conn = pymysql.connect(unix_socket=str(sock), user="root", password="", autocommit=True)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''")
        cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")


def _wait_ready(server: Server, deadline: float, log_offset: int) -> None:
    """Poll until root can log in over TCP; raise RuntimeError with the log tail otherwise."""
    fixed_root = False
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"database server exited with code {server.process.returncode}; "
                f"{server.error_log} ends with:\n{_tail(server.error_log, log_offset)}"
            )
        try:
            conn = _connect(server.conn_params())
        except pymysql.err.MySQLError as exc:
            if exc.args and exc.args[0] == _ACCESS_DENIED:
                if fixed_root:
                    raise RuntimeError(f"root cannot log in over TCP: {exc}") from exc
                try:
                    _allow_root_over_tcp(server.socket)
                except pymysql.err.MySQLError as sock_exc:
                    raise RuntimeError(f"root cannot log in over TCP: {sock_exc}") from exc
                fixed_root = True
                continue
        else:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT VERSION(), @@datadir")
                version, datadir = cur.fetchone()
            if pathlib.Path(datadir).resolve() == server.datadir:
                server.version = str(version)
                return
            # another server answers on this port: ours will fail to bind and exit
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"database server did not accept connections on {server.host}:{server.port} in "
                f"time; {server.error_log} ends with:\n{_tail(server.error_log, log_offset)}"
            )
        time.sleep(0.05)


def _launch(args: list[str], error_log: pathlib.Path) -> subprocess.Popen[bytes]:
    with error_log.open("ab") as log:
        return subprocess.Popen(  # own session: a terminal Ctrl-C must not reach it directly
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )


def start_server(
    basedir: pathlib.Path, port: int = 0, timeout: float = 60, extra_args: Sequence[str] = ()
) -> Server:
    """Start a server with its data, socket, pid file, tmpdir and error log in basedir.
    `extra_args` go to the server as they are (e.g. --ssl-cert=... for a TLS test).

    The datadir (basedir/data) is initialised on first use and reused afterwards. port=0 picks a
    free loopback port. Root logs in over TCP with an empty password. Raises RuntimeError (with
    the tail of the error log) if the server does not come up within `timeout` seconds.
    """
    binary = find_server_binary()
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    mariadb = _is_mariadb(binary)
    if port and not port_is_free(port):
        raise RuntimeError(f"port {port} on {HOST} is already in use")
    basedir = pathlib.Path(basedir).resolve()
    (basedir / "tmp").mkdir(parents=True, exist_ok=True)
    datadir = basedir / "data"
    if not datadir.is_dir():
        _initialise(binary, mariadb, datadir, basedir)
    deadline = time.monotonic() + timeout
    error_log = basedir / "error.log"
    sock = _socket_path(basedir)
    for attempt in range(3):
        chosen = port or free_port()
        offset = _log_size(error_log)
        args = _server_args(binary, mariadb, basedir, chosen, sock, extra_args)
        process = _launch(args, error_log)
        server = Server(HOST, chosen, "root", "", datadir, process, sock, error_log)
        try:
            _wait_ready(server, deadline, offset)
        except RuntimeError:
            server.stop()
            lost_race = "already in use" in _tail(error_log, offset).lower()
            if port == 0 and lost_race and attempt < 2:
                continue  # someone took the free port between our probe and the server's bind
            raise
        except BaseException:
            server.stop()
            raise
        return server
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- databases and users


def _params(target: Any) -> dict[str, Any]:
    if isinstance(target, Mapping):
        return dict(target)
    return {k: getattr(target, k) for k in ("host", "port", "user", "password")}


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def create_database(  # noqa: PLR0917 - the positional signature the tests use
    target: Server | Mapping[str, Any],
    name: str,
    web_user: str,
    web_password: str,
    migrate_user: str,
    migrate_password: str,
) -> None:
    """Create database `name` (utf8mb4) and its two users on 127.0.0.1 and localhost. Idempotent.

    target is a Server or a mapping with host, port, user, password (an admin account).
    The web user gets SELECT, INSERT, UPDATE, DELETE on name.*; the migrate user ALL PRIVILEGES
    on name.* (DDL + DML). Re-running resets the passwords to the given ones.
    """
    db = _check_name(name)
    grants = {
        _check_name(web_user): (web_password, "SELECT, INSERT, UPDATE, DELETE"),
        _check_name(migrate_user): (migrate_password, "ALL PRIVILEGES"),
    }
    conn = _connect(_params(target))
    with conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        for user, (password, privileges) in grants.items():
            for host in ("127.0.0.1", "localhost"):
                cur.execute(
                    "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (user, host, password)
                )
                cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
                cur.execute(f"GRANT {privileges} ON `{db}`.* TO %s@%s", (user, host))


def drop_database(target: Server | Mapping[str, Any], name: str, users: list[str]) -> None:
    """Drop database `name` and the given users (both hosts). Idempotent."""
    db = _check_name(name)
    conn = _connect(_params(target))
    with conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        for user in users:
            for host in ("127.0.0.1", "localhost"):
                cur.execute("DROP USER IF EXISTS %s@%s", (_check_name(user), host))


# --------------------------------------------------------------------------- CLI


def project_dir() -> pathlib.Path:
    override = os.environ.get("LOCALDB_PROJECT_DIR")
    return (
        pathlib.Path(override).resolve()
        if override
        else pathlib.Path(__file__).resolve().parents[1]
    )


def _write_private(path: pathlib.Path, text: str) -> None:
    """Write a 0600 file atomically (never world-readable, not even for a moment)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)
    tmp.replace(path)


def _read_env_file(path: pathlib.Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values


def _private_dir(path: pathlib.Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def local_credentials(local: pathlib.Path) -> dict[str, pathlib.Path]:
    """Generate the two passwords once (.local/credentials.env, 0600) and the *_FILE copies."""
    _private_dir(local)
    creds_file = local / "credentials.env"
    creds = _read_env_file(creds_file) if creds_file.exists() else {}
    wanted = ("LOCALDB_WEB_PASSWORD", "LOCALDB_MIGRATE_PASSWORD")
    if not all(creds.get(k) for k in wanted):
        for key in wanted:
            creds[key] = creds.get(key) or secrets.token_urlsafe(24)
        body = "".join(f"{k}={creds[k]}\n" for k in wanted)
        _write_private(creds_file, "# generated by scripts/localdb.py; local use only\n" + body)
    files = {"web": local / "web-password", "migrate": local / "migrate-password"}
    for path, key in zip(files.values(), wanted, strict=True):
        if not path.exists() or path.read_text() != creds[key]:
            _write_private(path, creds[key])  # no trailing newline
    return files


def local_env(local: pathlib.Path, port: int) -> dict[str, str]:
    files = local_credentials(local)
    return {
        "DATABASE_HOST": HOST,
        "DATABASE_PORT": str(port),
        "DATABASE_USER": WEB_USER,
        "DATABASE_PASSWORD_FILE": str(files["web"]),
        "DATABASE_NAME": DB_NAME,
        "MIGRATE_DATABASE_USER": MIGRATE_USER,
        "MIGRATE_DATABASE_PASSWORD_FILE": str(files["migrate"]),
    }


def _local_port() -> int:
    raw = os.environ.get("LOCALDB_PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        print(f"LOCALDB_PORT must be a TCP port number, got {raw!r}", file=sys.stderr)
        sys.exit(2)
    return int(raw)


def _service(*args: str) -> list[str]:
    return [sys.executable, "-m", "service", *args]


def _display(path: pathlib.Path) -> str:
    try:
        return str(path.relative_to(pathlib.Path.cwd()))
    except ValueError:
        return str(path)


def _busy_message(port: int, basedir: pathlib.Path) -> str:
    msg = f"port {port} on {HOST} is busy: free it or set LOCALDB_PORT to another port"
    pid_file = basedir / "mysqld.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
        msg += f" (a leftover local server may still run as pid {pid}: kill {pid})"
    return msg


def _serve(env: dict[str, str], cwd: pathlib.Path, on_start: str) -> int:
    """Run the web process in the foreground; SIGINT/SIGTERM become a SIGTERM to it."""
    state: dict[str, Any] = {"web": None, "signals": 0}

    def forward(signum: int, frame: object) -> None:
        state["signals"] += 1
        web = state["web"]
        if web is not None and web.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                web.send_signal(signal.SIGTERM if state["signals"] == 1 else signal.SIGKILL)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        # own session: Ctrl-C reaches only us, and we ask the web process for a graceful drain
        state["web"] = subprocess.Popen(_service("web"), env=env, cwd=cwd, start_new_session=True)
        if state["signals"]:  # a signal arrived while it was starting
            state["web"].terminate()
        print(on_start, flush=True)
        code = state["web"].wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if state["signals"]:
        return 0
    return 128 - code if code < 0 else code  # killed by a signal: the shell's 128+N


def _run_with_own_database(root: pathlib.Path, env: dict[str, str]) -> int:
    code = subprocess.run(_service("migrate"), env=env, cwd=root, check=False).returncode
    if code != 0:
        return code
    os.chdir(root)
    os.execve(sys.executable, _service("web"), env)  # noqa: S606 - replace ourselves, no shell


def _migrate_and_serve(server: Server, root: pathlib.Path, env: dict[str, str]) -> int:
    local = root / ".local"
    for key in ("DATABASE_PASSWORD", "MIGRATE_DATABASE_PASSWORD", "DATABASE_SSL_CA"):
        env.pop(key, None)
    env.update(local_env(local, server.port))
    env.setdefault("PORT", "5000")
    creds = _read_env_file(local / "credentials.env")
    create_database(
        server,
        DB_NAME,
        WEB_USER,
        creds["LOCALDB_WEB_PASSWORD"],
        MIGRATE_USER,
        creds["LOCALDB_MIGRATE_PASSWORD"],
    )
    code = subprocess.run(_service("migrate"), env=env, cwd=root, check=False).returncode
    if code != 0:
        return code
    line = (
        f"serving http://{HOST}:{env['PORT']} (local {server.label} on {HOST}:{server.port}, "
        f"data in {_display(server.datadir.parent)})"
    )
    return _serve(env, root, line)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run_with_local_server(root: pathlib.Path, env: dict[str, str]) -> int:
    if find_server_binary() is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    port = _local_port()
    basedir = root / ".local" / "mysql"
    if not port_is_free(port):
        print(_busy_message(port, basedir), file=sys.stderr)
        return 2
    _private_dir(basedir.parent)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # until the web process runs: clean up, leave
    try:
        server = start_server(basedir, port)
    except RuntimeError as exc:
        print(f"could not start the local database server: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    try:
        return _migrate_and_serve(server, root, env)
    except KeyboardInterrupt:
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # let the database stop cleanly
            signal.signal(sig, signal.SIG_IGN)
        server.stop()


def cmd_run() -> int:
    root = project_dir()
    env = dict(os.environ)
    if env.get("DATABASE_HOST"):  # the developer's own database
        return _run_with_own_database(root, env)
    return _run_with_local_server(root, env)


def cmd_env() -> int:
    local = project_dir() / ".local"
    for key, value in local_env(local, _local_port()).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def main(argv: list[str]) -> int:
    commands = {"run": cmd_run, "env": cmd_env}
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: {pathlib.Path(__file__).name} run|env", file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        sys.exit(errno.EPIPE)
