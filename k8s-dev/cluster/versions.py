"""Every pin build.py builds from: Go module, version, packages, link flags and image settings.

The cluster's programs cannot be downloaded here (no GitHub releases, no container registry),
so each one is built from its Go module as served by the Go module proxy. A version is pinned
only if the proxy really serves it: the mirror is filtered, so "newest" means the newest one
that downloads, not the newest upstream. `recipe` is bumped whenever the way a component is
built changes (flags, patches, image layout), so the cache key changes with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# distribution v3.1.2's go.mod says `go 1.26.0`; every other module asks for <= 1.24.
GO_MINIMUM = (1, 26)
# One fixed date for buildDate link flags, image `created` and every tar mtime: builds are
# reproducible, and nothing here pretends to know when upstream tagged the release.
SOURCE_DATE = "2026-01-01T00:00:00Z"
SOURCE_DATE_EPOCH = 1767225600
IMAGE_REPOSITORY = "users-local"

KUBERNETES = "v1.34.4"
# k8s.io/kubernetes's staging modules (k8s.io/api, client-go, ...) carry v0.<minor>.<patch>.
KUBERNETES_STAGING = "v0." + KUBERNETES.removeprefix("v1.")
KUBERNETES_BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "kubeadm",
)
# `--version` for the daemons; the two CLIs have a version subcommand instead
KUBERNETES_VERSION_CHECKS = {
    "kubectl": ("version", "--client"),
    "kubeadm": ("version", "-o", "short"),
}
# kubernetes' go.mod requires these example modules from ./staging; nothing built needs them
# and they are not published at the staging version, so the recipe drops them.
KUBERNETES_UNUSED_STAGING = (
    "k8s.io/sample-cli-plugin",
    "k8s.io/sample-apiserver",
    "k8s.io/sample-controller",
)


@dataclass(frozen=True)
class Image:
    """A one-layer FROM-scratch image around the component's binary."""

    binary_path: str  # where the binary sits inside the image
    user: str  # "uid:gid"; the manifests' securityContext must agree
    ports: tuple[str, ...] = ()
    # file capabilities set on the binary (setcap), e.g. CoreDNS binds :53 as a non-root user
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Component:
    """One thing build.py makes: a folder of binaries, a binary or an image tarball."""

    name: str
    version: str  # "" means: read at build time (busybox: the installed Debian package's)
    recipe: int
    kind: str  # "binaries" (a folder), "binary" or "image"
    description: str
    module: str = ""  # the Go module; "" for the in-repo pause and Debian's busybox
    packages: tuple[str, ...] = (".",)
    ldflags: tuple[str, ...] = ()  # besides -s -w
    tags: tuple[str, ...] = ()
    version_check: tuple[str, ...] = ("--version",)  # argv whose output names the version
    image: Image | None = None
    binaries: tuple[str, ...] = field(default_factory=tuple)  # output names, in packages order


def _version_flags(package: str, **values: str) -> tuple[str, ...]:
    """`-X package.var=value` link flags, the way each upstream Makefile stamps its version."""
    return tuple(f"-X {package}.{var}={value}" for var, value in values.items())


def _kubernetes_ldflags() -> tuple[str, ...]:
    """Both packages Kubernetes stamps: `kubectl version` and /version must say v1.34.4,
    because the Helm chart's kubeVersion check reads the server's gitVersion."""
    major, minor = KUBERNETES.removeprefix("v").split(".")[:2]
    flags: tuple[str, ...] = ()
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += _version_flags(
            package,
            gitVersion=KUBERNETES,
            gitMajor=major,
            gitMinor=minor,
            gitTreeState="clean",
            buildDate=SOURCE_DATE,
        )
    return flags


NOBODY = "65534:65534"

COMPONENTS: tuple[Component, ...] = (
    Component(
        name="pause",
        version="3.10",
        recipe=2,
        kind="image",
        description="the pod sandbox process, like Kubernetes' pause",
        ldflags=("-X main.version=3.10",),
        version_check=("-v",),
        # the upstream pause image's user
        image=Image(binary_path="pause", user="65535:65535"),
        binaries=("pause",),
    ),
    Component(
        name="busybox",
        version="",
        recipe=1,
        kind="image",
        description="busybox from Debian's busybox-static package, for local-path helper pods",
        version_check=(),
        image=Image(binary_path="bin/busybox", user="0:0"),
        binaries=("busybox",),
    ),
    Component(
        name="registry",
        version="v3.1.2",
        recipe=1,
        kind="binary",
        description="distribution registry, run on the host as skaffold's local registry",
        module="github.com/distribution/distribution/v3",
        packages=("./cmd/registry",),
        ldflags=_version_flags(
            "github.com/distribution/distribution/v3/version",
            version="v3.1.2",
            mainpkg="github.com/distribution/distribution/v3",
        ),
        binaries=("registry",),
    ),
    Component(
        name="kube-router",
        version="v2.1.0",  # the only version the proxy serves
        recipe=1,
        kind="binary",
        description="kube-router, run on the host as the NetworkPolicy controller",
        module="github.com/cloudnativelabs/kube-router/v2",
        packages=("./cmd/kube-router",),
        ldflags=_version_flags(
            "github.com/cloudnativelabs/kube-router/v2/pkg/version",
            Version="v2.1.0",
            BuildDate=SOURCE_DATE,
        ),
        binaries=("kube-router",),
    ),
    Component(
        name="coredns",
        # v1.12.4 is the newest 1.12.x served (v1.12.5+ are refused); kubeadm 1.34 ships 1.12.x
        version="v1.12.4",
        recipe=1,
        kind="image",
        description="CoreDNS, the cluster DNS",
        module="github.com/coredns/coredns",
        ldflags=_version_flags("github.com/coredns/coredns/coremain", GitCommit="v1.12.4"),
        version_check=("-version",),
        # like upstream's image: non-root, with cap_net_bind_service on the binary for :53
        image=Image(
            binary_path="coredns",
            user=NOBODY,
            ports=("53/tcp", "53/udp"),
            capabilities=("CAP_NET_BIND_SERVICE",),
        ),
        binaries=("coredns",),
    ),
    Component(
        name="metrics-server",
        version="v0.8.0",
        recipe=1,
        kind="image",
        description="metrics-server, the resource metrics API (kubectl top, HPA)",
        module="sigs.k8s.io/metrics-server",
        packages=("./cmd/metrics-server",),
        ldflags=_version_flags(
            "k8s.io/client-go/pkg/version", gitVersion="v0.8.0", buildDate=SOURCE_DATE
        ),
        image=Image(binary_path="metrics-server", user=NOBODY, ports=("10250/tcp",)),
        binaries=("metrics-server",),
    ),
    Component(
        name="local-path-provisioner",
        version="v0.0.30",  # v0.0.31 and v0.0.32 are not served
        recipe=1,
        kind="image",
        description="local-path-provisioner, the default StorageClass",
        module="github.com/rancher/local-path-provisioner",
        ldflags=("-X main.VERSION=v0.0.30",),
        image=Image(binary_path="usr/bin/local-path-provisioner", user=NOBODY),
        binaries=("local-path-provisioner",),
    ),
    Component(
        name="skaffold",
        version="v2.16.1",  # speaks skaffold/v4beta13, the repo's skaffold.yaml
        recipe=1,
        kind="binary",
        description="skaffold, the dev loop",
        module="github.com/GoogleContainerTools/skaffold/v2",
        packages=("./cmd/skaffold",),
        ldflags=_version_flags(
            "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version",
            version="v2.16.1",
            buildDate=SOURCE_DATE,
        ),
        # upstream's Linux release tags (timetzdata: no /usr/share/zoneinfo needed)
        tags=("timetzdata", "osusergo", "netgo", "static_build", "release"),
        version_check=("version",),
        binaries=("skaffold",),
    ),
    Component(
        name="kubernetes",
        version=KUBERNETES,
        recipe=1,
        kind="binaries",
        description="Kubernetes control plane, kubelet, kube-proxy, kubectl and kubeadm",
        module="k8s.io/kubernetes",
        packages=tuple(f"./cmd/{b}" for b in KUBERNETES_BINARIES),
        ldflags=_kubernetes_ldflags(),
        binaries=KUBERNETES_BINARIES,
    ),
)


class UnknownComponentError(KeyError):
    """A name that is not in COMPONENTS; the message lists the known ones."""


def component(name: str) -> Component:
    """The pinned component called `name`."""
    for c in COMPONENTS:
        if c.name == name:
            return c
    raise UnknownComponentError(
        f"unknown component {name!r}: one of {', '.join(c.name for c in COMPONENTS)}"
    )
