#!/usr/bin/env python3
"""Build, from source and cached, every binary and image the local cluster runs.

    python k8s-dev/cluster/build.py all               everything (seconds when all is cached)
    python k8s-dev/cluster/build.py build NAME...     only these components
    python k8s-dev/cluster/build.py path NAME         the folder, binary or image tarball
    python k8s-dev/cluster/build.py list              every component, its version and state
    python k8s-dev/cluster/build.py adopt kubernetes DIR
                                                      take a folder of Kubernetes binaries
                                                      built by this recipe elsewhere

Nothing can be downloaded prebuilt here, so each program is built from its Go module (pins in
versions.py) and each in-cluster image is written directly as a tarball (oci.py). Results
live outside the checkout in $CLUSTER_CACHE_DIR (/var/cache/users-service-cluster), one
folder per component named by version and recipe number; a folder exists only once complete
(built in .tmp/, then renamed), so a second run does nothing. Go builds are CPU-bound on a
2-core machine, so build.py runs one at a time: it takes a lock, and it waits for any other
`go build` on the machine rather than competing with it.

Exit codes: 0 done, 1 a build or lookup failed, 2 a prerequisite is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import oci  # noqa: E402
import versions  # noqa: E402

CACHE = Path(os.environ.get("CLUSTER_CACHE_DIR", "/var/cache/users-service-cluster"))
PAUSE_SOURCE = HERE / "pause"
BUSYBOX_PACKAGE = "busybox-static"
WAIT_POLL_SECONDS = 15


class BuildError(Exception):
    """A failed step; `code` 2 means a missing prerequisite rather than a broken build."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- keys and paths


def safe(text: str) -> str:
    """`text` usable as an image tag and a folder name: a Debian version like
    1:1.35.0-4+deb12u1 loses its epoch and its '+' ([A-Za-z0-9_.-] only)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text.split(":", 1)[-1])


def tree_digest(folder: Path) -> str:
    """A short digest of the files in `folder`: the in-repo pause source is part of its key."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def debian_version(package: str) -> str:
    """The installed version of a Debian package, or "" when it is not installed."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Version}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    status, _, version = out.stdout.partition(" ")
    return version.strip() if out.returncode == 0 and status.startswith("ii") else ""


def version_of(c: versions.Component) -> str:
    """The pinned version, or for busybox the installed Debian package's ("" if none)."""
    return c.version or debian_version(BUSYBOX_PACKAGE)


def cache_key(c: versions.Component, version: str) -> str:
    """Folder name for a build of `c` at `version`: changes with the version and the recipe,
    and for pause with its source, so a stale result is never picked up."""
    key = f"{c.name}-{safe(version)}-r{c.recipe}"
    if c.name == "pause":
        key += "-" + tree_digest(PAUSE_SOURCE)
    return key


def component_dir(c: versions.Component, version: str | None = None) -> Path:
    return CACHE / cache_key(c, version_of(c) if version is None else version)


def artifact(c: versions.Component, folder: Path) -> Path:
    """What `path` prints: the binaries' folder, the one binary or the image tarball."""
    if c.kind == "binaries":
        return folder / "bin"
    if c.kind == "binary":
        return folder / "bin" / c.binaries[0]
    return folder / "image.tar"


def built_path(c: versions.Component) -> Path | None:
    """The artifact if a complete build of the current pins is cached, else None."""
    version = version_of(c)
    if not version:
        return None
    folder = component_dir(c, version)
    path = artifact(c, folder)
    return path if (folder / "BUILD.json").is_file() and path.exists() else None


def image_reference(c: versions.Component, version: str) -> str:
    return f"{versions.IMAGE_REPOSITORY}/{c.name}:{safe(version)}"


# --------------------------------------------------------------------------- prerequisites


def check_platform() -> None:
    """Every pin is built for linux/amd64 and the images say so: refuse anything else."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise BuildError(f"needs Linux x86-64 (this is {sys.platform} {platform.machine()})", 2)


def minimum_go() -> str:
    return ".".join(map(str, versions.GO_MINIMUM))


def go_version() -> tuple[int, int, int]:
    """The `go` on PATH as (major, minor, patch); BuildError(2) if absent or unparsable."""
    if not shutil.which("go"):
        raise BuildError(f"'go' is not on PATH (Go >= {minimum_go()} is needed)", 2)
    out = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=False)
    match = re.match(r"go(\d+)\.(\d+)(?:\.(\d+))?", out.stdout.strip())
    if out.returncode != 0 or not match:
        raise BuildError(
            f"cannot tell the Go version ({out.stdout.strip() or out.stderr.strip()})", 2
        )
    return int(match[1]), int(match[2]), int(match[3] or 0)


def check_go() -> str:
    found = go_version()
    if found[:2] < versions.GO_MINIMUM:
        need = minimum_go()
        raise BuildError(
            f"Go {'.'.join(map(str, found))} is older than the Go {need} the pins need", 2
        )
    return "go" + ".".join(map(str, found))


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a PT_INTERP header: it runs in a FROM-scratch image
    and on any host, with no libc or loader. (Reads the program headers; no `file` needed.)"""
    with path.open("rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
            return False
        (phoff,) = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    types = [struct.unpack_from("<I", table, i * phentsize)[0] for i in range(phnum)]
    return 3 not in types  # PT_INTERP


# --------------------------------------------------------------------------- running things


def run(argv: list[str], cwd: Path | None = None, env: dict | None = None) -> str:
    """Run a command, returning its stdout; on failure raise with the end of its stderr."""
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip()[-3000:]
        raise BuildError(f"{' '.join(argv)[:300]} failed ({out.returncode}):\n{tail}")
    return out.stdout


def go_env() -> dict[str, str]:
    """Static linux/amd64 builds with the local toolchain only (never a toolchain download)."""
    env = dict(os.environ)
    env.update(
        CGO_ENABLED="0",
        GOOS="linux",
        GOARCH="amd64",
        GOTOOLCHAIN="local",
        GOWORK="off",
        GOFLAGS="-mod=mod -buildvcs=false",
    )
    return env


def other_go_builds() -> list[int]:
    """PIDs of `go build`/`go install` processes on this machine (another engineer's or a
    second build.py's): two at once on 2 cores would only make both slower."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        is_go = len(argv) > 1 and Path(argv[0].decode(errors="replace")).name == "go"
        if is_go and argv[1] in (b"build", b"install"):
            found.append(int(proc.name))
    return found


def wait_for_other_go_builds() -> None:
    announced = False
    while pids := other_go_builds():
        if not announced:
            log(f"  waiting for another go build to finish (pid {', '.join(map(str, pids))})")
            announced = True
        time.sleep(WAIT_POLL_SECONDS)


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """One build.py at a time per cache, so two never build the same folder or compete."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("waiting for another build.py (lock held on the cache)")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class Steps:
    """Times each step of one component's build and prints it as it finishes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.seconds[what] = round(time.monotonic() - started, 1)
        log(f"  [{self.name}] {what}: {self.seconds[what]:.1f}s")


# --------------------------------------------------------------------------- Go builds


def download_module(c: versions.Component, version: str) -> Path:
    """The module's source in the Go module cache (read-only), downloaded if missing."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{c.module}@{version}"],
        capture_output=True,
        text=True,
        env=go_env(),
        check=False,
    )
    info = json.loads(out.stdout or "{}") if out.stdout.strip().startswith("{") else {}
    if out.returncode != 0 or "Dir" not in info:
        raise BuildError(f"{c.module}@{version}: {info.get('Error') or out.stderr.strip()}")
    return Path(info["Dir"])


def writable_copy(source: Path, dest: Path) -> Path:
    """A writable copy of a module: one with replace lines (or edits) is built as the main
    module, which `go install pkg@version` refuses, and the module cache is read-only."""
    shutil.copytree(source, dest, symlinks=True)
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            path = Path(root, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)
    dest.chmod(dest.stat().st_mode | 0o200)
    return dest


def patch_kubernetes(src: Path) -> None:
    """Build k8s.io/kubernetes as a module outside its repo: its go.mod points the k8s.io/*
    staging modules at ./staging, and the published module zip's staging copies are the same
    code as the released v0.x.y modules, so require those instead; drop vendor/ and go.work
    so the module graph, not a stale vendor tree, decides."""
    for name in ("vendor", "go.work", "go.work.sum"):
        path = src / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    mod = json.loads(run(["go", "mod", "edit", "-json"], cwd=src, env=go_env()))
    edits = []
    for replace in mod.get("Replace") or []:
        old, new = replace["Old"]["Path"], replace["New"]["Path"]
        if new.startswith("./staging/src/"):
            edits += [f"-dropreplace={old}", f"-require={old}@{versions.KUBERNETES_STAGING}"]
    run(["go", "mod", "edit", *edits], cwd=src, env=go_env())
    drops = [f"-droprequire={m}" for m in versions.KUBERNETES_UNUSED_STAGING]
    run(["go", "mod", "edit", *drops], cwd=src, env=go_env())
    run(["go", "mod", "download"], cwd=src, env=go_env())


def go_build(c: versions.Component, src: Path, out: Path) -> list[Path]:
    """`go build` the component's packages into `out`; returns the binaries in order."""
    out.mkdir(parents=True, exist_ok=True)
    ldflags = " ".join(("-s", "-w", *c.ldflags))
    argv = ["go", "build", "-trimpath", "-ldflags", ldflags]
    if c.tags:
        argv += ["-tags", ",".join(c.tags)]
    target = f"{out}/" if len(c.packages) > 1 else str(out / c.binaries[0])
    wait_for_other_go_builds()
    run([*argv, "-o", target, *c.packages], cwd=src, env=go_env())
    return [out / name for name in c.binaries]


def check_binary(c: versions.Component, binary: Path, version: str) -> str:
    """A built binary must be static and say the pinned version: the link flags took."""
    if not is_static_elf(binary):
        raise BuildError(f"{binary} is not a static ELF executable")
    argv = versions.KUBERNETES_VERSION_CHECKS.get(binary.name, c.version_check)
    if not argv:
        return ""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(binary.parent),
        "KUBECONFIG": "/dev/null",
        "SKAFFOLD_UPDATE_CHECK": "false",
    }
    out = subprocess.run(
        [str(binary), *argv], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    said = (out.stdout + out.stderr).strip()
    if version.removeprefix("v") not in said:
        raise BuildError(f"{binary.name} {' '.join(argv)} does not report {version}: {said[:300]}")
    return said.splitlines()[0] if said else ""


# --------------------------------------------------------------------------- images


def labels(c: versions.Component, version: str) -> dict[str, str]:
    """OCI labels that say where the image came from: built here, not pulled."""
    if c.module:
        source, origin = c.module, f"the Go module {c.module}@{version}"
    elif c.name == "busybox":
        source, origin = f"debian:{BUSYBOX_PACKAGE}", f"Debian's {BUSYBOX_PACKAGE} {version}"
    else:
        source, origin = "k8s-dev/cluster/pause", "this repository's k8s-dev/cluster/pause"
    return {
        "org.opencontainers.image.title": c.name,
        "org.opencontainers.image.source": source,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.description": f"{c.description}; built locally by "
        f"k8s-dev/cluster/build.py (recipe {c.recipe}) from {origin}",
    }


def image_entries(c: versions.Component, binary: Path) -> list[oci.Entry]:
    """The layer's files: the binary where the image spec puts it, and the /etc basics."""
    spec = c.image
    assert spec is not None
    xattrs = ()
    if spec.capabilities:
        xattrs = (("security.capability", oci.file_capabilities(spec.capabilities)),)
    entries = [oci.Entry(spec.binary_path, source=binary, mode=0o755, xattrs=xattrs)]
    if c.name == "busybox":
        entries += busybox_applets(binary, spec.binary_path)
    if c.name != "pause":  # pause runs as a bare uid and writes nothing
        entries += oci.base_files()
    return entries


def busybox_applets(binary: Path, inside: str) -> list[oci.Entry]:
    """A symlink to /bin/busybox for every applet it lists (sh, mkdir, rm, chmod, ...)."""
    listed = run([str(binary), "--list-full"]).split()
    return [
        oci.Entry(p, kind="symlink", target="/" + inside, mode=0o777)
        for p in listed
        if p.strip("/") != inside
    ]


def write_component_image(c: versions.Component, version: str, binary: Path, out: Path) -> dict:
    spec = c.image
    assert spec is not None
    entrypoint = ("/" + spec.binary_path,) if c.name != "busybox" else ()
    image = oci.ImageSpec(
        name=f"{versions.IMAGE_REPOSITORY}/{c.name}",
        tag=safe(version),
        entrypoint=entrypoint,
        cmd=("sh",) if c.name == "busybox" else (),
        user=spec.user,
        ports=spec.ports,
        labels=labels(c, version),
        created=versions.SOURCE_DATE,
        mtime=versions.SOURCE_DATE_EPOCH,
        created_by=f"k8s-dev/cluster/build.py {c.name} recipe {c.recipe}",
    )
    written = oci.write_image(image, image_entries(c, binary), out)
    oci.verify(out)
    return {
        "reference": written.reference,
        "manifest": written.manifest_digest,
        "config": written.config_digest,
        "layer": written.layer_digest,
    }


# --------------------------------------------------------------------------- one component


def busybox_binary() -> Path:
    """/bin/busybox from busybox-static (installed if missing: apt, never removing anything)."""
    if not debian_version(BUSYBOX_PACKAGE):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise BuildError(
                f"{BUSYBOX_PACKAGE} is not installed: apt-get install {BUSYBOX_PACKAGE}", 2
            )
        log(f"  installing Debian's {BUSYBOX_PACKAGE}")
        install = ["apt-get", "install", "-y", "-q", "--no-remove", BUSYBOX_PACKAGE]
        if subprocess.run(install, check=False, capture_output=True).returncode != 0:
            run(["apt-get", "update", "-q"])
            run(install)
    listed = run(["dpkg-query", "-L", BUSYBOX_PACKAGE]).split()
    path = next((Path(p) for p in listed if p.endswith("/bin/busybox")), None)
    if path is None or not path.is_file():
        raise BuildError(f"{BUSYBOX_PACKAGE} has no bin/busybox", 2)
    return path


def produce(c: versions.Component, version: str, work: Path, out: Path, steps: Steps) -> dict:
    """Everything one component needs, built under `work`, results in `out`; returns facts
    for BUILD.json."""
    facts: dict = {}
    if c.name == "busybox":
        with steps.step("package"):
            binaries = [busybox_binary()]
            facts["package"] = f"{BUSYBOX_PACKAGE} {version}"
    else:
        facts["go"] = check_go()
        with steps.step("source"):
            if c.name == "pause":
                src = writable_copy(PAUSE_SOURCE, work / "src")
            else:
                src = writable_copy(download_module(c, version), work / "src")
            # a module zip keeps vendor/modules.txt but none of the vendored code
            shutil.rmtree(src / "vendor", ignore_errors=True)
            if c.name == "kubernetes":
                patch_kubernetes(src)
        with steps.step("go build"):
            binaries = go_build(c, src, (out if c.kind != "image" else work) / "bin")
        with steps.step("check"):
            facts["reports"] = {b.name: check_binary(c, b, version) for b in binaries}
    if c.kind == "image":
        with steps.step("image"):
            facts["image"] = write_component_image(c, version, binaries[0], out / "image.tar")
    return facts


def finish(c: versions.Component, version: str, out: Path, facts: dict, steps: Steps) -> None:
    """Write BUILD.json (what was built, how long each step took, sizes and digests)."""
    files = sorted(p for p in out.rglob("*") if p.is_file())
    record = {
        "component": c.name,
        "version": version,
        "recipe": c.recipe,
        "key": cache_key(c, version),
        "artifact": str(artifact(c, CACHE / cache_key(c, version)).relative_to(CACHE)),
        "seconds": steps.seconds,
        "total_seconds": round(sum(steps.seconds.values()), 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sizes": {str(p.relative_to(out)): p.stat().st_size for p in files},
        "sha256": {str(p.relative_to(out)): oci.sha256_file(p) for p in files},
        **facts,
    }
    (out / "BUILD.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def publish(c: versions.Component, version: str, out: Path) -> Path:
    """Rename the finished folder into place: readers see all of it or nothing."""
    final = CACHE / cache_key(c, version)
    if final.exists():
        shutil.rmtree(final)
    out.rename(final)
    prune(c, keep=final)
    return artifact(c, final)


def prune(c: versions.Component, keep: Path) -> None:
    """Drop this component's superseded builds (an older version or recipe): nothing looks
    them up any more, and Kubernetes' alone is half a gigabyte."""
    for folder in CACHE.iterdir():
        record = folder / "BUILD.json"
        if folder == keep or not record.is_file():
            continue
        with contextlib.suppress(ValueError, OSError):
            if json.loads(record.read_text()).get("component") == c.name:
                log(f"  [{c.name}] removing the superseded {folder.name}")
                shutil.rmtree(folder)


def scratch(c: versions.Component, version: str) -> tuple[Path, Path]:
    """A fresh (work, out) pair under CACHE/.tmp, on the cache's file system for the rename."""
    work = CACHE / ".tmp" / f"{cache_key(c, version)}.{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "out").mkdir(parents=True)
    return work, work / "out"


def build(c: versions.Component) -> tuple[Path, bool, float]:
    """Build `c` unless cached: returns (artifact, was it cached, seconds)."""
    started = time.monotonic()
    cached = built_path(c)
    if cached:
        return cached, True, time.monotonic() - started
    if not version_of(c):  # busybox before its package is installed
        busybox_binary()
    version = version_of(c)
    log(f"{c.name} {version}: building")
    steps = Steps(c.name)
    work, out = scratch(c, version)
    try:
        facts = produce(c, version, work, out, steps)
        finish(c, version, out, facts, steps)
        path = publish(c, version, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path, False, time.monotonic() - started


def adopt(c: versions.Component, folder: Path) -> Path:
    """Take a folder of Kubernetes binaries built by this same recipe outside build.py (the
    first build on this machine): checked (static, version) before it is moved in."""
    if c.kind != "binaries":
        raise BuildError(f"only a folder of binaries can be adopted, not {c.name}")
    if other_go_builds():
        raise BuildError("a go build is still running: adopt its output once it has finished")
    missing = [b for b in c.binaries if not (folder / b).is_file()]
    if missing:
        raise BuildError(f"{folder} lacks {', '.join(missing)}")
    steps = Steps(c.name)
    work, out = scratch(c, c.version)
    try:
        with steps.step("check"):
            reports = {b: check_binary(c, folder / b, c.version) for b in c.binaries}
        with steps.step("move"):
            shutil.move(str(folder), str(out / "bin"))
        finish(c, c.version, out, {"adopted_from": str(folder), "reports": reports}, steps)
        return publish(c, c.version, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- CLI


def human(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def size_of(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


def cmd_build(names: list[str]) -> int:
    """Build the components in order; one that fails does not stop the others (each is
    independent), but a missing prerequisite does, since it would fail them all."""
    check_platform()
    chosen = [versions.component(n) for n in names] if names else list(versions.COMPONENTS)
    started = time.monotonic()
    fresh, failed = 0, []
    with build_lock():
        shutil.rmtree(CACHE / ".tmp", ignore_errors=True)  # leftovers of an interrupted run
        for c in chosen:
            try:
                path, cached, seconds = build(c)
            except BuildError as e:
                if e.code == 2:
                    raise
                log(f"{c.name}: FAILED: {e}")
                failed.append(c.name)
                continue
            fresh += not cached
            state = "cached" if cached else "built"
            size = human(size_of(path))
            log(f"{c.name} {version_of(c)}: {state} in {seconds:.1f}s: {path} ({size})")
    cached_count = len(chosen) - fresh - len(failed)
    log(
        f"{len(chosen)} components ({fresh} built, {cached_count} cached, {len(failed)} failed"
        f"{': ' + ', '.join(failed) if failed else ''}) in {time.monotonic() - started:.1f}s"
    )
    return 1 if failed else 0


def cmd_path(name: str) -> int:
    c = versions.component(name)
    path = built_path(c)
    if path is None:
        print(f"{name} is not built: run 'python k8s-dev/cluster/build.py all'", file=sys.stderr)
        return 1
    print(path)
    return 0


def cmd_list() -> int:
    for c in versions.COMPONENTS:
        path = built_path(c)
        version = version_of(c) or "(not installed)"
        extra = f"  {image_reference(c, version)}" if c.kind == "image" else ""
        print(
            f"{c.name:24} {version:24} {c.kind:9} {'built' if path else 'not built':10} "
            f"{path or component_dir(c, version_of(c))}{extra}"
        )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("all", help="build every component (cached ones take no time)")
    b = sub.add_parser("build", help="build the named components")
    b.add_argument("names", nargs="+")
    pa = sub.add_parser("path", help="print a component's binary, folder or image tarball")
    pa.add_argument("name")
    sub.add_parser("list", help="every component, its version, state and path")
    ad = sub.add_parser("adopt", help="take a folder of Kubernetes binaries built elsewhere")
    ad.add_argument("name")
    ad.add_argument("folder", type=Path)
    return p


def cmd_adopt(name: str, folder: Path) -> int:
    check_platform()
    with build_lock():
        log(str(adopt(versions.component(name), folder.resolve())))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {
        "all": lambda: cmd_build([]),
        "build": lambda: cmd_build(args.names),
        "path": lambda: cmd_path(args.name),
        "list": cmd_list,
        "adopt": lambda: cmd_adopt(args.name, args.folder),
    }
    try:
        return commands[args.command]()
    except versions.UnknownComponentError as e:
        print(f"build.py: {e.args[0]}", file=sys.stderr)
        return 2
    except BuildError as e:
        print(f"build.py: {e}", file=sys.stderr)
        return e.code


if __name__ == "__main__":
    sys.exit(main())
