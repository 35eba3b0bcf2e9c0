"""Local stand-ins for images no registry can give us here: python:3.12-slim and mysql:8.4.

The base stand-in replaces python:3.12-slim: a debootstrapped Debian bookworm root (minbase +
python3, venv, pip, ca-certificates) that trusts this machine's local CA additions
(/usr/local/share/ca-certificates, e.g. a TLS-intercepting proxy's) and carries its network pip
settings (extra index, trusted hosts, timeout) in /etc/pip.conf, so the project's Dockerfiles stay
free of environment fixes. It is cached as a tarball in /var/cache/users-service-standin/
(STANDIN_CACHE_DIR) named by a key: a hash of the recipe version, suite, mirror, packages, those
pip settings and the CA files. Inputs changed: a new key, a new build, the old tarball is deleted.

The mysql stand-in (images/mysql-standin) replaces mysql:8.4 and is built on the base stand-in
from Debian's MariaDB 10.11 (it is not MySQL); see images/mysql-standin/Dockerfile.

  python scripts/standin_base.py key              print the base key
  python scripts/standin_base.py build            build the base tarball if missing; print its path
  python scripts/standin_base.py import [--tag T] build if needed, `docker import` it as
                                                  users-service-standin:KEY (plus each --tag, e.g.
                                                  python:3.12-slim); print that image
  python scripts/standin_base.py pip-index-url    the network index URL to pass as the Dockerfile's
                                                  PIP_INDEX_URL build arg (empty: pip's default)
  python scripts/standin_base.py mysql [--save F] import the base, build the mysql stand-in as
                                                  users-service/mysql-standin:KEY and mysql:8.4
                                                  (cached as a `docker save` tarball next to the
                                                  base); print its tag; --save also writes that
                                                  tarball to F (e.g. for `ctr images import`)

The docker commands use $DOCKER (default `docker`) and the caller's DOCKER_HOST, e.g. the private
daemon of scripts/dockerd.py. Builds run with --network host (apt and pip need the mirrors).
Needs root and debootstrap for `build`. Progress and timings go to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import fcntl
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITE = "bookworm"
PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
RECIPE_VERSION = 1  # bump when the recipe below changes
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CA_DIR = Path("/usr/local/share/ca-certificates")
IMAGE_REPO = "users-service-standin"
MYSQL_DIR = REPO / "images" / "mysql-standin"
MYSQL_REPO = "users-service/mysql-standin"
MYSQL_TAG = "mysql:8.4"
IMPORT_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)
PIP_FILES = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "~/.pip/pip.conf", "~/.config/pip/pip.conf")
PIP_ENV = {
    "index-url": ["PIP_INDEX_URL"],
    "extra-index-url": ["PIP_EXTRA_INDEX_URL"],
    "trusted-host": ["PIP_TRUSTED_HOST"],
    "timeout": ["PIP_DEFAULT_TIMEOUT", "PIP_TIMEOUT"],
}


class StandinError(RuntimeError):
    """A one-line reason the stand-in could not be made."""


def log(message: str) -> None:
    print(f"standin: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    return Path(os.environ.get("STANDIN_CACHE_DIR") or "/var/cache/users-service-standin")


# --------------------------------------------------------------------------- key inputs


def _sources_stanzas() -> Iterator[dict[str, list[str]]]:
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", Path(path).read_text()):
            fields: dict[str, list[str]] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ", "\t")):
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.split()
            yield fields


def detect_mirror(suite: str = SUITE) -> str:
    """The machine's Debian mirror for `suite` main (deb822 sources first, then one-line lists)."""
    for f in _sources_stanzas():
        if (
            "deb" in f.get("types", [])
            and suite in f.get("suites", [])
            and f.get("enabled", ["yes"])[0] != "no"
            and "main" in f.get("components", [])
        ):
            return f["uris"][0]
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            w = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(w) >= 4 and w[0] == "deb" and w[2] == suite and "main" in w[3:]:
                return w[1]
    return DEFAULT_MIRROR


def pip_settings() -> dict[str, str]:
    """Network pip settings of this machine (config files, then PIP_* variables): index-url,
    extra-index-url, trusted-host, timeout. Local file:// indexes, find-links and constraint
    files do not exist inside a build, so they are left out."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read([p for p in map(os.path.expanduser, PIP_FILES) if os.path.isfile(p)])
    val = {
        k: parser.get(s, k)
        for s in ("global", "install")
        if parser.has_section(s)
        for k in parser[s]
    }
    val.setdefault("timeout", val.get("default-timeout", ""))
    for key, names in PIP_ENV.items():
        for name in names:
            if os.environ.get(name):
                val[key] = os.environ[name]

    def net(value: str) -> list[str]:
        return [u for u in value.split() if u.startswith(("http://", "https://"))]

    return {
        "index-url": " ".join(net(val.get("index-url", ""))[:1]),
        "extra-index-url": " ".join(net(val.get("extra-index-url", ""))),
        "trusted-host": " ".join(val.get("trusted-host", "").split()),
        "timeout": val.get("timeout", "").strip(),
    }


def ca_files() -> list[Path]:
    return sorted(p for p in CA_DIR.rglob("*.crt") if p.is_file()) if CA_DIR.is_dir() else []


def mirror() -> str:
    return os.environ.get("STANDIN_MIRROR") or detect_mirror()


def key() -> str:
    """16 hex digits of sha256 over every input of the base (the same bytes the shell recipe
    of earlier versions hashed, so existing caches stay valid)."""
    pip = pip_settings()
    text = (
        f"recipe={RECIPE_VERSION} suite={SUITE} mirror={mirror()}\n"
        f"packages={PACKAGES} extra={pip['extra-index-url']} trusted={pip['trusted-host']} "
        f"timeout={pip['timeout']}\n"
    ).encode()
    digest = hashlib.sha256(text)
    for ca in ca_files():
        digest.update(ca.read_bytes())
    return digest.hexdigest()[:16]


def tarball() -> Path:
    return cache_dir() / f"standin-{key()}.tar"


def image() -> str:
    return f"{IMAGE_REPO}:{key()}"


# --------------------------------------------------------------------------- build


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    """One builder at a time per cache dir (a second one waits, then finds the tarball)."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _run_logged(cmd: list[str], logfile: Path) -> None:
    with logfile.open("ab") as out:
        code = subprocess.run(cmd, stdout=out, stderr=out, check=False).returncode
    if code != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-30:])
        raise StandinError(f"{cmd[0]} exited {code}; {logfile} ends:\n{tail}")


def _unmount_under(root: Path) -> None:
    """debootstrap mounts /proc and /sys in the target and may leave them on failure."""
    prefix = f"{root}/"
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def _write_pip_conf(root: Path) -> None:
    pip = pip_settings()
    lines = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt"]
    for name in ("extra-index-url", "trusted-host", "timeout"):
        if pip[name]:
            lines.append(f"{name} = {pip[name]}")
    (root / "etc" / "pip.conf").write_text("\n".join(lines) + "\n")


def _make_root(root: Path, logfile: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise StandinError("debootstrap not found: apt-get install debootstrap")
    source = mirror()
    log(f"debootstrap {SUITE} from {source} (a few minutes)")
    _run_logged(
        ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(root), source],
        logfile,
    )
    # This machine's local CAs, trusted by the system store (and pip, via pip.conf's cert).
    for ca in ca_files():
        target = root / "usr/local/share/ca-certificates" / ca.relative_to(CA_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ca, target)
        target.chmod(0o644)
    _run_logged(["chroot", str(root), "update-ca-certificates"], logfile)
    _write_pip_conf(root)
    for pattern in ("var/cache/apt/*.bin", "var/cache/apt/archives/*.deb", "var/lib/apt/lists/*",
                    "usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "var/log/*.log",
                    "var/log/apt/*"):  # fmt: skip
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def build(workdir: Path | None = None) -> Path:
    """The base tarball, built unless the cache has it. Returns its path."""
    target = tarball()
    if target.exists() and target.stat().st_size:
        return target
    with _cache_lock():
        if target.exists() and target.stat().st_size:
            return target
        if os.geteuid() != 0:
            raise StandinError("building the stand-in base needs root (debootstrap, chroot)")
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="users-service-standin.", dir=workdir))
        root, logfile = work / "root", work / "debootstrap.log"
        try:
            _make_root(root, logfile)
            partial = target.with_name(f"{target.name}.tmp.{os.getpid()}")
            subprocess.run(
                ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], check=True
            )
            # keep only the current key: inputs changed, the old stand-in is dead weight
            for old in cache_dir().glob("standin-*.tar"):
                if old.name != target.name:
                    old.unlink()
            partial.replace(target)
        finally:
            _unmount_under(root)
            shutil.rmtree(work, ignore_errors=True)
        log(f"built {target} in {time.monotonic() - started:.0f}s")
    return target


# --------------------------------------------------------------------------- docker


def docker(*args: str, capture: bool = True) -> subprocess.CompletedProcess[str]:
    cli = os.environ.get("DOCKER") or "docker"
    if shutil.which(cli) is None:
        raise StandinError(f"docker CLI {cli!r} not found: set DOCKER or apt-get install docker.io")
    result = subprocess.run(
        [cli, *args], capture_output=capture, text=True, check=False, timeout=1800
    )
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-40:] if capture else []
        raise StandinError(f"docker {' '.join(args[:2])} failed: " + "\n".join(detail))
    return result


def has_image(ref: str) -> bool:
    cli = os.environ.get("DOCKER") or "docker"
    probe = subprocess.run([cli, "image", "inspect", ref], capture_output=True, check=False)
    return probe.returncode == 0


def import_base(tags: Sequence[str] = ()) -> str:
    """Build if needed, import into the daemon as users-service-standin:KEY, add `tags`."""
    ref = image()
    if not has_image(ref):
        path = build()
        changes = [arg for change in IMPORT_CHANGES for arg in ("--change", change)]
        docker("import", *changes, str(path), ref)
    for tag in tags:
        docker("tag", ref, tag)
    return ref


def mysql_key() -> str:
    """Base key + every file of images/mysql-standin but its README: a change makes a new image."""
    digest = hashlib.sha256(key().encode())
    for path in sorted(p for p in MYSQL_DIR.rglob("*") if p.is_file() and p.suffix != ".md"):
        digest.update(f"\0{path.relative_to(MYSQL_DIR)}\0".encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def build_mysql(save: Path | None = None) -> str:
    """The mysql stand-in in the daemon, tagged users-service/mysql-standin:KEY and mysql:8.4;
    loaded from the cache's `docker save` tarball when there is one. Returns the first tag."""
    ref = f"{MYSQL_REPO}:{mysql_key()}"
    cached = cache_dir() / f"mysql-standin-{mysql_key()}.tar"
    if has_image(ref):
        log(f"{ref} is in the daemon already")
    elif cached.exists() and cached.stat().st_size:
        docker("load", "-i", str(cached))
        log(f"loaded {ref} from {cached}")
    if not has_image(ref):
        base = import_base()
        started = time.monotonic()
        log(f"building {ref} from Debian's mariadb-server on {base}")
        # its output is shown only on failure
        progress = ["--progress", "plain"] if os.environ.get("DOCKER_BUILDKIT") == "1" else []
        args = ["--network", "host", *progress, "--build-arg", f"BASE_IMAGE={base}"]
        docker("build", *args, "--tag", ref, str(MYSQL_DIR))
        log(f"built {ref} in {time.monotonic() - started:.0f}s")
        docker("tag", ref, MYSQL_TAG)
        with _cache_lock():
            partial = cached.with_name(f"{cached.name}.tmp.{os.getpid()}")
            docker("save", "-o", str(partial), ref, MYSQL_TAG)
            partial.chmod(0o644)  # like the base tarball: nothing secret in it
            for old in cache_dir().glob("mysql-standin-*.tar"):
                if old.name != cached.name:
                    old.unlink()
            partial.replace(cached)
    docker("tag", ref, MYSQL_TAG)
    if save is not None:
        docker("save", "-o", str(save), ref, MYSQL_TAG)
        log(f"wrote {save} ({ref}, {MYSQL_TAG})")
    return ref


# --------------------------------------------------------------------------- CLI


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="standin_base.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("key", help="print the base key")
    sub.add_parser("build", help="build the base tarball if missing; print its path")
    imp = sub.add_parser("import", help="import the base into $DOCKER_HOST; print the image")
    imp.add_argument("--tag", action="append", default=[], help="extra tag, e.g. python:3.12-slim")
    sub.add_parser("pip-index-url", help="the PIP_INDEX_URL build arg (may be empty)")
    mysql = sub.add_parser("mysql", help="build the mysql:8.4 stand-in; print its tag")
    mysql.add_argument("--save", type=Path, help="also write a `docker save` tarball here")
    args = parser.parse_args(argv)
    try:
        if args.command == "key":
            print(key())
        elif args.command == "build":
            print(build())
        elif args.command == "import":
            print(import_base(args.tag))
        elif args.command == "pip-index-url":
            print(pip_settings()["index-url"])
        else:
            print(build_mysql(args.save))
    except StandinError as exc:
        print(f"standin_base.py {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
