"""A private dockerd with a real bridge and iptables, all of its state under one folder.

For the container tier (scripts/test-container.sh) and anything else that needs a throwaway docker
daemon on a machine without systemd. It never touches a system docker: its own socket, data and
exec roots under STATE_DIR, its own bridge (`users-docker0`, 172.31.240.1/24, created here and
handed to dockerd with --bridge) and its own range for user-defined networks such as compose's
(172.31.248.0/21, one /24 each). Published ports work (`-p 127.0.0.1:PORT:PORT`).

  python scripts/dockerd.py start STATE_DIR  start it, wait until it answers, print `export` lines:
                                             DOCKER_HOST, DOCKER (the CLI to use with it),
                                             DOCKER_BUILDKIT, DOCKER_CONFIG (an empty client config
                                             in STATE_DIR), DOCKERD_PID
  python scripts/dockerd.py env STATE_DIR    print those lines again
  python scripts/dockerd.py stop STATE_DIR   remove its containers and networks, SIGTERM it by PID
                                             (SIGKILL after 30 s), then remove its bridges, docker's
                                             iptables chains and rules, the guard rules and every
                                             mount under STATE_DIR; exits 1 naming anything left
  (each command also takes the folder as --state STATE_DIR)

  out=$(python scripts/dockerd.py start /tmp/d) && eval "$out" && docker run ...
  python scripts/dockerd.py stop /tmp/d

Nothing from the daemon's address ranges may leave the machine: guard rules
`iptables -t mangle -I POSTROUTING -o <outward iface> -s|-d <range> -j DROP` (mangle runs before
docker's MASQUERADE), and dockerd gets --ip-forward=false, so the host does not route container
traffic at all unless something else turned forwarding on (a local Kubernetes node does: then
the guard rules are what holds). Containers still reach each other, the
host (the bridge address) and published ports. A build that needs the package index runs with
`docker build --network host`.

One at a time per machine: dockerd deletes and recreates the DOCKER iptables chains when it starts,
so start refuses when those chains exist already (a system dockerd, or a run that was not stopped)
and when another dockerd of this helper still holds /run/lock/users-service-dockerd.lock.
Library: start(state_dir) -> dict of the exported variables, stop(state_dir) -> leftovers.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import ipaddress
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BRIDGE = "users-docker0"
BRIDGE_CIDR = "172.31.240.1/24"  # the bridge's own address: gateway of the default network
POOL = "172.31.248.0/21"  # user-defined networks (compose), one /24 each
POOL_SIZE = 24
GUARD_COMMENT = "users-service-dockerd-guard"
LOCK = Path("/run/lock/users-service-dockerd.lock")
STATE_FILE = "helper.json"
START_TIMEOUT = 60
STOP_TIMEOUT = 30
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes; containerd's sockets sit deeper than docker.sock


class DockerdError(RuntimeError):
    """A one-line reason why the daemon could not be started or stopped cleanly."""


# --------------------------------------------------------------------------- small helpers


def _run(*cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise DockerdError(f"`{shlex.join(cmd)}` failed: {result.stderr.strip()}")
    return result


def _need(name: str) -> str:
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if path is None:
        raise DockerdError(f"{name} not found: apt-get install docker.io iptables iproute2")
    return path


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(_need("iptables"), "-w", "10", *args, check=check)


def _networks(cfg: dict) -> list[ipaddress.IPv4Network]:
    return [
        ipaddress.ip_network(cfg["bridge_cidr"], strict=False),
        ipaddress.ip_network(cfg["pool"]),
    ]


def _outward_interfaces() -> list[str]:
    routes = json.loads(_run("ip", "-j", "route", "show", "default").stdout or "[]")
    return sorted({r["dev"] for r in routes if r.get("dev")})


def _links() -> list[dict]:
    return json.loads(_run("ip", "-j", "addr", "show").stdout or "[]")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _our_processes(state: Path) -> list[int]:
    """dockerd, its containerd and the shims: every process whose command line names STATE_DIR."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if (
            entry.name.isdigit()
            and int(entry.name) != me
            and f"{state}/" in _cmdline(int(entry.name))
        ):
            found.append(int(entry.name))
    return sorted(found)


def _mounts_under(state: Path) -> list[str]:
    prefix = f"{state}/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point.startswith(prefix) or point == str(state):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _docker_cli(dockerd: str) -> tuple[str, str]:
    """The CLI of the same package as dockerd (Debian's docker.io: /usr/bin/docker, BuildKit built
    in) and DOCKER_BUILDKIT for it: CLIs from 23 on need the buildx plugin for BuildKit, without it
    the classic builder is used (the project's Dockerfiles work with both)."""
    for candidate in (
        str(Path(dockerd).parent / "docker"),
        "/usr/bin/docker",
        shutil.which("docker"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            version = _run(candidate, "--version", check=False).stdout
            major = re.search(r"version (\d+)\.", version)
            has_buildx = _run(candidate, "buildx", "version", check=False).returncode == 0
            old = major is not None and int(major.group(1)) < 23
            return candidate, "1" if has_buildx or old else "0"
    raise DockerdError(
        f"no docker CLI found next to {dockerd} or on PATH: apt-get install docker.io"
    )


def ping(sock: Path, timeout: float = 2) -> bool:
    """True when the daemon on this socket answers GET /_ping with 200."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in s.recv(256).split(b"\r\n", 1)[0] + b" "
    except OSError:
        return False


# --------------------------------------------------------------------------- start


def _preflight(state: Path, cfg: dict) -> None:
    if os.geteuid() != 0:
        raise DockerdError("needs root (bridge, iptables, mounts)")
    for tool in ("dockerd", "iptables", "ip", "containerd", "runc"):
        _need(tool)
    if len(str(state / "exec" / "containerd" / "containerd.sock.ttrpc")) > MAX_SOCKET_PATH:
        raise DockerdError(
            f"state dir {state} is too deep for unix socket paths: use a shorter one"
        )
    for table in ("filter", "nat"):
        chains = [c for c in _iptables("-t", table, "-S").stdout.split() if c.startswith("DOCKER")]
        if chains:
            raise DockerdError(
                f"iptables chain {chains[0]} exists in table {table}: another dockerd manages "
                "iptables here (or a run was not stopped: `python scripts/dockerd.py stop DIR`)"
            )
    names = {link["ifname"] for link in _links()}
    if cfg["bridge"] in names:
        raise DockerdError(f"network link {cfg['bridge']} exists already: a run was not stopped")
    ours = _networks(cfg)
    for route in json.loads(_run("ip", "-j", "route", "show").stdout or "[]"):
        dst = route.get("dst", "default")
        if dst != "default" and any(ipaddress.ip_network(dst).overlaps(n) for n in ours):
            raise DockerdError(
                f"route {dst} on {route.get('dev')} overlaps {ours}: pick other ranges"
            )


def _lock(state: Path) -> int:
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = Path(LOCK).read_text().strip()
        os.close(fd)
        raise DockerdError(f"another private dockerd runs ({holder}): stop it first") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"state dir {state}\n".encode())
    return fd


def _nft_tables() -> list[str] | None:
    """`ip mangle`, `ip nat`, ... as nft sees them; None when iptables is not the nft variant."""
    nft = shutil.which("nft", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if nft is None or "nf_tables" not in _iptables("-V").stdout:
        return None
    lines = _run(nft, "list", "tables").stdout.splitlines()
    return sorted(line.removeprefix("table ").strip() for line in lines if line.startswith("table"))


def _remove_empty_nft_tables(cfg: dict) -> None:
    """iptables-nft creates `ip filter|nat|mangle` on first use: drop those we caused, if empty."""
    before = cfg.get("nft_tables")
    now = _nft_tables()
    if before is None or now is None:
        return
    for table in sorted(set(now) - set(before)):
        family, _, name = table.partition(" ")
        if family == "ip" and name in {"filter", "nat", "mangle"}:
            rules = [
                w for w in _iptables("-t", name, "-S").stdout.split("\n") if w.startswith("-A")
            ]
            if not rules:
                _run(_need("nft"), "delete", "table", "ip", name, check=False)


def _add_guards(cfg: dict) -> None:
    for iface in cfg["outward"]:
        for net in _networks(cfg):
            for flag in ("-s", "-d"):
                rule = ["POSTROUTING", "-o", iface, flag, str(net), "-m", "comment",
                        "--comment", GUARD_COMMENT, "-j", "DROP"]  # fmt: skip
                _iptables("-t", "mangle", "-I", *rule)
                cfg["guards"].append(rule)
                _save(cfg)


def _save(cfg: dict) -> None:
    path = Path(cfg["state"]) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cfg, indent=2) + "\n")
    tmp.replace(path)


def exports(cfg: dict) -> dict[str, str]:
    state = Path(cfg["state"])
    return {
        "DOCKER_HOST": f"unix://{state / 'docker.sock'}",
        "DOCKER": cfg["docker"],
        "DOCKER_BUILDKIT": cfg["buildkit"],
        "DOCKER_CONFIG": str(state / "client"),
        "DOCKERD_PID": str(cfg["pid"]),
    }


def start(
    state_dir: Path | str, bridge: str = BRIDGE, bridge_cidr: str = BRIDGE_CIDR, pool: str = POOL
) -> dict[str, str]:
    """Start the daemon (see the module docstring); returns the variables `start` prints."""
    state = Path(state_dir).resolve()
    cfg = {"state": str(state), "bridge": bridge, "bridge_cidr": bridge_cidr, "pool": pool,
           "guards": [], "pid": 0, "outward": []}  # fmt: skip
    _preflight(state, cfg)
    dockerd = _need("dockerd")
    cfg["docker"], cfg["buildkit"] = _docker_cli(dockerd)
    lock_fd = _lock(state)
    try:
        for sub in ("client", "data", "exec"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        (state / "client" / "config.json").write_text("{}\n")  # not ~/.docker: no helpers, contexts
        # not /etc/docker/daemon.json; the daemon's ID key in STATE_DIR, not /etc/docker/key.json
        daemon_json = {"deprecated-key-path": str(state / "key.json")}
        (state / "daemon.json").write_text(json.dumps(daemon_json) + "\n")
        cfg["nft_tables"] = _nft_tables()
        cfg["outward"] = _outward_interfaces()
        _save(cfg)
        _run("ip", "link", "add", "name", bridge, "type", "bridge")
        _run("ip", "addr", "add", bridge_cidr, "dev", bridge)
        _run("ip", "link", "set", bridge, "up")
        _add_guards(cfg)
        args = [
            dockerd, "--config-file", str(state / "daemon.json"),
            "--host", exports(cfg)["DOCKER_HOST"], "--pidfile", str(state / "dockerd.pid"),
            "--data-root", str(state / "data"), "--exec-root", str(state / "exec"),
            "--bridge", bridge, "--iptables=true", "--ip-forward=false", "--ip6tables=false",
            "--default-address-pool", f"base={pool},size={POOL_SIZE}",
        ]  # fmt: skip
        with (state / "dockerd.log").open("ab") as log:
            # The lock travels with the daemon (and its containerd): held exactly while they live.
            process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=(lock_fd,), start_new_session=True,
            )  # fmt: skip
        cfg["pid"] = process.pid
        _save(cfg)
        deadline = time.monotonic() + START_TIMEOUT
        while not ping(state / "docker.sock"):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(_tail(state / "dockerd.log"))
                why = f"exited {process.returncode}" if process.poll() is not None else "timed out"
                raise DockerdError(f"dockerd {why} before answering; dockerd.log ends:\n{tail}")
            time.sleep(0.2)
    except BaseException:
        os.close(lock_fd)
        with contextlib.suppress(Exception):
            stop(state)
        raise
    os.close(lock_fd)
    return exports(cfg)


def _tail(path: Path, lines: int = 20) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return [f"(no {path})"]


# --------------------------------------------------------------------------- stop


def _docker(cfg: dict, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **exports(cfg)}
    return subprocess.run(
        [cfg["docker"], *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _bridge_names(cfg: dict) -> set[str]:
    """Our default bridge and every bridge carrying an address in our ranges (compose's br-*)."""
    ours = _networks(cfg)
    names = {cfg["bridge"]}
    for link in _links():
        for addr in link.get("addr_info", []):
            if addr.get("family") == "inet" and any(
                ipaddress.ip_address(addr["local"]) in n for n in ours
            ):
                names.add(link["ifname"])
    return names


def _remove_workloads(cfg: dict) -> set[str]:
    """Containers and user-defined networks, through the daemon itself; returns their bridges."""
    bridges = _bridge_names(cfg)
    if not cfg.get("pid") or not ping(Path(cfg["state"]) / "docker.sock"):
        return bridges
    ids = _docker(cfg, "ps", "-aq").stdout.split()
    if ids:
        _docker(cfg, "rm", "-f", *ids)
    for net in _docker(cfg, "network", "ls", "-q", "--filter", "type=custom").stdout.split():
        bridges.add(f"br-{net[:12]}")
    _docker(cfg, "network", "prune", "-f")
    return bridges


def _terminate(state: Path, cfg: dict) -> None:
    pid = int(cfg.get("pid") or 0)
    if pid and _alive(pid) and str(state) in _cmdline(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(pid) and str(state) in _cmdline(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid) and str(state) in _cmdline(pid):
            print(f"dockerd (pid {pid}) did not stop in {STOP_TIMEOUT}s: SIGKILL", file=sys.stderr)
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # only when we are its parent (library use)
        os.waitpid(pid, os.WNOHANG)
    # an orphaned containerd or shim: named by our state dir in its command line
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = _our_processes(state)
        for other in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(other, sig)
        for _ in range(50):
            if not any(_alive(p) for p in left):
                break
            time.sleep(0.1)


def _is_ours(rule: list[str], cfg: dict, bridges: set[str]) -> bool:
    ours = _networks(cfg)
    for flag, value in itertools.pairwise(rule):
        if flag == "-j" and value.startswith("DOCKER"):
            return True
        if flag in {"-i", "-o"} and value in bridges:
            return True
        if flag in {"-s", "-d"} and any(
            ipaddress.ip_network(value, strict=False).overlaps(n) for n in ours
        ):
            return True
        if flag == "--comment" and value == GUARD_COMMENT:
            return True
    return False


def _remove_iptables(cfg: dict, bridges: set[str]) -> None:
    for table in ("mangle", "nat", "filter"):
        lines = [shlex.split(line) for line in _iptables("-t", table, "-S").stdout.splitlines()]
        chains = [words[1] for words in lines if words[0] == "-N" and words[1].startswith("DOCKER")]
        for words in lines:
            if (
                words[0] == "-A"
                and not words[1].startswith("DOCKER")
                and _is_ours(words[1:], cfg, bridges)
            ):
                _iptables("-t", table, "-D", *words[1:], check=False)
        for chain in chains:
            _iptables("-t", table, "-F", chain, check=False)
        for chain in chains:
            _iptables("-t", table, "-X", chain, check=False)


def _remove_links(bridges: set[str]) -> None:
    present = {link["ifname"] for link in _links()}
    for bridge in sorted(bridges & present):
        ports = json.loads(
            _run("ip", "-j", "link", "show", "master", bridge, check=False).stdout or "[]"
        )
        for port in ports:
            _run("ip", "link", "delete", port["ifname"], check=False)
        _run("ip", "link", "delete", bridge, check=False)


def leftovers(state: Path, cfg: dict, bridges: set[str]) -> list[str]:
    """What a stop left behind: processes, links, iptables lines and mounts that are ours."""
    found = [f"process {p}: {_cmdline(p)[:80]}" for p in _our_processes(state)]
    found += [f"link {name}" for name in sorted(bridges & {link["ifname"] for link in _links()})]
    for table in ("mangle", "nat", "filter"):
        for line in _iptables("-t", table, "-S").stdout.splitlines():
            words = shlex.split(line)
            if any(w.startswith("DOCKER") for w in words) or _is_ours(words[1:], cfg, bridges):
                found.append(f"iptables -t {table} {line}")
    found += [f"mount {m}" for m in _mounts_under(state)]
    return found


def stop(state_dir: Path | str) -> list[str]:
    """Stop the daemon of STATE_DIR, remove what it created; return what could not be removed."""
    state = Path(state_dir).resolve()
    path = state / STATE_FILE
    if not path.exists():
        return []  # never started (or already stopped)
    cfg = json.loads(path.read_text())
    bridges = _remove_workloads(cfg)
    _terminate(state, cfg)
    bridges |= _bridge_names(cfg)
    _remove_iptables(cfg, bridges)
    _remove_links(bridges)
    _remove_empty_nft_tables(cfg)
    for point in _mounts_under(state):
        _run("umount", "-l", point, check=False)
    left = leftovers(state, cfg, bridges)
    if not left:
        path.rename(state / f"{STATE_FILE}.stopped")
    return left


# --------------------------------------------------------------------------- CLI


def _cli_stop(state: Path) -> int:
    if not (state / STATE_FILE).exists():
        print(f"no dockerd of this helper in {state}: nothing to stop", file=sys.stderr)
        return 0
    started = time.monotonic()
    left = stop(state)
    took = f"{time.monotonic() - started:.1f}s"
    if left:
        print(f"dockerd in {state} stopped in {took}, but left behind:", file=sys.stderr)
        for item in left:
            print(f"  {item}", file=sys.stderr)
        return 1
    print(
        f"dockerd in {state} stopped in {took}; no bridge, iptables rule or mount left",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dockerd.py", description="a private dockerd")
    parser.add_argument("command", choices=["start", "stop", "env"])
    parser.add_argument("state_dir", nargs="?", type=Path, help="the folder of all its state")
    parser.add_argument("--state", type=Path, help="the same, as an option")
    args = parser.parse_args(argv)
    if (args.state_dir is None) == (args.state is None):
        parser.error("name the state folder once: STATE_DIR or --state STATE_DIR")
    command, state = args.command, (args.state_dir or args.state).resolve()
    try:
        if command == "start":
            started = time.monotonic()
            variables = start(state)
            print(
                f"dockerd: pid {variables['DOCKERD_PID']} on {variables['DOCKER_HOST']}, bridge "
                f"{BRIDGE} {BRIDGE_CIDR}, networks from {POOL}, ready in "
                f"{time.monotonic() - started:.1f}s",
                file=sys.stderr,
            )
        elif command == "env":
            path = state / STATE_FILE
            if not path.exists():
                raise DockerdError(f"no running dockerd of this helper in {state}")
            variables = exports(json.loads(path.read_text()))
        else:
            return _cli_stop(state)
    except DockerdError as exc:
        print(f"dockerd.py {command}: {exc}", file=sys.stderr)
        return 1
    for key, value in variables.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
