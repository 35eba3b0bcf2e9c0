"""Container images written straight from Python: no docker, no buildkit, no registry.

An image here is one gzip layer (a binary, a few /etc files) plus its config and manifest,
packed as an OCI image layout tarball that also carries a docker-archive manifest.json, the
same dual format `docker save` writes since Docker 25. containerd 1.6's `ctr images import`
reads the OCI side (and names the image from the index's io.containerd.image.name
annotation); `docker load` reads manifest.json (RepoTags). Every tar member has the same
mtime and owner and members are sorted, so the same inputs give the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import struct
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PLATFORM = {"architecture": "amd64", "os": "linux"}
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Linux capability numbers (include/uapi/linux/capability.h) this project may set on a file
CAPABILITY_BITS = {"CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13}
ETC_USERS = (
    "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534::/nonexistent:/sbin/nologin\n"
)
ETC_GROUPS = "root:x:0:\nnogroup:x:65534:\n"


class ImageError(Exception):
    """A tarball that is not a valid image (a digest, size or diff_id does not match)."""


@dataclass(frozen=True)
class Entry:
    """One member of the layer: a directory, a file (from disk or bytes) or a symlink."""

    path: str  # inside the image, without the leading "/"
    kind: str = "file"  # "file", "dir" or "symlink"
    mode: int = 0o644
    source: Path | None = None
    data: bytes = b""
    target: str = ""  # a symlink's target
    xattrs: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class ImageSpec:
    """What goes into the config besides the layer: how the image runs and what it says."""

    name: str  # repository, e.g. "users-local/coredns"
    tag: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""
    ports: tuple[str, ...] = ()
    env: tuple[str, ...] = (f"PATH={DEFAULT_PATH}",)
    labels: dict[str, str] = field(default_factory=dict)
    created: str = "1970-01-01T00:00:00Z"
    mtime: int = 0
    created_by: str = "k8s-dev/cluster/build.py"

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"


@dataclass(frozen=True)
class Written:
    """Digests of what write_image produced, for BUILD.json and the report."""

    path: Path
    reference: str
    manifest_digest: str
    config_digest: str
    layer_digest: str
    diff_id: str
    size: int


def file_capabilities(names: Iterable[str]) -> bytes:
    """The security.capability xattr value setcap writes for `names`+ep (VFS_CAP_REVISION_2):
    how a non-root process gets e.g. CAP_NET_BIND_SERVICE even with no_new_privs set, as long
    as the container's bounding set allows it."""
    bits = 0
    for name in names:
        bits |= 1 << CAPABILITY_BITS[name]
    magic = 0x02000000 | 0x000001  # VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
    return struct.pack("<5I", magic, bits & 0xFFFFFFFF, 0, bits >> 32, 0)


def with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """`entries` plus a 0755 directory for every parent not listed, sorted by path so that
    a parent always precedes its children and the order never depends on the caller."""
    by_path = {e.path.strip("/"): e for e in entries}
    for path in list(by_path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            by_path.setdefault(parent, Entry(parent, kind="dir", mode=0o755))
    return [by_path[p] for p in sorted(by_path)]


def base_files(with_tmp: bool = True) -> list[Entry]:
    """/etc/passwd and /etc/group naming root and nobody (so a numeric USER has a name and a
    home), and a sticky /tmp for the Go runtime and libraries that write temporary files."""
    entries = [
        Entry("etc/passwd", data=ETC_USERS.encode()),
        Entry("etc/group", data=ETC_GROUPS.encode()),
    ]
    if with_tmp:
        entries.append(Entry("tmp", kind="dir", mode=0o1777))
    return entries


def _tarinfo(entry: Entry, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo("/".join(p for p in entry.path.split("/") if p))
    info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = (
        mtime,
        entry.mode,
        0,
        0,
        "",
        "",
    )
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, entry.target
    elif entry.source is not None:
        info.size = entry.source.stat().st_size
    else:
        info.size = len(entry.data)
    if entry.xattrs:
        info.pax_headers = {
            f"SCHILY.xattr.{key}": value.decode("utf-8", "surrogateescape")
            for key, value in entry.xattrs
        }
    return info


def write_layer(entries: Iterable[Entry], out: Path, mtime: int) -> tuple[str, str, int]:
    """The layer as a gzip blob at `out`: returns (blob digest, diff_id, blob size). The tar is
    PAX (file capabilities travel as SCHILY.xattr records); gzip carries no name or time."""
    plain = out.with_suffix(".tar")
    with tarfile.open(plain, "w", format=tarfile.PAX_FORMAT) as tar:
        for entry in with_parents(entries):
            info = _tarinfo(entry, mtime)
            if entry.kind == "file" and entry.source is not None:
                with entry.source.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info, io.BytesIO(entry.data) if entry.kind == "file" else None)
    diff_id = sha256_file(plain)
    with (
        plain.open("rb") as src,
        out.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        shutil.copyfileobj(src, gz, 1 << 20)
    plain.unlink()
    return sha256_file(out), diff_id, out.stat().st_size


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _json(obj: object) -> bytes:
    """Canonical JSON: sorted keys, no spaces, so a digest depends only on the content."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_config(spec: ImageSpec, diff_id: str) -> dict:
    """The OCI image config: how to run it (Entrypoint, User, ...) and its one layer."""
    config: dict = {"Env": list(spec.env), "Labels": dict(spec.labels), "WorkingDir": "/"}
    if spec.entrypoint:
        config["Entrypoint"] = list(spec.entrypoint)
    if spec.cmd:
        config["Cmd"] = list(spec.cmd)
    if spec.user:
        config["User"] = spec.user
    if spec.ports:
        config["ExposedPorts"] = {p: {} for p in spec.ports}
    return {
        **PLATFORM,
        "created": spec.created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": spec.created, "created_by": spec.created_by}],
    }


def write_image(spec: ImageSpec, entries: Iterable[Entry], out: Path) -> Written:
    """Write the image tarball to `out` (through `out`.tmp, renamed once complete)."""
    work = out.with_name(out.name + ".parts")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        layer_digest, diff_id, layer_size = write_layer(entries, work / "layer", spec.mtime)
        config = _json(image_config(spec, diff_id))
        manifest = _json(
            {
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "digest": _digest(config), "size": len(config)},
                "layers": [{"mediaType": MT_LAYER, "digest": layer_digest, "size": layer_size}],
                "annotations": {"org.opencontainers.image.created": spec.created},
            }
        )
        index = _json(
            {
                "schemaVersion": 2,
                "mediaType": MT_INDEX,
                "manifests": [
                    {
                        "mediaType": MT_MANIFEST,
                        "digest": _digest(manifest),
                        "size": len(manifest),
                        "platform": PLATFORM,
                        "annotations": {
                            # containerd names the image from this (ctr import, the CRI plugin)
                            "io.containerd.image.name": f"docker.io/{spec.reference}",
                            "org.opencontainers.image.ref.name": spec.tag,
                        },
                    }
                ],
            }
        )
        blob = "blobs/sha256/"
        docker = _json(
            [
                {
                    "Config": blob + _digest(config).removeprefix("sha256:"),
                    "RepoTags": [spec.reference],
                    "Layers": [blob + layer_digest.removeprefix("sha256:")],
                }
            ]
        )
        members: list[tuple[str, bytes | Path]] = [
            ("oci-layout", _json(OCI_LAYOUT)),
            ("index.json", index),
            ("manifest.json", docker),
            (blob + _digest(config).removeprefix("sha256:"), config),
            (blob + _digest(manifest).removeprefix("sha256:"), manifest),
            (blob + layer_digest.removeprefix("sha256:"), work / "layer"),
        ]
        tmp = out.with_name(out.name + ".tmp")
        _write_outer(tmp, members, spec.mtime)
        tmp.replace(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Written(
        out,
        spec.reference,
        _digest(manifest),
        _digest(config),
        layer_digest,
        diff_id,
        out.stat().st_size,
    )


def _write_outer(path: Path, members: list[tuple[str, bytes | Path]], mtime: int) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("blobs", "blobs/sha256"):
            tar.addfile(_tarinfo(Entry(name, kind="dir", mode=0o755), mtime))
        for name, content in sorted(members, key=lambda m: m[0]):
            if isinstance(content, Path):
                info = _tarinfo(Entry(name, source=content), mtime)
                with content.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(_tarinfo(Entry(name, data=content), mtime), io.BytesIO(content))


# ----------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Layout:
    """What verify() read back: the references and the single image's config and files."""

    references: tuple[str, ...]  # from index.json annotations
    repo_tags: tuple[str, ...]  # from manifest.json
    config: dict
    files: dict[str, tarfile.TarInfo]  # the layer's members by path


def _members(tar: tarfile.TarFile) -> Iterator[tuple[str, tarfile.TarInfo]]:
    for info in tar.getmembers():
        yield info.name.removeprefix("./"), info


def _blob(tar: tarfile.TarFile, digest: str, size: int | None = None) -> bytes:
    algo, _, hexdigest = digest.partition(":")
    member = tar.getmember(f"blobs/{algo}/{hexdigest}")
    data = tar.extractfile(member).read()
    if _digest(data) != digest:
        raise ImageError(f"blob {digest} does not hash to its name")
    if size is not None and size != len(data):
        raise ImageError(f"blob {digest}: descriptor says {size} bytes, blob has {len(data)}")
    return data


def verify(tarball: Path) -> Layout:
    """Read the tarball back the way an importer does and check every link in the chain:
    index -> manifest -> config and layers (digest and size), config diff_ids against the
    uncompressed layers, and manifest.json naming the same config and layers."""
    with tarfile.open(tarball) as tar:
        names = dict(_members(tar))
        for required in ("oci-layout", "index.json", "manifest.json"):
            if required not in names:
                raise ImageError(f"{tarball}: no {required}")
        if json.load(tar.extractfile(names["oci-layout"])) != OCI_LAYOUT:
            raise ImageError(f"{tarball}: oci-layout is not version 1.0.0")
        index = json.load(tar.extractfile(names["index.json"]))
        if len(index.get("manifests", [])) != 1:
            raise ImageError(f"{tarball}: expected one manifest in index.json")
        desc = index["manifests"][0]
        manifest = json.loads(_blob(tar, desc["digest"], desc["size"]))
        config = json.loads(_blob(tar, manifest["config"]["digest"], manifest["config"]["size"]))
        layers = manifest["layers"]
        if len(layers) != len(config["rootfs"]["diff_ids"]):
            raise ImageError(f"{tarball}: {len(layers)} layers but diff_ids for another count")
        files: dict[str, tarfile.TarInfo] = {}
        for layer, diff_id in zip(layers, config["rootfs"]["diff_ids"], strict=True):
            plain = gzip.decompress(_blob(tar, layer["digest"], layer["size"]))
            if _digest(plain) != diff_id:
                raise ImageError(f"{tarball}: layer {layer['digest']} does not match {diff_id}")
            with tarfile.open(fileobj=io.BytesIO(plain)) as inner:
                files.update(_members(inner))
        docker = json.load(tar.extractfile(names["manifest.json"]))
        blob_paths = [f"blobs/sha256/{d['digest'].removeprefix('sha256:')}" for d in layers]
        config_path = "blobs/sha256/" + manifest["config"]["digest"].removeprefix("sha256:")
        if docker[0]["Config"] != config_path or docker[0]["Layers"] != blob_paths:
            raise ImageError(f"{tarball}: manifest.json and index.json disagree")
    annotations = desc.get("annotations", {})
    refs = tuple(annotations[k] for k in ("io.containerd.image.name",) if k in annotations)
    return Layout(refs, tuple(docker[0].get("RepoTags") or ()), config, files)
