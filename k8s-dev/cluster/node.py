"""The local single-node cluster: CI's Kubernetes, and an option for people without Docker.

    node.py up        a Ready node; writes .local/cluster/kubeconfig (context users-local)
    node.py down      stops everything and leaves nothing behind
    node.py status    what runs, one line per daemon
    node.py import TARBALL...   docker-archive/OCI tarballs into the node's containerd
    node.py leftovers           what `down` would have to clean (exit 1 if any)

Upstream Kubernetes v1.34 components run as host processes, the way k3s runs them in one binary
(see k8s-dev/README.md for why not k3s): Debian's etcd, containerd and CNI plugins; kube-apiserver,
kube-controller-manager, kube-scheduler, kubelet and kube-proxy (iptables mode; IPVS is not in this
kernel) built from source by build.py; kube-router as the NetworkPolicy controller (iptables +
ipset). In the cluster: CoreDNS (cluster.local only, forwards nothing), local-path-provisioner
(the default StorageClass) and metrics-server, all images built here (manifests/).

Addresses: the node is 10.42.0.1 on the bridge users-cni0 (pods 10.42.0.0/24, Services 10.43.0.0/16,
cluster DNS 10.43.0.10). Guard rules drop anything from or to those ranges on every outward
interface, so nothing a pod does leaves the machine. NodePorts answer on 127.0.0.1.
Settings this machine needs (../shared/design/cluster-on-these-machines.md): containerd's
restrict_oom_score_adj, the kubelet's cgroupfs driver on cgroup v1 (failCgroupV1: false) and an
oomScoreAdj it is allowed to set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import dockerd  # noqa: E402  (scripts/dockerd.py: the private docker daemon)

STATE = pathlib.Path(os.environ.get("CLUSTER_STATE_DIR", "/var/lib/users-service-cluster"))
RUN = pathlib.Path(os.environ.get("CLUSTER_RUN_DIR", "/run/users-service-cluster"))
KUBECONFIG_OUT = REPO / ".local" / "cluster" / "kubeconfig"
CONTEXT = "users-local"
NODE_NAME = "users-local"
NODE_IP = "10.42.0.1"
POD_CIDR = "10.42.0.0/16"
NODE_POD_CIDR = "10.42.0.0/24"
SERVICE_CIDR = "10.43.0.0/16"
DNS_IP = "10.43.0.10"
BRIDGE = "users-cni0"
GUARD_COMMENT = "users-service-cluster guard"
KUBERNETES_VERSION = "v1.34.4"
KUBERNETES_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
                       "kube-proxy", "kubectl", "kubeadm")  # fmt: skip
NODEPORT = 30080  # the app's NodePort on 127.0.0.1, the same as kind's mapping
REGISTRY_PORT = 5001  # the local registry skaffold pushes to (registry.py)
PAUSE_IMAGE = "docker.io/users-local/pause:3.10"
# images every node needs before anything is scheduled (build.py components)
SYSTEM_IMAGES = ("pause", "coredns", "metrics-server", "local-path-provisioner", "busybox")
PORTS = {"etcd": 2379, "etcd-peer": 2380, "kube-apiserver": 6443, "kubelet": 10250,
         "registry": REGISTRY_PORT}  # fmt: skip
DOCKER_STATE = pathlib.Path("/var/lib/users-service-cluster-docker")  # deploy.py's dockerd
CONTAINERD_SOCK = RUN / "containerd" / "containerd.sock"
PKI = STATE / "pki"
KUBECONFIGS = STATE / "kubeconfig"
LOGS = STATE / "logs"
# start order; `down` stops them in reverse
DAEMONS = (
    "containerd",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kube-router",
    "registry",
)


class ClusterError(SystemExit):
    """One line naming what is wrong; exit 2 for a missing prerequisite, 1 for a failure."""

    def __init__(self, message: str, code: int = 1) -> None:
        print(f"cluster: {message}", file=sys.stderr)
        super().__init__(code)


def log(message: str) -> None:
    print(f"cluster: {message}", flush=True)


def run(argv: Sequence[str | os.PathLike[str]], *, check: bool = True, **kw: object) -> str:
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False, **kw)
    if check and out.returncode != 0:
        raise ClusterError(f"{' '.join(map(str, argv))} failed: {out.stderr.strip()[-800:]}")
    return out.stdout


# --------------------------------------------------------------------------- prerequisites


def built(component: str) -> pathlib.Path:
    """Where build.py keeps a component's binary (or folder of binaries) or image tarball."""
    out = subprocess.run([sys.executable, HERE / "build.py", "path", component],
                         capture_output=True, text=True, check=False)  # fmt: skip
    if out.returncode != 0 or not out.stdout.strip():
        raise ClusterError(f"{component} is not built: run 'make cluster-build'", 2)
    return pathlib.Path(out.stdout.strip())


def binaries() -> dict[str, pathlib.Path]:
    """Every program the node runs: the ones build.py makes, the Debian packages' ones."""
    kube = built("kubernetes")
    found = {name: kube / name for name in KUBERNETES_BINARIES}
    found["kube-router"] = built("kube-router")
    found["registry"] = built("registry")
    for name in ("containerd", "containerd-shim-runc-v2", "runc", "etcd", "iptables", "ipset"):
        path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if not path:
            raise ClusterError(f"'{name}' not found: run 'make cluster-prereqs'", 2)
        found[name] = pathlib.Path(path)
    missing = [str(p) for p in found.values() if not p.exists()]
    if missing:
        raise ClusterError(f"not built: {', '.join(missing)}: run 'make cluster-build'", 2)
    return found


def check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise ClusterError("needs root (it starts containerd, a kubelet and iptables rules)", 2)
    if sys.platform != "linux":
        raise ClusterError("needs Linux", 2)
    for name, port in PORTS.items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))  # noqa: S104 - probing whether the port is free
            except OSError:
                raise ClusterError(
                    f"port {port} ({name}) is taken: stop what holds it", 2
                ) from None
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", NODEPORT))
        except OSError:
            raise ClusterError(
                f"port {NODEPORT} (the app's NodePort on 127.0.0.1) is taken", 2
            ) from None


# --------------------------------------------------------------------------- configuration


def outward_interfaces() -> list[str]:
    """Interfaces with a default route: where a pod's packet would leave the machine."""
    routes = json.loads(run(["ip", "-j", "route", "show", "default"]) or "[]")
    routes += json.loads(run(["ip", "-j", "-6", "route", "show", "default"]) or "[]")
    return sorted({r["dev"] for r in routes if r.get("dev")})


def write(path: pathlib.Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def write_configs() -> None:
    """containerd, CNI, kubeadm (PKI + kubeconfigs only), kubelet and kube-proxy configuration."""
    write(STATE / "containerd" / "config.toml", containerd_config())
    write(
        STATE / "containerd" / "certs.d" / f"127.0.0.1:{REGISTRY_PORT}" / "hosts.toml",
        f'server = "http://127.0.0.1:{REGISTRY_PORT}"\n'
        f'[host."http://127.0.0.1:{REGISTRY_PORT}"]\n'
        '  capabilities = ["pull", "resolve"]\n',
    )
    write(STATE / "cni" / "net.d" / "10-users.conflist", json.dumps(cni_config(), indent=2))
    write(STATE / "kubeadm.yaml", kubeadm_config())
    write(STATE / "kubelet.yaml", kubelet_config())
    write(STATE / "kube-proxy.yaml", kube_proxy_config())
    write(STATE / "registry.yaml", registry_config())
    write(STATE / "resolv.conf", "# pods with dnsPolicy Default get no upstream resolver here\n")


def containerd_config() -> str:
    return f"""version = 2
root = "{STATE / "containerd" / "root"}"
state = "{RUN / "containerd" / "state"}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{CONTAINERD_SOCK}"
[ttrpc]
  address = "{RUN / "containerd" / "containerd.sock.ttrpc"}"
[debug]
  address = "{RUN / "containerd" / "debug.sock"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # this machine's root lacks CAP_SYS_RESOURCE: oom_score_adj cannot go below the parent's
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{STATE / "cni" / "net.d"}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{STATE / "containerd" / "certs.d"}"
"""


def registry_config() -> str:
    """The local registry skaffold pushes to (--default-repo=127.0.0.1:5001); loopback only."""
    return f"""version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {STATE / "registry"}}}
  delete: {{enabled: true}}
http:
  addr: 127.0.0.1:{REGISTRY_PORT}
"""


def cni_config() -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": "users-local",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "isDefaultGateway": True,  # a default route via the node: Service IPs included
                "ipMasq": False,  # kube-proxy masquerades what needs it; nothing leaves anyway
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": NODE_POD_CIDR, "gateway": NODE_IP}]],
                    "dataDir": str(STATE / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubeadm_config() -> str:
    return f"""apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {NODE_IP}
  bindPort: {PORTS["kube-apiserver"]}
nodeRegistration:
  name: {NODE_NAME}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {KUBERNETES_VERSION}
clusterName: {CONTEXT}
certificatesDir: {PKI}
controlPlaneEndpoint: {NODE_IP}:{PORTS["kube-apiserver"]}
networking:
  serviceSubnet: {SERVICE_CIDR}
  podSubnet: {POD_CIDR}
  dnsDomain: cluster.local
apiServer:
  certSANs: [127.0.0.1, localhost, {NODE_IP}]
"""


def kubelet_config() -> str:
    return f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {NODE_IP}
port: {PORTS["kubelet"]}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
cgroupDriver: cgroupfs
# cgroup v1 only on these machines; Kubernetes 1.34 still runs on it when told to
failCgroupV1: false
# root here cannot lower oom_score_adj (no CAP_SYS_RESOURCE): 0 is what the kubelet may set
oomScoreAdj: 0
containerRuntimeEndpoint: unix://{CONTAINERD_SOCK}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {PKI / "ca.crt"}}}
authorization: {{mode: Webhook}}
clusterDomain: cluster.local
clusterDNS: [{DNS_IP}]
resolvConf: {STATE / "resolv.conf"}
failSwapOn: false
serializeImagePulls: false
staticPodPath: ""
evictionHard: {{memory.available: 200Mi, nodefs.available: 5%, imagefs.available: 5%}}
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
shutdownGracePeriod: 0s
# container logs under the state folder, not /var/log/pods (the symlinks the kubelet adds in
# /var/log/containers are removed by `down`)
podLogsDir: {STATE / "pod-logs"}
"""


def kube_proxy_config() -> str:
    return f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: {POD_CIDR}
hostnameOverride: {NODE_NAME}
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clientConnection:
  kubeconfig: {KUBECONFIGS / "kube-proxy.conf"}
conntrack:
  maxPerCore: 0
"""


def make_pki(bins: dict[str, pathlib.Path]) -> None:
    """kubeadm's certificate and kubeconfig phases only (no preflight, no static pods)."""
    if (PKI / "ca.crt").exists() and (KUBECONFIGS / "kube-proxy.conf").exists():
        return
    kubeadm, cfg = bins["kubeadm"], STATE / "kubeadm.yaml"
    run([kubeadm, "init", "phase", "certs", "all", "--config", cfg])
    run([kubeadm, "init", "phase", "kubeconfig", "all", "--config", cfg, "--kubeconfig-dir",
         KUBECONFIGS])  # fmt: skip
    users = {
        "kube-proxy.conf": ("system:kube-proxy", None),
        "cluster-admin.conf": (f"{CONTEXT}-admin", "system:masters"),
    }
    for filename, (user, org) in users.items():
        argv = [kubeadm, "kubeconfig", "user", "--config", cfg, "--client-name", user]
        if org:
            argv += ["--org", org]
        write(KUBECONFIGS / filename, run(argv), 0o600)


# --------------------------------------------------------------------------- network


def setup_network() -> None:
    for key, value in {
        "net/ipv4/ip_forward": "1",
        "net/bridge/bridge-nf-call-iptables": "1",
        "net/ipv4/conf/all/route_localnet": "1",
    }.items():
        pathlib.Path("/proc/sys", key).write_text(value)
    if run(["ip", "link", "show", BRIDGE], check=False) == "":
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "replace", f"{NODE_IP}/24", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    add_guard_rules()


def guard_rules() -> list[list[str]]:
    """mangle POSTROUTING drops: a filter OUTPUT match would miss packets rerouted by a DNAT."""
    rules = []
    for dev in outward_interfaces():
        for cidr in (POD_CIDR, SERVICE_CIDR):
            for flag in ("-s", "-d"):
                rules.append(["POSTROUTING", "-o", dev, flag, cidr, "-m", "comment", "--comment",
                              GUARD_COMMENT, "-j", "DROP"])  # fmt: skip
    return rules


def add_guard_rules() -> None:
    for rule in guard_rules():
        present = subprocess.run(
            ["iptables", "-t", "mangle", "-C", *rule], capture_output=True, check=False
        )
        if present.returncode:
            run(["iptables", "-t", "mangle", "-I", *rule])


def remove_guard_rules() -> None:
    for line in run(["iptables-save", "-t", "mangle"], check=False).splitlines():
        if GUARD_COMMENT in line and line.startswith("-A "):
            run(["iptables", "-t", "mangle", "-D", *shlex.split(line[3:])], check=False)


# --------------------------------------------------------------------------- daemons


def daemon_argv(name: str, bins: dict[str, pathlib.Path]) -> list[str]:
    pki, kc = PKI, KUBECONFIGS
    argvs: dict[str, list[object]] = {
        "containerd": [bins["containerd"], "--config", STATE / "containerd" / "config.toml"],
        "etcd": [
            bins["etcd"], "--name", NODE_NAME, "--data-dir", STATE / "etcd",
            "--listen-client-urls", "http://127.0.0.1:2379",
            "--advertise-client-urls", "http://127.0.0.1:2379",
            "--listen-peer-urls", "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", f"{NODE_NAME}=http://127.0.0.1:2380",
            "--listen-metrics-urls", "http://127.0.0.1:2381",
            "--quota-backend-bytes", str(2 * 1024**3), "--log-level", "warn",
        ],
        "kube-apiserver": [
            bins["kube-apiserver"],
            f"--advertise-address={NODE_IP}", f"--bind-address={NODE_IP}",
            f"--secure-port={PORTS['kube-apiserver']}",
            "--etcd-servers=http://127.0.0.1:2379",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-username-headers=X-Remote-User",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            "--enable-aggregator-routing=true",
            "--profiling=false",
        ],
        "kube-controller-manager": [
            bins["kube-controller-manager"],
            f"--kubeconfig={kc / 'controller-manager.conf'}",
            f"--authentication-kubeconfig={kc / 'controller-manager.conf'}",
            f"--authorization-kubeconfig={kc / 'controller-manager.conf'}",
            "--bind-address=127.0.0.1",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allocate-node-cidrs=true", f"--cluster-cidr={POD_CIDR}",
            "--node-cidr-mask-size=24",
            "--use-service-account-credentials=true",
            "--controllers=*,bootstrapsigner,tokencleaner",
            "--leader-elect=false", "--profiling=false",
            # a lone node: Jobs, HPAs and evictions should react in seconds
            "--horizontal-pod-autoscaler-sync-period=10s",
            # scale-down after 30 s of low load instead of 5 minutes (the HPA test waits for it)
            "--horizontal-pod-autoscaler-downscale-stabilization=30s",
        ],
        "kube-scheduler": [
            bins["kube-scheduler"],
            f"--kubeconfig={kc / 'scheduler.conf'}",
            f"--authentication-kubeconfig={kc / 'scheduler.conf'}",
            f"--authorization-kubeconfig={kc / 'scheduler.conf'}",
            "--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false",
        ],
        "kubelet": [
            bins["kubelet"],
            f"--config={STATE / 'kubelet.yaml'}",
            f"--kubeconfig={kc / 'kubelet.conf'}",
            f"--root-dir={STATE / 'kubelet'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            f"--cert-dir={STATE / 'kubelet' / 'pki'}",
        ],
        "kube-proxy": [bins["kube-proxy"], f"--config={STATE / 'kube-proxy.yaml'}"],
        "kube-router": [
            bins["kube-router"],
            f"--kubeconfig={kc / 'cluster-admin.conf'}",
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
            "--enable-cni=false", "--enable-ipv4=true", "--enable-ipv6=false",
            f"--hostname-override={NODE_NAME}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--health-port=0", "--metrics-port=0",
        ],
        "registry": [bins["registry"], "serve", STATE / "registry.yaml"],
    }  # fmt: skip
    return [str(a) for a in argvs[name]]


def pidfile(name: str) -> pathlib.Path:
    return RUN / f"{name}.pid"


def running(name: str) -> int | None:
    try:
        pid = int(pidfile(name).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start(name: str, bins: dict[str, pathlib.Path]) -> None:
    if running(name):
        return
    LOGS.mkdir(parents=True, exist_ok=True)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
    with open(LOGS / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(
            daemon_argv(name, bins), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            env=env, start_new_session=True, cwd=STATE,
        )  # fmt: skip
    pidfile(name).write_text(str(proc.pid))


def wait_for(
    what: str, check: Callable[[], object], timeout: float, name: str | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name and not running(name):
            raise ClusterError(f"{name} exited: see {LOGS / (name + '.log')}\n{tail(name)}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.5)
    raise ClusterError(f"{what} not ready after {timeout:.0f}s\n{tail(name) if name else ''}")


def tail(name: str, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join((LOGS / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
    return ""


def apiserver_ready() -> bool:
    ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    ctx.load_cert_chain(PKI / "apiserver-kubelet-client.crt", PKI / "apiserver-kubelet-client.key")
    url = f"https://{NODE_IP}:{PORTS['kube-apiserver']}/readyz"
    with urllib.request.urlopen(url, context=ctx, timeout=3) as r:
        return r.status == 200


def kubectl(*args: str, check: bool = True, bins: dict | None = None) -> str:
    tool = (bins or binaries())["kubectl"]
    return run([tool, "--kubeconfig", KUBECONFIGS / "cluster-admin.conf", *args], check=check)


def write_user_kubeconfig() -> None:
    """.local/cluster/kubeconfig: cluster, user and context all named users-local."""
    cfg = json.loads(
        run(
            [
                binaries()["kubectl"],
                "--kubeconfig",
                KUBECONFIGS / "cluster-admin.conf",
                "config",
                "view",
                "--raw",
                "-o",
                "json",
            ]
        )
    )
    cluster, user = cfg["clusters"][0], cfg["users"][0]
    cluster["name"] = user["name"] = CONTEXT
    cfg["contexts"] = [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT}}]
    cfg["current-context"] = CONTEXT
    write(KUBECONFIG_OUT, json.dumps(cfg, indent=2), 0o600)


# --------------------------------------------------------------------------- up / down


def up() -> None:
    started = time.monotonic()
    step = started

    def done(what: str) -> None:
        nonlocal step
        now = time.monotonic()
        log(f"{what} ({now - step:.1f}s)")
        step = now

    if running("kube-apiserver") and KUBECONFIG_OUT.exists():
        log("already up")
        return
    if os.geteuid() == 0 and (RUN.exists() or our_processes() or our_mounts()):
        # a node that was killed rather than taken down (pid files, mounts, rules, shims)
        log("cleaning up what an earlier node left behind")
        down()
    check_prerequisites()
    bins = binaries()
    for d in (STATE, RUN, LOGS):
        d.mkdir(parents=True, exist_ok=True)
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    write_configs()
    make_pki(bins)
    done("configuration and PKI")
    setup_network()
    done("bridge, sysctls and guard rules")
    start("containerd", bins)
    wait_for("containerd", CONTAINERD_SOCK.exists, 30, "containerd")
    import_images([built(c) for c in SYSTEM_IMAGES], bins)
    done("containerd and the system images")
    start("etcd", bins)
    wait_for("etcd", lambda: urllib.request.urlopen("http://127.0.0.1:2379/health", timeout=2),
             30, "etcd")  # fmt: skip
    start("kube-apiserver", bins)
    wait_for("kube-apiserver", apiserver_ready, 90, "kube-apiserver")
    done("etcd and kube-apiserver")
    for name in ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"):
        start(name, bins)
    wait_for(
        "node Ready",
        lambda: (
            "True"
            in kubectl(
                "get",
                "node",
                NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                check=False,
                bins=bins,
            )
        ),
        120,
        "kubelet",
    )
    start("kube-router", bins)
    start("registry", bins)
    done("node Ready, kube-router, the local registry")
    apply_manifests(bins)
    for ns, kind, name in (
        ("kube-system", "deployment", "coredns"),
        ("local-path-storage", "deployment", "local-path-provisioner"),
        ("kube-system", "deployment", "metrics-server"),
    ):
        kubectl("-n", ns, "rollout", "status", f"{kind}/{name}", "--timeout=180s", bins=bins)
    wait_for(
        "the metrics API",
        lambda: (
            kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes", check=False, bins=bins)
            != ""
        ),
        120,
    )
    done("CoreDNS, local-path-provisioner, metrics-server")
    write_user_kubeconfig()
    log(f"node {NODE_NAME} Ready in {time.monotonic() - started:.1f}s; "
        f"KUBECONFIG={KUBECONFIG_OUT} (context {CONTEXT})")  # fmt: skip


def image_ref(tarball: pathlib.Path) -> str:
    """The name a docker-archive or OCI tarball carries (what the manifests must reference)."""
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        if "manifest.json" in names or "./manifest.json" in names:
            member = "manifest.json" if "manifest.json" in names else "./manifest.json"
            tags = json.load(tar.extractfile(member))[0].get("RepoTags") or []
            if tags:
                return normalise(tags[0])
        member = "index.json" if "index.json" in names else "./index.json"
        index = json.load(tar.extractfile(member))
        for m in index.get("manifests", []):
            ref = m.get("annotations", {}).get("io.containerd.image.name") or m.get(
                "annotations", {}
            ).get("org.opencontainers.image.ref.name")
            if ref and ("/" in ref or ":" in ref):
                return normalise(ref)
    raise ClusterError(f"{tarball}: no image name in it")


def normalise(ref: str) -> str:
    """docker.io/library/... the way containerd's CRI names an image."""
    first = ref.split("/", 1)[0]
    if "/" not in ref:
        return f"docker.io/library/{ref}"
    if "." in first or ":" in first or first == "localhost":
        return ref
    return f"docker.io/{ref}"


def apply_manifests(bins: dict) -> None:
    """manifests/*.yaml with their @IMAGE_<component>@ and @STORAGE_DIR@ filled in."""
    values = {f"@IMAGE_{c}@": image_ref(built(c)) for c in SYSTEM_IMAGES}
    values["@STORAGE_DIR@"] = str(STATE / "storage")
    docs = []
    for path in sorted((HERE / "manifests").glob("*.yaml")):
        text = path.read_text()
        for key, value in values.items():
            text = text.replace(key, value)
        docs.append(text)
    tool = bins["kubectl"]
    out = subprocess.run(
        [str(tool), "--kubeconfig", str(KUBECONFIGS / "cluster-admin.conf"), "apply",
         "--server-side", "-f", "-"],
        input="\n---\n".join(docs), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise ClusterError(f"applying the system manifests failed: {out.stderr.strip()}")


def import_images(tarballs: Iterable[pathlib.Path], bins: dict | None = None) -> None:
    ctr = [(bins or binaries())["containerd"].with_name("ctr"), "--address", CONTAINERD_SOCK,
           "-n", "k8s.io"]  # fmt: skip
    for tar in tarballs:
        run([*ctr, "images", "import", "--no-unpack=false", "--all-platforms", tar])


def stop(name: str, timeout: float = 15) -> None:
    pid = running(name)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and running(name):
            time.sleep(0.2)
        if running(name):
            os.kill(pid, signal.SIGKILL)
    pidfile(name).unlink(missing_ok=True)


def our_processes() -> list[tuple[int, str]]:
    """Processes started from this cluster: by executable, or shims serving our containerd."""
    found = []
    marks = (str(STATE), str(RUN), str(CONTAINERD_SOCK))
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in cmd for m in marks):
            found.append((int(proc.name), cmd.strip()))
    return found


def our_mounts() -> list[str]:
    mounts = []
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith((str(STATE), str(RUN))):
            mounts.append(point)
    return sorted(mounts, key=len, reverse=True)


def our_log_links() -> list[str]:
    """The kubelet's /var/log/containers symlinks (a fixed path) that point into our state."""
    base = pathlib.Path("/var/log/containers")
    if not base.is_dir():
        return []
    return sorted(
        str(p)
        for p in base.iterdir()
        if p.is_symlink() and str(p.readlink()).startswith(str(STATE))
    )


def our_netns() -> list[str]:
    base = pathlib.Path("/var/run/netns")
    return sorted(p.name for p in base.glob("cni-*")) if base.exists() else []


def our_links() -> list[str]:
    links = json.loads(run(["ip", "-j", "link", "show"]) or "[]")
    return sorted(
        link["ifname"] for link in links if link["ifname"] == BRIDGE or link.get("master") == BRIDGE
    )


def our_iptables() -> list[str]:
    found = []
    for table in ("filter", "nat", "mangle", "raw"):
        for line in run(["iptables-save", "-t", table], check=False).splitlines():
            if any(m in line for m in ("KUBE-", "CNI-", GUARD_COMMENT, BRIDGE)):
                found.append(f"{table}: {line}")
    return found


def our_ipsets() -> list[str]:
    out = run(["ipset", "list", "-n"], check=False) if shutil.which("ipset") else ""
    return [s for s in out.split() if s.startswith(("KUBE-", "kube-router"))]


def leftovers() -> dict[str, list]:
    return {
        "processes": our_processes(),
        "mounts": our_mounts(),
        "log-links": our_log_links(),
        "netns": our_netns(),
        "links": our_links(),
        "iptables": our_iptables(),
        "ipsets": our_ipsets(),
    }


def stop_docker() -> None:
    """The private dockerd `make cluster-deploy` may have started (scripts/dockerd.py)."""
    state = pathlib.Path(os.environ.get("CLUSTER_DOCKER_STATE", DOCKER_STATE))
    if not state.exists():
        return
    left = dockerd.stop(state)
    if left:
        raise ClusterError(f"the cluster's dockerd left behind: {left}")
    shutil.rmtree(state, ignore_errors=True)


def down() -> None:
    started = time.monotonic()
    stop_docker()
    for name in reversed(DAEMONS):
        stop(name)
    for pid, _ in our_processes():  # container shims and their containers
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while our_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    for point in our_mounts():
        run(["umount", "-l", point], check=False)
    for ns in our_netns():
        run(["ip", "netns", "delete", ns], check=False)
    for link in our_log_links():
        pathlib.Path(link).unlink(missing_ok=True)
    for link in our_links():
        run(["ip", "link", "delete", link], check=False)
    clean_iptables()
    for name in our_ipsets():
        run(["ipset", "destroy", name], check=False)
    shutil.rmtree(RUN, ignore_errors=True)
    shutil.rmtree(STATE, ignore_errors=True)
    KUBECONFIG_OUT.unlink(missing_ok=True)
    left = {k: v for k, v in leftovers().items() if v}
    if left:
        raise ClusterError(f"left behind after down: {json.dumps(left)[:2000]}")
    log(f"down in {time.monotonic() - started:.1f}s; nothing left behind")


def clean_iptables() -> None:
    """Every rule and chain kube-proxy, kube-router, the CNI plugins and the guard added."""
    remove_guard_rules()
    marks = ("KUBE-", "CNI-", BRIDGE)
    for table in ("filter", "nat", "mangle", "raw"):
        lines = run(["iptables-save", "-t", table], check=False).splitlines()
        for line in lines:
            if line.startswith("-A ") and any(m in line for m in marks):
                chain = line.split()[1]
                if not chain.startswith(("KUBE-", "CNI-")):  # a jump from a built-in chain
                    run(["iptables", "-t", table, "-D", *shlex.split(line[3:])], check=False)
        for line in lines:
            if line.startswith(":") and line[1:].startswith(("KUBE-", "CNI-")):
                chain = line[1:].split()[0]
                run(["iptables", "-t", table, "-F", chain], check=False)
        for line in lines:
            if line.startswith(":") and line[1:].startswith(("KUBE-", "CNI-")):
                chain = line[1:].split()[0]
                run(["iptables", "-t", table, "-X", chain], check=False)


def status() -> None:
    for name in DAEMONS:
        pid = running(name)
        print(f"{name:24} {'running, pid ' + str(pid) if pid else 'stopped'}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up")
    sub.add_parser("down")
    sub.add_parser("status")
    sub.add_parser("leftovers")
    imp = sub.add_parser("import")
    imp.add_argument("tarballs", nargs="+", type=pathlib.Path)
    args = parser.parse_args(argv)
    if args.cmd == "up":
        up()
    elif args.cmd == "down":
        down()
    elif args.cmd == "status":
        status()
    elif args.cmd == "import":
        import_images(args.tarballs)
    elif args.cmd == "leftovers":
        left = {k: v for k, v in leftovers().items() if v}
        print(json.dumps(left, indent=2))
        raise SystemExit(1 if left else 0)


if __name__ == "__main__":
    main()
