"""The mysql:8.4 stand-in (images/mysql-standin: Debian's MariaDB 10.11, not MySQL), run for real
under `make test-container`'s private dockerd, against the contract its users rely on:

- the chart's StatefulSet, as rendered by helm (values-dev.yaml): its args, env, volume mounts,
  uid/gid, read-only root filesystem, credentials files, init script and probe commands;
- the official image's entrypoint behaviour that docker-compose.yml and other init scripts use:
  MYSQL_ROOT_PASSWORD, the default MYSQL_ROOT_HOST %, *.sh sourced or run, *.sql, *.sql.gz,
  file_env, one-line errors, arguments starting with "-" going to mysqld, SIGTERM as PID 1.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import secrets
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from tests.support.chart import CHART, render
from tests.support.docker import docker
from tests.support.localdb import free_port
from tests.support.paths import SCRIPTS
from tests.support.scripts import import_script
from tests.support.wait import wait_until

standin_base = import_script(SCRIPTS / "standin_base.py")

pytestmark = pytest.mark.slow

IMAGE = os.environ.get("CONTAINER_MYSQL_IMAGE", "")
MYSQL_UID = 999
ACCESS_DENIED = {1044, 1045, 1142, 1130}  # DB, login, table denied; host not allowed
READY_LINE = "MySQL init process done. Ready for start up."

if not IMAGE:
    pytest.skip(
        "CONTAINER_MYSQL_IMAGE is not set: the mysql stand-in is built and run by "
        "`make test-container` (root; starts a private dockerd), not by plain `make test`",
        allow_module_level=True,
    )


@dataclass
class Db:
    name: str
    port: int

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        return docker("exec", self.name, *command, check=False, timeout=30)

    def wait_for_log(self, text: str, timeout: float = 90) -> None:
        def logged() -> bool:
            if text in self.logs():
                return True
            state = json.loads(docker("inspect", self.name).stdout)[0]["State"]
            if not state["Running"]:
                pytest.fail(
                    f"{self.name} exited {state['ExitCode']} before {text!r}:\n{self.logs()}"
                )
            return False

        wait_until(f"{text!r} from {self.name}", logged, timeout, 0.3, errors=(), context=self.logs)

    def connect(self, user: str, password: str, database: str | None = None) -> pymysql.Connection:
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user=user, password=password, database=database,
            autocommit=True, connect_timeout=5, read_timeout=30,
        )  # fmt: skip

    def wait_for_tcp(self, user: str, password: str, timeout: float = 60) -> None:
        def logged_in() -> bool:
            self.connect(user, password).close()
            return True

        wait_until(f"{user} to log in over TCP", logged_in, timeout, 0.3,
                   errors=(pymysql.err.OperationalError,), context=self.logs)  # fmt: skip


def remove(name: str) -> None:
    docker("rm", "-f", "-v", name, check=False)


# ---- the image ----------------------------------------------------------------------------------


def test_image_says_it_is_a_mariadb_standin_for_mysql_84_and_runs_as_999() -> None:
    image = json.loads(docker("image", "inspect", IMAGE).stdout)[0]
    description = image["Config"]["Labels"]["org.opencontainers.image.description"]
    assert "Stand-in for mysql:8.4" in description
    assert "MariaDB 10.11" in description
    assert "not MySQL" in description
    assert image["Config"]["User"] == f"{MYSQL_UID}:{MYSQL_UID}"
    assert image["Config"]["Entrypoint"] == ["docker-entrypoint.sh"]
    assert image["Config"]["Cmd"] == ["mysqld"]
    assert "/var/lib/mysql" in image["Config"]["Volumes"]
    tagged = json.loads(docker("image", "inspect", "mysql:8.4").stdout)[0]
    assert tagged["Id"] == image["Id"], "mysql:8.4 is not the stand-in in this daemon"


def test_dash_arguments_go_to_mysqld_which_is_mariadb_10_11() -> None:
    result = docker("run", "--rm", IMAGE, "--version")
    assert re.search(r"Ver 10\.11\.\d+-MariaDB", result.stdout), result.stdout
    admin = docker("run", "--rm", IMAGE, "mysqladmin", "--version")
    assert "10.11" in admin.stdout, admin.stdout


def test_the_cached_tarball_is_a_docker_save_of_both_tags() -> None:
    """What another script imports into a Kubernetes node (`ctr images import`)."""
    path = standin_base.cache_dir() / f"mysql-standin-{standin_base.mysql_key()}.tar"
    assert f"{standin_base.MYSQL_REPO}:{standin_base.mysql_key()}" == IMAGE
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert sorted(manifest[0]["RepoTags"]) == sorted([IMAGE, "mysql:8.4"])


# ---- the chart's StatefulSet, for real ---------------------------------------------------------


@pytest.fixture(scope="module")
def chart_mysql() -> dict:
    rendered = render("--values", str(CHART / "values-dev.yaml"))
    statefulset = rendered.one("StatefulSet", "database")
    spec = statefulset["spec"]["template"]["spec"]
    container = next(c for c in spec["containers"] if c["name"] == "mysql")
    initdb_volume = next(v for v in spec["volumes"] if v["name"] == "initdb")
    configmap = rendered.named("ConfigMap", initdb_volume["configMap"]["name"])
    users = re.findall(
        r"CREATE USER IF NOT EXISTS '(\w+)'@'%'", "".join(configmap["data"].values())
    )
    assert len(users) == 2, configmap["data"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    return {
        "pod": spec,
        "container": container,
        "initdb": configmap["data"],
        "web_user": users[0],
        "migrate_user": users[1],
        "database": env["MYSQL_DATABASE"],
    }


HOLD_SCRIPT = """\
# test only: hold the first initialisation until the test creates /tmp/release
mysql_note "test: holding init until /tmp/release exists"
for _ in $(seq 600); do [ -e /tmp/release ] && break; sleep 0.1; done
"""


@pytest.fixture
def chart_db(tmp_path: Path, chart_mysql: dict) -> Iterator[tuple[Db, dict[str, str]]]:
    """The StatefulSet's container as docker runs it: the pod's uid/gid, read-only root, a data
    dir owned by the fsGroup (as a fresh PVC), emptyDirs as tmpfs, the Secret's three files
    (mode 0440, group 999) and the ConfigMap's init script, with a hold script before it."""
    container, pod = chart_mysql["container"], chart_mysql["pod"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["fsGroup"] == MYSQL_UID
    passwords = {k: secrets.token_urlsafe(16) for k in ("root", "web", "migrate")}
    creds, initdb, data = tmp_path / "credentials", tmp_path / "initdb", tmp_path / "data"
    for path in (creds, initdb, data):
        path.mkdir()
    for key, value in passwords.items():
        (creds / f"{key}-password").write_text(value)
        os.chown(creds / f"{key}-password", 0, MYSQL_UID)
        (creds / f"{key}-password").chmod(0o440)
    (initdb / "05-hold.sh").write_text(HOLD_SCRIPT)
    for name, text in chart_mysql["initdb"].items():
        (initdb / name).write_text(text)
        (initdb / name).chmod(0o644)
    os.chown(data, 0, MYSQL_UID)
    data.chmod(0o2770)
    mounts = {"data": f"{data}:", "initdb": f"{initdb}:ro", "credentials": f"{creds}:ro"}
    args = [
        "run", "-d", "--name", f"ct-mysql-{secrets.token_hex(3)}",
        "--user", f"{security['runAsUser']}:{security['runAsGroup']}",
        "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
    ]  # fmt: skip
    for mount in container["volumeMounts"]:
        source = mounts.get(mount["name"])
        if source is None:  # an emptyDir
            args += ["--tmpfs", f"{mount['mountPath']}:rw,mode=1777"]
        else:
            host, mode = source.split(":")
            args += ["-v", f"{host}:{mount['mountPath']}{':' + mode if mode else ''}"]
    for env in container["env"]:
        args += ["-e", f"{env['name']}={env['value']}"]
    port = free_port()
    args += ["-p", f"127.0.0.1:{port}:{container['ports'][0]['containerPort']}"]
    name = args[3]
    docker(*args, IMAGE, *container["args"])
    db = Db(name, port)
    try:
        yield db, passwords
    finally:
        logs = db.logs()
        remove(name)
        for value in passwords.values():
            assert value not in logs, "a password reached the container's log"


def probe(db: Db, chart_mysql: dict, name: str) -> int:
    return db.exec(*chart_mysql["container"][name]["exec"]["command"]).returncode


def test_chart_statefulset_initialises_without_networking_then_serves_the_app_users(
    chart_db: tuple[Db, dict[str, str]], chart_mysql: dict, tmp_path: Path
) -> None:
    db, passwords = chart_db
    db.wait_for_log("test: holding init until /tmp/release exists")
    # the temporary server runs (socket) but TCP is off: the chart's startup/readiness probes fail
    assert probe(db, chart_mysql, "startupProbe") != 0
    assert probe(db, chart_mysql, "readinessProbe") != 0
    assert probe(db, chart_mysql, "livenessProbe") == 0  # over the socket
    db.exec("touch", "/tmp/release")
    db.wait_for_log(READY_LINE)
    web, migrate, database = (chart_mysql[k] for k in ("web_user", "migrate_user", "database"))
    db.wait_for_tcp(web, passwords["web"])
    assert probe(db, chart_mysql, "startupProbe") == 0
    assert probe(db, chart_mysql, "readinessProbe") == 0

    with db.connect(migrate, passwords["migrate"], database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("SELECT @@datadir, @@max_connections, @@skip_name_resolve")
        datadir, max_connections, skip_name_resolve = cur.fetchone()
    assert datadir.rstrip("/") == "/var/lib/mysql/data"
    assert f"--max-connections={max_connections}" in chart_mysql["container"]["args"]
    assert skip_name_resolve == 1
    assert (tmp_path / "data" / "data" / "mysql").is_dir()  # the data went to the volume
    with db.connect(web, passwords["web"], database) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(pymysql.err.OperationalError) as denied:
            cur.execute("DROP TABLE t")
        assert denied.value.args[0] in ACCESS_DENIED
    # MYSQL_ROOT_HOST=localhost: root only over the socket, never over TCP
    with pytest.raises(pymysql.err.OperationalError) as denied:
        db.connect("root", passwords["root"]).close()
    assert denied.value.args[0] in ACCESS_DENIED

    cmdline = db.exec("cat", "/proc/1/cmdline").stdout.split("\0")
    assert Path(cmdline[0]).name in {"mysqld", "mariadbd"}, cmdline
    status = db.exec("cat", "/proc/1/status").stdout
    assert re.search(rf"^Uid:\s+{MYSQL_UID}\s+{MYSQL_UID}\s", status, re.MULTILINE), status
    assert "Read-only file system" not in db.logs()

    # SIGTERM to PID 1: a clean shutdown, exit 0; the next start keeps the data and skips init
    started = time.monotonic()
    docker("stop", "--time", "30", db.name, timeout=60)
    assert time.monotonic() - started < 20
    state = json.loads(docker("inspect", db.name).stdout)[0]["State"]
    assert state["ExitCode"] == 0, db.logs()
    assert "Shutdown complete" in db.logs()
    docker("start", db.name)
    db.wait_for_tcp(web, passwords["web"])
    with db.connect(web, passwords["web"], database) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM t")
        assert cur.fetchall() == ((1,),)
    assert db.logs().count("Initializing database files") == 1


# ---- the official entrypoint's behaviour --------------------------------------------------------

EXECUTABLE_SCRIPT = """\
#!/bin/bash
# run, not sourced: it must load the helpers itself, as with the official image
set -e
source /usr/local/bin/docker-entrypoint.sh
docker_setup_env mysqld
docker_process_sql --database=mysql <<<"CREATE TABLE $MYSQL_DATABASE.from_exec (id INT)"
"""


def test_compose_style_env_root_host_default_and_every_init_file_kind(tmp_path: Path) -> None:
    initdb = tmp_path / "initdb"
    initdb.mkdir()
    (initdb / "10-sourced.sh").write_text(
        'docker_process_sql <<<"CREATE TABLE from_sourced (v VARCHAR(20))"\n'
        'mysql_note "sourced with MYSQL_DATABASE=$MYSQL_DATABASE"\n'
    )
    (initdb / "20-exec.sh").write_text(EXECUTABLE_SCRIPT)
    (initdb / "20-exec.sh").chmod(0o755)
    (initdb / "30-plain.sql").write_text("INSERT INTO from_sourced VALUES ('sql');\n")
    (initdb / "40-zipped.sql.gz").write_bytes(
        gzip.compress(b"INSERT INTO from_sourced VALUES ('gz');\n")
    )
    (initdb / "50-notes.txt").write_text("not SQL\n")
    for path in initdb.iterdir():
        os.chmod(path, path.stat().st_mode | 0o444)
    password, name, port = (
        secrets.token_urlsafe(16),
        f"ct-mysql-{secrets.token_hex(3)}",
        free_port(),
    )
    docker(
        "run", "-d", "--name", name, "-e", f"MYSQL_ROOT_PASSWORD={password}",
        "-e", "MYSQL_DATABASE=app", "-e", "MYSQL_USER=appuser", "-e", f"MYSQL_PASSWORD={password}x",
        "-v", f"{initdb}:/docker-entrypoint-initdb.d:ro", "-p", f"127.0.0.1:{port}:3306", IMAGE,
    )  # fmt: skip
    db = Db(name, port)
    try:
        db.wait_for_log(READY_LINE)
        db.wait_for_tcp("root", password)  # MYSQL_ROOT_HOST defaults to %: root over TCP
        with db.connect("appuser", password + "x", "app") as conn, conn.cursor() as cur:
            cur.execute("SELECT v FROM from_sourced ORDER BY v")
            assert cur.fetchall() == (("gz",), ("sql",))
            cur.execute("SELECT COUNT(*) FROM from_exec")
            assert cur.fetchone() == (0,)
        logs = db.logs()
        assert "sourcing /docker-entrypoint-initdb.d/10-sourced.sh" in logs
        assert "running /docker-entrypoint-initdb.d/20-exec.sh" in logs
        assert "ignoring /docker-entrypoint-initdb.d/50-notes.txt" in logs
        assert "sourced with MYSQL_DATABASE=app" in logs
        assert password not in logs
        # the compose healthcheck's command
        healthcheck = "mysqladmin ping --host=127.0.0.1 --user=root --silent"
        check = db.exec("sh", "-c", f"MYSQL_PWD='{password}' {healthcheck}")
        assert check.returncode == 0, check.stderr
    finally:
        remove(name)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "MYSQL_ROOT_PASSWORD"),
        (
            {"MYSQL_ROOT_PASSWORD": "x", "MYSQL_ROOT_PASSWORD_FILE": "/etc/hostname"},
            "are exclusive",
        ),
        ({"MYSQL_RANDOM_ROOT_PASSWORD": "yes"}, "not supported by this stand-in"),
    ],
)
def test_bad_first_start_config_exits_1_with_one_line_naming_it(env: dict, expected: str) -> None:
    flags = [flag for key, value in env.items() for flag in ("-e", f"{key}={value}")]
    started = time.monotonic()
    result = docker("run", "--rm", *flags, IMAGE, check=False, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert time.monotonic() - started < 20


def test_root_password_file_is_read_like_file_env(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(16)
    (tmp_path / "root").write_text(password + "\n")  # trailing newline dropped, as by $(<file)
    (tmp_path / "root").chmod(0o444)
    name, port = f"ct-mysql-{secrets.token_hex(3)}", free_port()
    docker(
        "run", "-d", "--name", name, "-e", "MYSQL_ROOT_PASSWORD_FILE=/run/secrets/root",
        "-v", f"{tmp_path / 'root'}:/run/secrets/root:ro", "-p", f"127.0.0.1:{port}:3306", IMAGE,
    )  # fmt: skip
    db = Db(name, port)
    try:
        db.wait_for_log(READY_LINE)
        db.wait_for_tcp("root", password)
        assert password not in db.logs()
    finally:
        remove(name)
