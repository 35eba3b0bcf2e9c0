"""scripts/localdb.py against a real MariaDB/MySQL server process (no mocks)."""

import json
import os
import pathlib
import secrets
import signal
import stat
import subprocess
import sys
import textwrap

import pymysql
import pytest

from tests.support.localdb import localdb, require_server_binary
from tests.support.paths import SCRIPTS
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

needs_server = pytest.mark.usefixtures("server_binary")


@pytest.fixture(scope="session")
def server_binary():
    return require_server_binary("to test scripts/localdb.py with")


@pytest.fixture(scope="module")
def server(server_binary, tmp_path_factory):
    srv = localdb.start_server(tmp_path_factory.mktemp("localdb"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def database(server):
    names = {
        "name": "t_" + secrets.token_hex(4),
        "web_user": "w_" + secrets.token_hex(4),
        "web_password": secrets.token_urlsafe(16),
        "migrate_user": "m_" + secrets.token_hex(4),
        "migrate_password": secrets.token_urlsafe(16),
    }
    localdb.create_database(server, **names)
    return names


def connect(server, user, password, database):
    return pymysql.connect(
        host=server.host,
        port=server.port,
        user=user,
        password=password,
        database=database,
        autocommit=True,
        connect_timeout=5,
        read_timeout=10,
    )


def test_root_logs_in_over_tcp_with_empty_password(server):
    assert server.host == "127.0.0.1"
    assert (server.user, server.password) == ("root", "")
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root", password="")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT @@bind_address, @@character_set_server")
        bind, charset = cur.fetchone()
    assert bind == "127.0.0.1"
    assert charset == "utf8mb4"
    assert server.label.split()[0] in {"MariaDB", "MySQL"}


def test_database_is_utf8mb4(server, database):
    conn = pymysql.connect(**server.conn_params())
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT default_character_set_name, default_collation_name "
            "FROM information_schema.schemata WHERE schema_name = %s",
            (database["name"],),
        )
        assert cur.fetchone() == ("utf8mb4", "utf8mb4_unicode_ci")


def test_migrate_user_has_ddl_and_web_user_only_dml(server, database):
    mig = connect(server, database["migrate_user"], database["migrate_password"], database["name"])
    with mig, mig.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute("CREATE INDEX t_v ON t (v)")
    web = connect(server, database["web_user"], database["web_password"], database["name"])
    with web, web.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1, 'a')")
        cur.execute("UPDATE t SET v = 'b' WHERE id = 1")
        cur.execute("SELECT v FROM t")
        assert cur.fetchall() == (("b",),)
        for ddl in ("CREATE TABLE t2 (id INT)", "DROP TABLE t", "ALTER TABLE t ADD COLUMN x INT"):
            with pytest.raises(pymysql.err.OperationalError) as exc:
                cur.execute(ddl)
            assert exc.value.args[0] in {1142, 1044}  # command denied / access denied


def test_create_database_is_idempotent(server, database):
    localdb.create_database(server, **database)
    conn = connect(server, database["web_user"], database["web_password"], database["name"])
    conn.close()


def test_restart_on_same_port_keeps_data(server, database):
    mig = connect(server, database["migrate_user"], database["migrate_password"], database["name"])
    with mig, mig.cursor() as cur:
        cur.execute("CREATE TABLE kept (v VARCHAR(10))")
        cur.execute("INSERT INTO kept VALUES ('still here')")
    port, basedir = server.port, server.datadir.parent
    server.stop()
    server.stop()  # idempotent
    assert server.process.poll() is not None
    again = localdb.start_server(basedir, port)
    try:
        # the module fixture keeps finalising the original object: hand it the new process
        server.process = again.process
        conn = connect(again, database["web_user"], database["web_password"], database["name"])
        with conn, conn.cursor() as cur:
            cur.execute("SELECT v FROM kept")
            assert cur.fetchall() == (("still here",),)
    finally:
        assert again.port == port


def test_drop_database_removes_database_and_users(server):
    name, web, mig = ("d_" + secrets.token_hex(4), "dw_" + secrets.token_hex(4), "dm_x")
    mig += secrets.token_hex(4)
    localdb.create_database(server, name, web, "pw1", mig, "pw2")
    localdb.drop_database(server.conn_params(), name, [web, mig])
    localdb.drop_database(server.conn_params(), name, [web, mig])  # idempotent
    conn = pymysql.connect(**server.conn_params())
    with conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM mysql.user WHERE user IN (%s, %s)", (web, mig))
        assert cur.fetchone() == (0,)
        cur.execute("SHOW DATABASES LIKE %s", (name,))
        assert cur.fetchall() == ()


def test_create_and_drop_take_plain_connection_parameters(server):
    params = {"host": server.host, "port": server.port, "user": "root", "password": ""}
    name = "p_" + secrets.token_hex(4)
    localdb.create_database(params, name, name + "_w", "a", name + "_m", "b")
    localdb.drop_database(params, name, [name + "_w", name + "_m"])


def test_rejects_names_that_are_not_plain_identifiers(server):
    with pytest.raises(ValueError, match="plain identifier"):
        localdb.create_database(server, "x`; DROP DATABASE mysql; --", "w", "a", "m", "b")


def test_start_on_a_busy_port_fails_fast(server, tmp_path):
    with pytest.raises(RuntimeError, match=f"port {server.port} .* in use"):
        localdb.start_server(tmp_path / "clash", port=server.port, timeout=30)


def test_start_failure_raises_with_log_tail(server_binary, tmp_path):
    (tmp_path / "data").mkdir()  # a datadir without system tables: the server aborts
    with pytest.raises(RuntimeError, match=r"(?s)exited with code.*error\.log ends with:\n.+"):
        localdb.start_server(tmp_path, timeout=30)


# --------------------------------------------------------------------------- CLI


def run_cli(*args, env, timeout=60):
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "localdb.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def clean_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "MIGRATE_"))}
    env.update(LOCALDB_PROJECT_DIR=str(tmp_path), **extra)
    return env


def test_run_without_server_binary_prints_one_line_hint(tmp_path):
    env = clean_env(tmp_path, LOCALDB_SEARCH_PATH=str(tmp_path / "nothing-here"))
    out = run_cli("run", env=env)
    assert out.returncode == 2
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert len(lines) == 1
    assert "apt-get install mariadb-server" in lines[0]
    assert "brew install mysql" in lines[0]
    assert "DATABASE_HOST" in lines[0]
    assert not (tmp_path / ".local").exists()


@needs_server
def test_run_with_busy_port_says_so(tmp_path, server):
    out = run_cli("run", env=clean_env(tmp_path, LOCALDB_PORT=str(server.port)))
    assert out.returncode == 2
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert len(lines) == 1
    assert f"port {server.port}" in lines[0]


def test_env_prints_exports_and_no_password(tmp_path):
    out = run_cli("env", env=clean_env(tmp_path, LOCALDB_PORT="3999"))
    assert out.returncode == 0, out.stderr
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in out.stdout.strip().splitlines()
    )
    assert exports["DATABASE_HOST"] == "127.0.0.1"
    assert exports["DATABASE_PORT"] == "3999"
    assert exports["DATABASE_USER"] == "users_web"
    assert exports["DATABASE_NAME"] == "users"
    assert exports["MIGRATE_DATABASE_USER"] == "users_migrate"
    assert "DATABASE_PASSWORD" not in exports
    creds = (tmp_path / ".local" / "credentials.env").read_text()
    for key in ("DATABASE_PASSWORD_FILE", "MIGRATE_DATABASE_PASSWORD_FILE"):
        path = pathlib.Path(exports[key])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        password = path.read_text()
        assert len(password) >= 24
        assert password in creds
        assert password not in out.stdout + out.stderr
    assert stat.S_IMODE((tmp_path / ".local" / "credentials.env").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / ".local").stat().st_mode) == 0o700
    again = run_cli("env", env=clean_env(tmp_path, LOCALDB_PORT="3999"))
    assert (tmp_path / ".local" / "credentials.env").read_text() == creds  # generated once
    assert again.stdout == out.stdout


STAND_IN = textwrap.dedent(
    """
    # stand-in for the real service package: records what `run` hands it
    import json, os, pathlib, signal, sys, time
    import pymysql

    cmd = sys.argv[1]
    here = pathlib.Path.cwd()
    env = {k: v for k, v in os.environ.items() if k.startswith(("DATABASE_", "MIGRATE_", "PORT"))}
    (here / f"{cmd}.json").write_text(json.dumps(env))
    if cmd == "migrate":
        user, pw = env["MIGRATE_DATABASE_USER"], env["MIGRATE_DATABASE_PASSWORD_FILE"]
    else:
        user, pw = env["DATABASE_USER"], env["DATABASE_PASSWORD_FILE"]
    conn = pymysql.connect(
        host=env["DATABASE_HOST"], port=int(env["DATABASE_PORT"]), user=user,
        password=pathlib.Path(pw).read_text(), database=env["DATABASE_NAME"], autocommit=True,
    )
    with conn.cursor() as cur:
        if cmd == "migrate":
            cur.execute("CREATE TABLE IF NOT EXISTS runs (id INT AUTO_INCREMENT PRIMARY KEY)")
        else:
            cur.execute("INSERT INTO runs () VALUES ()")
    conn.close()
    if cmd == "web":
        if os.environ.get("STAND_IN_EXIT"):
            sys.exit(int(os.environ["STAND_IN_EXIT"]))
        signal.signal(signal.SIGTERM, lambda *_: (here / "web.term").touch() or sys.exit(0))
        (here / "web.ready").touch()
        time.sleep(120)
    """
)


def stand_in_project(tmp_path):
    pkg = tmp_path / "service"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(STAND_IN)
    return tmp_path


def wait_for(path, proc, timeout=60):
    def appeared():
        assert proc.poll() is None, proc.communicate()
        return path.exists()

    wait_until(f"{path} to appear", appeared, timeout, 0.05, errors=())


@needs_server
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_run_migrates_serves_and_stops_on_signal(tmp_path, sig):
    project = stand_in_project(tmp_path)
    port = localdb.free_port()
    env = clean_env(project, LOCALDB_PORT=str(port), PORT="5999")
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "localdb.py"), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(project / "web.ready", proc)
        proc.send_signal(getattr(signal, sig))
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert (project / "web.term").exists()  # SIGTERM forwarded to the web process
    assert "serving http://127.0.0.1:5999 (local " in stdout
    assert f"on 127.0.0.1:{port}, data in " in stdout
    passwords = [p.read_text() for p in (project / ".local").glob("*-password")]
    assert len(passwords) == 2
    for password in passwords:
        assert password not in stdout + stderr
    web_env = json.loads((project / "web.json").read_text())
    assert web_env["DATABASE_USER"] == "users_web"
    assert web_env["MIGRATE_DATABASE_USER"] == "users_migrate"
    assert "DATABASE_PASSWORD" not in web_env
    assert localdb.port_is_free(port)  # the database server was stopped
    assert stat.S_IMODE((project / ".local").stat().st_mode) == 0o700


@needs_server
def test_run_exits_with_web_code_and_stops_database(tmp_path):
    project = stand_in_project(tmp_path)
    port = localdb.free_port()
    out = run_cli("run", env=clean_env(project, LOCALDB_PORT=str(port), STAND_IN_EXIT="3"))
    assert out.returncode == 3, out.stderr
    assert localdb.port_is_free(port)
    # second run reuses data and credentials: the web stand-in's INSERT lands in the same table
    out = run_cli("run", env=clean_env(project, LOCALDB_PORT=str(port), STAND_IN_EXIT="4"))
    assert out.returncode == 4, out.stderr
    server = localdb.start_server(project / ".local" / "mysql", port)
    try:
        conn = pymysql.connect(**server.conn_params(), database="users")
        with conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM runs")
            assert cur.fetchone() == (2,)
    finally:
        server.stop()


@needs_server
def test_run_with_database_host_uses_it_as_is(tmp_path, server, database):
    project = stand_in_project(tmp_path)
    for name, role in (("web", "web_password"), ("migrate", "migrate_password")):
        (tmp_path / f"{name}.pw").write_text(database[role])
    env = clean_env(
        project,
        DATABASE_HOST="127.0.0.1",
        DATABASE_PORT=str(server.port),
        DATABASE_NAME=database["name"],
        DATABASE_USER=database["web_user"],
        DATABASE_PASSWORD_FILE=str(tmp_path / "web.pw"),
        MIGRATE_DATABASE_USER=database["migrate_user"],
        MIGRATE_DATABASE_PASSWORD_FILE=str(tmp_path / "migrate.pw"),
        STAND_IN_EXIT="5",
        LOCALDB_SEARCH_PATH="",
    )
    out = run_cli("run", env=env)
    assert out.returncode == 5, out.stderr  # exec'd web's own exit code
    assert (project / "migrate.json").exists()
    assert not (project / ".local").exists()


def test_create_and_drop_against_a_server_given_by_its_connection_parameters(mysql_admin):
    """create_database/drop_database take a Server or plain parameters (an existing server, as
    TEST_DATABASE_* name one); here the test server's, over TCP."""
    params = mysql_admin
    tag = secrets.token_hex(4)
    name, web, mig = f"ldb_{tag}", f"ldbw_{tag}", f"ldbm_{tag}"
    try:
        localdb.create_database(params, name, web, "web-pw", mig, "mig-pw")
        conn = pymysql.connect(**{**params, "user": web, "password": "web-pw"}, database=name)
        with conn, conn.cursor() as cur:
            cur.execute("SHOW GRANTS")
            grants = " ".join(row[0] for row in cur.fetchall())
        assert "SELECT, INSERT, UPDATE, DELETE ON `" + name + "`.*" in grants
    finally:
        localdb.drop_database(params, name, [web, mig])
    conn = pymysql.connect(**params)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM mysql.user WHERE user IN (%s, %s)", (web, mig))
        assert cur.fetchone() == (0,)
