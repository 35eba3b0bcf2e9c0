"""The chart rendered by the real helm (`helm template`, tool policy of tests/support/tools.py),
rendered-manifest queries and label selectors: for the chart tests and every other tier that
reads the rendered chart."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

from tests.support.paths import CHART, REPO
from tests.support.tools import require_tool as tool

RELEASE = "users"
NAMESPACE = "users-service"
# The oldest supported minor (native preStop sleep still feature-gated) and a current one.
KUBE_VERSIONS = ("1.29.0", "1.33.0")
LATEST = KUBE_VERSIONS[-1]

SCENARIOS: dict[str, str] = {
    "default": "ci/default-values.yaml",
    "external-db": "ci/external-db-values.yaml",
    "hpa": "ci/hpa-values.yaml",
    "ingress": "ci/ingress-values.yaml",
    "hook": "ci/hook-values.yaml",
    "reload": "ci/reload-values.yaml",
    "dev": "values-dev.yaml",
    "staging": "values-staging.yaml",
    "prod": "values-prod.yaml",
}

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "Pod")
# The Prometheus Operator's CRD as helm's Capabilities.APIVersions names it (--api-versions).
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"


@dataclass
class Rendered:
    """The documents of one `helm template` run."""

    docs: list[dict]
    text: str = field(repr=False)

    def all(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, component: str | None = None) -> dict:
        found = [
            d
            for d in self.all(kind)
            if component is None
            or d["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"expected one {kind} ({component}), got {len(found)}"
        return found[0]

    def named(self, kind: str, name: str) -> dict:
        found = [d for d in self.all(kind) if d["metadata"]["name"] == name]
        assert found, f"no {kind} named {name}"
        return found[0]

    @property
    def deployment(self) -> dict:
        return self.one("Deployment", "web")

    @property
    def job(self) -> dict:
        return self.one("Job", "migrate")

    def pod_specs(self) -> Iterable[tuple[dict, dict]]:
        """(object, pod spec) for every workload, including the helm test Pod."""
        for doc in self.docs:
            if doc["kind"] in WORKLOAD_KINDS:
                yield doc, pod_spec_of(doc)


def helm_template(
    *args: str,
    kube_version: str | None = LATEST,
    release: str = RELEASE,
    namespace: str | None = NAMESPACE,
    helm: str | None = None,
) -> subprocess.CompletedProcess:
    """`helm template <release> chart`; kube_version/namespace None leave helm's own default.
    `helm`: a binary the caller looked up itself (e.g. with required=True), else tool("helm")."""
    cmd = [helm or tool("helm"), "template", release, str(CHART)]
    cmd += ["--namespace", namespace] if namespace is not None else []
    cmd += ["--kube-version", kube_version] if kube_version is not None else []
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )


def render(
    *args: str,
    kube_version: str | None = LATEST,
    release: str = RELEASE,
    namespace: str | None = NAMESPACE,
    helm: str | None = None,
) -> Rendered:
    result = helm_template(
        *args, kube_version=kube_version, release=release, namespace=namespace, helm=helm
    )
    assert result.returncode == 0, f"helm template {' '.join(args)} failed:\n{result.stderr}"
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    return Rendered(docs=docs, text=result.stdout)


def render_error(*args: str) -> str:
    """Render expected to fail; returns helm's error output."""
    result = helm_template(*args)
    assert result.returncode != 0, f"render unexpectedly succeeded with {args}"
    return result.stderr


def scenario_args(name: str) -> list[str]:
    """The scenario's values file. A scenario that turns the ServiceMonitor on is rendered as for a
    cluster with the Prometheus Operator: the chart refuses to render it for one without."""
    path = CHART / SCENARIOS[name]
    args = ["--values", str(path)]
    values = yaml.safe_load(path.read_text()) or {}
    if values.get("metrics", {}).get("serviceMonitor", {}).get("enabled"):
        args += ["--api-versions", SERVICE_MONITOR_API]
    return args


def labels_match(selector: dict, labels: dict) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels + In/NotIn/Exists/DoesNotExist)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def pod_labels(doc: dict) -> dict:
    if doc["kind"] == "Pod":
        return doc["metadata"]["labels"]
    return doc["spec"]["template"]["metadata"]["labels"]


def pod_spec_of(workload: dict) -> dict:
    """The pod spec of a Pod, or of a Deployment's, StatefulSet's or Job's pod template."""
    return workload["spec"] if workload["kind"] == "Pod" else workload["spec"]["template"]["spec"]


def containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}
