"""Factor X, dev/prod parity: local, staging and prod run the same chart, the same processes
and the same MySQL family; they differ in sizes and endpoints, not in kind."""

from __future__ import annotations

from tests.support.chart import CHART, SERVICE_MONITOR_API, containers, render
from tests.support.paths import REPO

ENVIRONMENTS = {
    "dev": CHART / "values-dev.yaml",
    "staging": CHART / "values-staging.yaml",
    "prod": CHART / "values-prod.yaml",
    "local cluster": REPO / "k8s-dev" / "values-local.yaml",
    "kind": REPO / "k8s-dev" / "values-kind.yaml",
}


def _web_shape(values) -> tuple:
    """What a web pod is, leaving out what configuration may size or point elsewhere."""
    rendered = render("--values", str(values), "--api-versions", SERVICE_MONITOR_API)
    spec = rendered.deployment["spec"]["template"]["spec"]
    shape = []
    for c in containers(spec):
        probes = tuple(
            (kind, c[kind]["httpGet"]["path"])
            for kind in ("startupProbe", "livenessProbe", "readinessProbe")
            if kind in c
        )
        env_names = tuple(sorted(e["name"] for e in c.get("env", [])))
        shape.append((c["name"], str(c.get("args")), probes, env_names, str(c["securityContext"])))
    return tuple(shape), str(spec["securityContext"])


def test_every_environment_runs_the_same_web_pod_from_the_same_chart():
    shapes = {name: _web_shape(values) for name, values in ENVIRONMENTS.items()}
    reference = shapes["prod"]
    for name, shape in shapes.items():
        # dev's WEB_RELOAD (skaffold's file sync) is configuration in the ConfigMap, not the pod
        assert shape == reference, f"{name} differs from prod"
