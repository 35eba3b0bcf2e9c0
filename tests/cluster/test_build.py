"""k8s-dev/cluster/build.py and oci.py on real files: the image tarballs it writes are
valid OCI layouts and docker archives, cache keys follow the pins, and the CLI answers
`path`/`list` and names a missing prerequisite. Nothing big is built: the only compile is the
tiny in-repo pause program, and only where Go is installed."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.support.paths import CLUSTER
from tests.support.scripts import import_script
from tests.support.tools import missing, require_root, require_tool
from tests.support.wait import wait_until

BUILD_PY = CLUSTER / "build.py"


build = import_script(BUILD_PY, as_name="cluster_build")  # "build" is also a PyPI package
oci = build.oci
versions = build.versions


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run_cli(*args: str, cache: Path, path_env: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLUSTER_CACHE_DIR": str(cache)}
    if path_env is not None:
        env["PATH"] = path_env
    return subprocess.run([sys.executable, str(BUILD_PY), *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)  # fmt: skip


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    path = tmp_path / "prog"
    path.write_bytes(b"\x7fELF pretend program " * 100)
    return path


def small_image(tmp_path: Path, binary: Path, tag: str = "1.0") -> tuple[Path, object]:
    spec = oci.ImageSpec(
        name="users-local/demo", tag=tag, entrypoint=("/usr/bin/prog",), user="65534:65534",
        ports=("53/udp",), labels={"org.opencontainers.image.version": tag},
        created=versions.SOURCE_DATE, mtime=versions.SOURCE_DATE_EPOCH,
    )  # fmt: skip
    caps = (("security.capability", oci.file_capabilities(["CAP_NET_BIND_SERVICE"])),)
    entries = [
        oci.Entry("usr/bin/prog", source=binary, mode=0o755, xattrs=caps),
        oci.Entry("bin/sh", kind="symlink", target="/usr/bin/prog", mode=0o777),
        *oci.base_files(),
    ]
    out = tmp_path / "image.tar"
    return out, oci.write_image(spec, entries, out)


# ----------------------------------------------------------------------------- OCI writer


def test_image_tarball_is_a_consistent_oci_layout_and_docker_archive(tmp_path, binary):
    out, written = small_image(tmp_path, binary)
    with tarfile.open(out) as tar:
        blob = lambda digest: tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}").read()  # noqa: E731
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
        index = json.load(tar.extractfile("index.json"))
        (desc,) = index["manifests"]
        annotations = desc["annotations"]
        assert annotations["io.containerd.image.name"] == "docker.io/users-local/demo:1.0"
        assert annotations["org.opencontainers.image.ref.name"] == "1.0"
        manifest_bytes = blob(desc["digest"])
        assert sha(manifest_bytes) == desc["digest"] == written.manifest_digest
        assert len(manifest_bytes) == desc["size"]
        manifest = json.loads(manifest_bytes)
        config_bytes = blob(manifest["config"]["digest"])
        assert sha(config_bytes) == manifest["config"]["digest"]
        (layer,) = manifest["layers"]
        layer_bytes = blob(layer["digest"])
        assert sha(layer_bytes) == layer["digest"] and len(layer_bytes) == layer["size"]
        config = json.loads(config_bytes)
        assert config["rootfs"]["diff_ids"] == [sha(gzip.decompress(layer_bytes))]
        docker = json.load(tar.extractfile("manifest.json"))
    assert docker == [{
        "Config": f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}",
        "RepoTags": ["users-local/demo:1.0"],
        "Layers": [f"blobs/sha256/{layer['digest'].split(':')[1]}"],
    }]  # fmt: skip
    assert config["config"]["Entrypoint"] == ["/usr/bin/prog"]
    assert config["config"]["User"] == "65534:65534"
    assert config["config"]["ExposedPorts"] == {"53/udp": {}}
    assert (config["os"], config["architecture"]) == ("linux", "amd64")


def test_layer_has_parents_fixed_owner_and_time_and_the_file_capability(tmp_path, binary):
    out, _ = small_image(tmp_path, binary)
    files = oci.verify(out).files
    assert list(files) == sorted(files)
    assert {"bin", "etc", "tmp", "usr", "usr/bin"} <= {n for n, i in files.items() if i.isdir()}
    assert all(
        (i.uid, i.gid, i.mtime) == (0, 0, versions.SOURCE_DATE_EPOCH) for i in files.values()
    )
    prog = files["usr/bin/prog"]
    assert prog.size == binary.stat().st_size and prog.mode == 0o755
    assert files["bin/sh"].issym() and files["bin/sh"].linkname == "/usr/bin/prog"
    assert files["tmp"].mode == 0o1777
    xattr = prog.pax_headers["SCHILY.xattr.security.capability"]
    assert xattr.encode("utf-8", "surrogateescape") == oci.file_capabilities(
        ["CAP_NET_BIND_SERVICE"]
    )


def test_same_inputs_give_the_same_bytes(tmp_path, binary):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, _ = small_image(tmp_path / "a", binary)
    second, _ = small_image(tmp_path / "b", binary)
    assert first.read_bytes() == second.read_bytes()
    third, _ = small_image(tmp_path, binary, tag="1.1")
    assert oci.sha256_file(third) != oci.sha256_file(first)


def test_verify_rejects_a_blob_that_does_not_match_its_digest(tmp_path, binary):
    out, written = small_image(tmp_path, binary)
    broken = tmp_path / "broken.tar"
    with tarfile.open(out) as src, tarfile.open(broken, "w") as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read() if info.isfile() else None
            if info.name.endswith(written.config_digest.split(":")[1]):
                data = data.replace(b"65534:65534", b"0:0        ")
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
    with pytest.raises(oci.ImageError, match="does not hash to its name"):
        oci.verify(broken)


def test_file_capability_matches_what_setcap_writes(tmp_path):
    expected = oci.file_capabilities(["CAP_NET_BIND_SERVICE"])
    assert expected == bytes.fromhex("0100000200040000000000000000000000000000")
    require_root("setcap writes the capability xattr to compare with")
    setcap = shutil.which("setcap") or "/usr/sbin/setcap"
    if not Path(setcap).exists():
        missing("no setcap to compare with the real thing: apt-get install libcap2-bin")
    target = tmp_path / "f"
    target.write_bytes(b"x")
    subprocess.run([setcap, "cap_net_bind_service=+ep", str(target)], check=True)
    assert os.getxattr(target, "security.capability") == expected


# ----------------------------------------------------------------------------- keys, checks


def test_cache_key_changes_with_version_and_recipe():
    coredns = versions.component("coredns")
    key = build.cache_key(coredns, coredns.version)
    assert key == f"coredns-{coredns.version}-r{coredns.recipe}"
    assert build.cache_key(coredns, "v1.12.3") != key
    assert (
        build.cache_key(dataclasses.replace(coredns, recipe=coredns.recipe + 1), coredns.version)
        != key
    )


def test_pause_key_follows_its_source(tmp_path, monkeypatch):
    source = tmp_path / "pause"
    shutil.copytree(CLUSTER / "pause", source)
    monkeypatch.setattr(build, "PAUSE_SOURCE", source)
    pause = versions.component("pause")
    before = build.cache_key(pause, "3.10")
    (source / "main.go").write_text((source / "main.go").read_text() + "\n// changed\n")
    assert build.cache_key(pause, "3.10") != before


def test_debian_versions_become_valid_tags():
    assert build.safe("1:1.35.0-4+deb12u1+b1") == "1.35.0-4_deb12u1_b1"
    assert build.safe("v1.12.4") == "v1.12.4"


def test_static_elf_detection_on_real_binaries(tmp_path):
    assert not build.is_static_elf(Path(sys.executable).resolve())  # CPython needs its loader
    text = tmp_path / "script"
    text.write_text("#!/bin/sh\n")
    assert not build.is_static_elf(text)
    busybox = Path("/bin/busybox")
    if build.debian_version("busybox-static") and busybox.exists():
        assert build.is_static_elf(busybox)


def test_every_component_is_pinned_and_named_once():
    names = [c.name for c in versions.COMPONENTS]
    assert len(names) == len(set(names))
    for c in versions.COMPONENTS:
        assert c.kind in ("binaries", "binary", "image")
        assert (c.image is not None) == (c.kind == "image")
        assert c.binaries and (c.kind == "binaries" or len(c.binaries) == 1)
        assert c.name in ("pause", "busybox") or (c.module and c.version.startswith("v"))
    kube = versions.component("kubernetes")
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in kube.ldflags
    assert "-X k8s.io/client-go/pkg/version.gitVersion=v1.34.4" in kube.ldflags
    with pytest.raises(versions.UnknownComponentError):
        versions.component("nope")


# ----------------------------------------------------------------------------- CLI


def test_list_and_path_on_an_empty_cache(tmp_path):
    listed = run_cli("list", cache=tmp_path)
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [c.name for c in versions.COMPONENTS]
    assert all("not built" in line for line in lines)
    assert "users-local/coredns:v1.12.4" in listed.stdout
    missing = run_cli("path", "coredns", cache=tmp_path)
    assert missing.returncode == 1 and missing.stdout == ""
    assert "coredns is not built" in missing.stderr
    unknown = run_cli("path", "nope", cache=tmp_path)
    assert unknown.returncode == 2 and "unknown component 'nope'" in unknown.stderr


def test_path_prints_a_complete_build_only(tmp_path):
    coredns = versions.component("coredns")
    folder = tmp_path / build.cache_key(coredns, coredns.version)
    folder.mkdir()
    (folder / "image.tar").write_bytes(b"")
    assert run_cli("path", "coredns", cache=tmp_path).returncode == 1  # no BUILD.json yet
    (folder / "BUILD.json").write_text("{}")
    found = run_cli("path", "coredns", cache=tmp_path)
    assert found.returncode == 0 and found.stdout.strip() == str(folder / "image.tar")
    kube = versions.component("kubernetes")
    (tmp_path / build.cache_key(kube, kube.version) / "bin").mkdir(parents=True)
    (tmp_path / build.cache_key(kube, kube.version) / "BUILD.json").write_text("{}")
    assert run_cli("path", "kubernetes", cache=tmp_path).stdout.strip().endswith("-r1/bin")
    assert "built" in run_cli("list", cache=tmp_path).stdout.splitlines()[4]


def test_an_old_go_is_named_in_one_line_with_exit_2(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "go").write_text("#!/bin/sh\necho go1.21.0\n")
    (fake / "go").chmod(0o755)
    old = run_cli("build", "pause", cache=tmp_path / "cache", path_env=f"{fake}:/usr/bin:/bin")
    assert old.returncode == 2
    assert old.stderr.strip() == "build.py: Go 1.21.0 is older than the Go 1.26 the pins need"
    (fake / "go").unlink()
    none = run_cli("build", "pause", cache=tmp_path / "cache", path_env=str(fake))
    assert none.returncode == 2 and len(none.stderr.strip().splitlines()) == 1
    assert "'go' is not on PATH" in none.stderr


# ----------------------------------------------------------------------------- pause


@pytest.mark.slow
def test_pause_reaps_orphans_and_exits_0_on_sigterm(tmp_path):
    go = require_tool("go", "install Go 1.26 (https://go.dev/doc/install) to build pause")
    src = shutil.copytree(CLUSTER / "pause", tmp_path / "src")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    subprocess.run([go, "build", "-o", str(tmp_path / "pause"), "."], cwd=src, env=env,
                   check=True, timeout=300)  # fmt: skip
    # PID 1 of a new PID namespace, as in a pod: orphans there are re-parented to it
    require_root("a new PID namespace for pause")
    unshare = require_tool("unshare", "apt-get install util-linux")
    nsenter = require_tool("nsenter", "apt-get install util-linux")
    proc = subprocess.Popen([unshare, "--pid", "--fork", "--kill-child", str(tmp_path / "pause")],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(0.5)
        assert proc.poll() is None, "pause exited on its own"
        pause = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
        # sh starts a short sleep and exits: the sleep becomes pause's child, then exits
        subprocess.run([nsenter, "-t", str(pause), "-p", "--", "sh", "-c", "sleep 0.3 &"],
                       check=True, timeout=10)  # fmt: skip
        children = Path(f"/proc/{pause}/task/{pause}/children")
        wait_until("pause to reap its exited child (no zombie)",
                   lambda: children.read_text().split() == [], 5, 0.1, errors=())  # fmt: skip
        os.kill(pause, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    assert "Shutting down, got signal: terminated" in proc.stderr.read()


def test_publish_is_a_rename_and_drops_only_that_components_older_builds(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "CACHE", tmp_path)
    coredns = versions.component("coredns")
    for name, component in (("coredns-v1.11.0-r1", "coredns"), ("metrics-server-v0.7.0-r1",
                                                                 "metrics-server")):  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "BUILD.json").write_text(json.dumps({"component": component}))
    out = tmp_path / ".tmp" / "out"
    out.mkdir(parents=True)
    (out / "image.tar").write_bytes(b"tar")
    (out / "BUILD.json").write_text(json.dumps({"component": "coredns"}))
    path = build.publish(coredns, coredns.version, out)
    assert path == tmp_path / f"coredns-{coredns.version}-r{coredns.recipe}" / "image.tar"
    assert path.read_bytes() == b"tar" and not out.exists()
    assert not (tmp_path / "coredns-v1.11.0-r1").exists()
    assert (tmp_path / "metrics-server-v0.7.0-r1").exists()
    assert build.built_path(coredns) == path
