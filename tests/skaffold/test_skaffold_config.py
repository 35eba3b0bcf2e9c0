"""skaffold.yaml and k8s-dev/ checked offline: no skaffold binary, no cluster.

What a skaffold run would trip over first is pinned here: the official v4beta13 JSON schema, every
path the config names, the image wiring between the build artifact and the chart, the profile
layout (no index-based JSON patches), and the kind/NodePort plumbing rendered with the real chart.
"""

from __future__ import annotations

import copy
import functools
import glob
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

from tests.support.chart import helm_template as chart_template
from tests.support.chart import render
from tests.support.paths import REPO
from tests.support.tools import require_tool as tool

# The official schema, vendored byte for byte (tests/skaffold/schemas/README.md says from where).
SCHEMA = Path(__file__).with_name("schemas") / "skaffold-v4beta13.json"
SCHEMA_GIT_BLOB = "7e1cc33dbf7fdf9afd89fcd3c617b004bfaa9d50"  # git hash-object of that file
YAMLLINT_CONFIG = Path(__file__).with_name("yamllint.yaml")
RELEASE = "users"
ARTIFACT = "users-service"
EXPECTED_PROFILES = {
    "dev": "chart/values-dev.yaml",
    "staging": "chart/values-staging.yaml",
    "prod": "chart/values-prod.yaml",
}


@functools.cache
def skaffold() -> dict:
    return yaml.safe_load((REPO / "skaffold.yaml").read_text())


def profile(name: str) -> dict:
    return next(p for p in skaffold()["profiles"] if p["name"] == name)


def base_artifact() -> dict:
    (artifact,) = skaffold()["build"]["artifacts"]
    return artifact


def all_releases() -> list[tuple[str, dict]]:
    """(where, release) for the base config and every profile that restates deploy.helm."""
    found = [("base", r) for r in skaffold()["deploy"]["helm"]["releases"]]
    for p in skaffold()["profiles"]:
        for r in p.get("deploy", {}).get("helm", {}).get("releases", []):
            found.append((f"profile {p['name']}", r))
    return found


def all_artifacts() -> list[tuple[str, dict]]:
    found = [("base", a) for a in skaffold()["build"]["artifacts"]]
    for p in skaffold()["profiles"]:
        for a in p.get("build", {}).get("artifacts", []):
            found.append((f"profile {p['name']}", a))
    return found


def template_suffix(image: str) -> str:
    """skaffold's helm template variable suffix: '/', '-' and '.' of the artifact become '_'."""
    return re.sub(r"[/.\-]", "_", image)


@functools.cache
def helm_template(*args: str) -> tuple[dict, ...]:
    return tuple(render(*args, release=RELEASE, namespace=None, kube_version=None).docs)


def find(docs: tuple[dict, ...], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def set_flags(values: dict[str, str]) -> list[str]:
    return [f"--set={k}={v}" for k, v in values.items()]


def kind_render() -> tuple[dict, ...]:
    return helm_template(
        "-f",
        "chart/values-dev.yaml",
        "-f",
        "k8s-dev/values-kind.yaml",
        "--set",
        "image.tag=dev-0123456789ab",
    )


def web_deployment(docs: tuple[dict, ...]) -> dict:
    deployments = find(docs, "Deployment")
    assert len(deployments) == 1, [d["metadata"]["name"] for d in deployments]
    return deployments[0]


def app_container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if any(p.get("name") == "http" for p in c.get("ports", [])))


def container_env(docs: tuple[dict, ...], container: dict) -> dict[str, str | None]:
    """The container's environment: envFrom ConfigMaps of the same render, then env entries."""
    config_maps = {c["metadata"]["name"]: c.get("data", {}) for c in find(docs, "ConfigMap")}
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
    env.update({e["name"]: e.get("value") for e in container.get("env", [])})
    return env


# --- schema -------------------------------------------------------------------------------------


def test_the_vendored_schema_is_the_official_file_byte_for_byte():
    data = SCHEMA.read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's id
    assert blob == SCHEMA_GIT_BLOB, f"{SCHEMA} differs from skaffold's published v4beta13.json"


@pytest.fixture(scope="module")
def schema_validator():
    schema = json.loads(SCHEMA.read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def test_skaffold_yaml_is_valid_against_the_official_v4beta13_schema(schema_validator):
    config = skaffold()
    assert config["apiVersion"] == "skaffold/v4beta13"
    assert config["kind"] == "Config"
    errors = sorted(schema_validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_schema_check_rejects_a_misspelled_field(schema_validator):
    # Guards the test above: a schema (or validator) that accepts anything would pass it vacuously.
    config = copy.deepcopy(skaffold())
    config["deploy"]["helm"]["releases"][0]["valueFiles"] = ["chart/values-dev.yaml"]
    assert not schema_validator.is_valid(config)


# --- paths ----------------------------------------------------------------------------------------


def test_every_artifact_builds_from_an_existing_dockerfile():
    for where, artifact in all_artifacts():
        context = REPO / artifact.get("context", ".")
        dockerfile = context / artifact["docker"].get("dockerfile", "Dockerfile")
        assert context.is_dir(), f"{where}: context {context} missing"
        assert dockerfile.is_file(), f"{where}: {dockerfile} missing"


def test_every_release_points_at_the_chart_and_existing_values_files():
    for where, release in all_releases():
        chart = REPO / release["chartPath"]
        assert (chart / "Chart.yaml").is_file(), f"{where}: no chart at {chart}"
        assert yaml.safe_load((chart / "Chart.yaml").read_text())["name"] == "users-service"
        for values in release.get("valuesFiles", []):
            assert (REPO / values).is_file(), f"{where}: values file {values} missing"


def test_sync_sources_match_python_files_of_the_service_package():
    rules = [(w, r) for w, a in all_artifacts() for r in a.get("sync", {}).get("manual", [])]
    assert rules, "no manual sync rule anywhere"
    for where, rule in rules:
        matches = glob.glob(rule["src"], root_dir=REPO, recursive=True)
        assert matches, f"{where}: sync src {rule['src']!r} matches no file"
        assert all(m.endswith(".py") and m.startswith("service/") for m in matches)


def dockerfile_app_service_dir() -> str:
    """Where the final stage of the Dockerfile puts the service/ package (absolute path)."""
    lines = (REPO / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    workdir, service_dir = "/", None
    for raw in lines:
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "FROM":
            workdir, service_dir = "/", None
        elif instruction == "WORKDIR":
            workdir = posixpath.join(workdir, words[1])
        elif instruction in {"COPY", "ADD"}:
            args = [w for w in words[1:] if not w.startswith("--")]
            if len(args) < 2:
                continue
            *sources, dest = args
            dest = posixpath.normpath(posixpath.join(workdir, dest))
            normalized = {posixpath.normpath(s) for s in sources}
            if "service" in normalized:
                service_dir = dest if len(sources) == 1 else posixpath.join(dest, "service")
            elif "." in normalized:
                service_dir = posixpath.join(dest, "service")
    assert service_dir, "the Dockerfile's final stage never copies service/"
    return service_dir


def test_sync_destination_is_where_the_image_keeps_the_service_package():
    # skaffold keeps the matched file's path below the context: service/x.py -> <dest>/service/x.py
    app_dir = dockerfile_app_service_dir()
    for where, artifact in all_artifacts():
        for rule in artifact.get("sync", {}).get("manual", []):
            assert not rule.get("strip"), f"{where}: strip would drop the service/ prefix"
            landed = posixpath.normpath(posixpath.join(rule["dest"], "service"))
            assert landed == app_dir, f"{where}: syncs into {landed}, image has {app_dir}"


# --- image wiring and profiles --------------------------------------------------------------------


def test_the_one_artifact_is_users_service_and_every_release_gets_its_repo_and_tag():
    images = {a["image"] for _, a in all_artifacts()}
    assert images == {ARTIFACT}
    suffix = template_suffix(ARTIFACT)
    assert suffix == "users_service"
    for where, release in all_releases():
        templates = release.get("setValueTemplates", {})
        assert templates.get("image.repository") == f"{{{{.IMAGE_REPO_{suffix}}}}}", where
        assert templates.get("image.tag") == f"{{{{.IMAGE_TAG_{suffix}}}}}", where


def test_profiles_dev_staging_prod_each_deploy_one_release_with_their_own_values_file():
    names = [p["name"] for p in skaffold()["profiles"]]
    assert len(names) == len(set(names))
    assert set(EXPECTED_PROFILES) <= set(names)
    (base,) = skaffold()["deploy"]["helm"]["releases"]
    for name, values_file in EXPECTED_PROFILES.items():
        (release,) = profile(name)["deploy"]["helm"]["releases"]
        assert release["name"] == base["name"] == RELEASE, name
        assert release["chartPath"] == base["chartPath"] == "chart", name
        assert release["valuesFiles"] == [values_file], name


def test_profiles_never_patch_by_array_index_and_never_auto_activate():
    for p in skaffold()["profiles"]:
        for patch in p.get("patches", []):
            for field in ("path", "from"):
                segments = patch.get(field, "").split("/")
                assert not any(s.isdigit() or s == "-" for s in segments), (p["name"], patch)
        # Activations stack on top of -p; with every profile restating deploy.helm the
        # result would depend on profile order.
        assert "activation" not in p, p["name"]


def test_dev_profile_reloads_gunicorn_and_syncs_while_other_profiles_do_not():
    (dev,) = profile("dev")["deploy"]["helm"]["releases"]
    assert str(dev["setValues"]["web.reload"]).lower() == "true"
    for name in ("staging", "prod"):
        (release,) = profile(name)["deploy"]["helm"]["releases"]
        assert str(release.get("setValues", {}).get("web.reload", "false")).lower() == "false"
        assert "build" not in profile(name), f"{name} must build exactly like the base"
    assert "sync" not in base_artifact(), "sync belongs to the dev profile (only it reloads)"


def test_dev_profile_artifact_is_the_base_artifact_plus_sync():
    (dev_artifact,) = profile("dev")["build"]["artifacts"]
    assert {k: v for k, v in dev_artifact.items() if k != "sync"} == base_artifact()


# --- rendered with the real chart ---------------------------------------------------------------


# skaffold deploys with `helm upgrade --install`, where Capabilities come from the cluster. Offline,
# render as for a cluster with the Prometheus Operator: the prod values turn the ServiceMonitor on,
# and the chart refuses to render it for a cluster without its CRD.
CLUSTER_API_VERSIONS = ("--api-versions", "monitoring.coreos.com/v1/ServiceMonitor")


def release_args(release: dict) -> list[str]:
    """helm flags of a skaffold release: its values files, then its setValues."""
    args = [a for f in release["valuesFiles"] for a in ("-f", f)]
    return [*args, *set_flags(release.get("setValues", {})), *CLUSTER_API_VERSIONS]


def test_profile_values_render_and_dev_turns_on_web_reload_in_the_container():
    for name in EXPECTED_PROFILES:
        (release,) = profile(name)["deploy"]["helm"]["releases"]
        args = release_args(release)
        args += ["--set=image.repository=users-service", "--set=image.tag=skaffold-test"]
        docs = helm_template(*args)
        container = app_container(web_deployment(docs))
        assert container["image"] == "users-service:skaffold-test", name
        reload = container_env(docs, container).get("WEB_RELOAD")
        assert (reload == "true") == (name == "dev"), f"{name}: WEB_RELOAD={reload!r}"


def dev_profile_render() -> tuple[dict, ...]:
    (release,) = profile("dev")["deploy"]["helm"]["releases"]
    return helm_template(*release_args(release))


def test_port_forward_and_verify_target_the_release_service_on_port_80():
    services = {s["metadata"]["name"]: s for s in find(dev_profile_render(), "Service")}
    deployment = web_deployment(dev_profile_render())
    (forward,) = skaffold()["portForward"]
    assert forward["resourceType"].lower() == "service"
    assert forward["resourceName"] == deployment["metadata"]["name"] == f"{RELEASE}-users-service"
    service = services[forward["resourceName"]]
    assert forward["port"] in [p["port"] for p in service["spec"]["ports"]]
    assert (forward["port"], forward["localPort"]) == (80, 8080)

    (verify,) = skaffold()["verify"]
    assert verify["container"]["image"] == ARTIFACT, "verify must run the image skaffold built"
    assert "kubernetesCluster" in verify["executionMode"], "Service DNS only resolves in-cluster"
    assert "command" not in verify["container"]  # the image's ENTRYPOINT `python -m service`
    smoke, wait, seconds, url = verify["container"]["args"]
    assert (smoke, wait) == ("smoke", "--wait")
    assert int(seconds) < verify["timeout"]
    assert url == f"http://{forward['resourceName']}"


def test_verify_job_pod_is_admitted_by_the_web_network_policy_of_every_profile():
    (verify,) = skaffold()["verify"]
    overrides = json.loads(verify["executionMode"]["kubernetesCluster"]["overrides"])
    assert set(overrides) == {"spec"}, "only pod labels may be overridden"
    labels = overrides["spec"]["template"]["metadata"]["labels"]
    for name in EXPECTED_PROFILES:
        (release,) = profile(name)["deploy"]["helm"]["releases"]
        docs = helm_template(*release_args(release))
        web = web_deployment(docs)
        web_labels = web["spec"]["template"]["metadata"]["labels"]
        for policy in find(docs, "NetworkPolicy"):
            selector = policy["spec"]["podSelector"].get("matchLabels", {})
            if not selector.items() <= web_labels.items():
                continue  # not a policy of the web pods
            rules = [r for r in policy["spec"].get("ingress", []) if "from" in r]
            admitted = not rules or any(
                peer.get("podSelector", {}).get("matchLabels", {}).items() <= labels.items()
                and "namespaceSelector" not in peer
                for rule in rules
                for peer in rule["from"]
            )
            assert admitted, f"{name}: {policy['metadata']['name']} would block the verify Job"


def test_kind_values_expose_the_service_as_nodeport_30080_published_on_loopback_30080():
    kind = yaml.safe_load((REPO / "k8s-dev/kind.yaml").read_text())
    assert kind["name"] == "users-dev"
    (mapping,) = [m for n in kind["nodes"] for m in n.get("extraPortMappings", [])]
    assert {"containerPort": 30080, "hostPort": 30080, "listenAddress": "127.0.0.1"}.items() <= (
        mapping.items()
    )
    (service,) = [s for s in find(kind_render(), "Service") if s["spec"].get("type") == "NodePort"]
    (port,) = service["spec"]["ports"]
    assert port["nodePort"] == mapping["containerPort"] == mapping["hostPort"]
    assert port["port"] == 80
    container = app_container(web_deployment(kind_render()))
    http = next(p for p in container["ports"] if p["name"] == "http")
    assert http["containerPort"] == 5000
    assert port["targetPort"] in ("http", 5000)


def kind_yaml_text() -> str:
    return (REPO / "k8s-dev/kind.yaml").read_text()


KIND_NODE_IMAGE = re.compile(r"kindest/node:v(?P<version>\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}")


def chart_renders_for(kube_version: str) -> subprocess.CompletedProcess:
    """helm itself checks chart/Chart.yaml's kubeVersion constraint against --kube-version."""
    return chart_template(release=RELEASE, namespace=None, kube_version=kube_version)


def test_kind_node_image_is_pinned_by_digest_to_a_version_the_chart_supports():
    kind = yaml.safe_load((REPO / "k8s-dev/kind.yaml").read_text())
    images = [node.get("image", "") for node in kind["nodes"]]
    matches = [KIND_NODE_IMAGE.fullmatch(image) for image in images]
    assert all(matches), f"not kindest/node:vX.Y.Z@sha256:<digest>: {images}"
    chart = yaml.safe_load((REPO / "chart/Chart.yaml").read_text())
    assert chart["kubeVersion"], "chart/Chart.yaml declares no kubeVersion"
    for version in {m["version"] for m in matches}:
        out = chart_renders_for(version)
        assert out.returncode == 0, f"{version} vs kubeVersion {chart['kubeVersion']}: {out.stderr}"


def test_chart_kube_version_check_rejects_a_too_old_kubernetes():
    # Guards the test above: helm must really compare against the constraint.
    out = chart_renders_for("1.28.15")
    assert out.returncode != 0 and "kubeVersion" in out.stderr, out.stderr


def test_kind_values_run_the_kind_loaded_image_without_pulling_and_without_hpa():
    docs = kind_render()
    container = app_container(web_deployment(docs))
    assert container["image"] == "users-service:dev-0123456789ab"
    assert container.get("imagePullPolicy") in ("IfNotPresent", "Never")
    assert not find(docs, "HorizontalPodAutoscaler"), "an HPA would undo `kubectl scale`"


def test_the_deploy_scripts_selector_picks_exactly_the_web_deployment_the_readme_scales():
    out = subprocess.run(
        ["bash", "-c", 'source k8s-dev/lib.sh && echo "$WEB_SELECTOR"'],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "RELEASE": RELEASE},
    )
    assert out.returncode == 0, out.stderr
    selector = dict(pair.split("=", 1) for pair in out.stdout.strip().split(","))
    selected = [
        d["metadata"]["name"]
        for d in find(kind_render(), "Deployment")
        if selector.items() <= d["metadata"]["labels"].items()
    ]
    assert selected == [f"{RELEASE}-users-service"]
    readme = (REPO / "k8s-dev/README.md").read_text()
    assert f"deployment/{RELEASE}-users-service --replicas=3" in readme


# --- scripts and lint ---------------------------------------------------------------------------


SCRIPTS = ["k8s-dev/kind-up.sh", "k8s-dev/deploy.sh", "k8s-dev/kind-down.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_k8s_dev_script_is_strict_executable_bash(script):
    path = REPO / script
    assert os.access(path, os.X_OK), f"{script} is not executable (make calls it directly)"
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def test_kind_up_says_in_one_line_per_tool_what_is_missing_and_how_to_get_it(tmp_path):
    # A PATH with bash and coreutils but neither kind nor docker.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("bash", "dirname", "grep", "cat"):
        found = shutil.which(name)
        assert found
        (bindir / name).symlink_to(found)
    out = subprocess.run(
        [str(bindir / "bash"), str(REPO / "k8s-dev/kind-up.sh")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": str(bindir), "HOME": str(tmp_path)},
    )
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    missing = {line.split("'")[1] for line in lines}
    assert {"kind", "docker"} <= missing, out.stderr
    assert all("not found:" in line for line in lines), out.stderr
    assert any("kind.sigs.k8s.io" in line for line in lines)


def test_yaml_files_are_yamllint_clean():
    files = [
        REPO / "skaffold.yaml",
        *sorted((REPO / "k8s-dev").glob("*.yaml")),
        *sorted((REPO / ".github/workflows").glob("*.yml")),
    ]
    out = subprocess.run(
        [tool("yamllint"), "--strict", "-c", str(YAMLLINT_CONFIG), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_e2e_workflow_creates_the_kind_cluster_from_k8s_dev_and_runs_the_suite():
    workflow = yaml.safe_load((REPO / ".github/workflows/e2e-kind.yml").read_text())
    steps = workflow["jobs"]["e2e"]["steps"]
    kind = next(s for s in steps if s.get("uses", "").startswith("helm/kind-action@"))
    assert kind["with"]["config"] == "k8s-dev/kind.yaml"
    assert (REPO / kind["with"]["config"]).is_file()
    # the kind release whose notes list the node image kind.yaml pins (named in its comment)
    (release,) = set(re.findall(r"releases/tag/(v\d+\.\d+\.\d+)", kind_yaml_text()))
    assert kind["with"].get("version") == release, "the action's default kind is older"
    runs = "\n".join(s.get("run", "") for s in steps)
    for needed in ("make tools", "make venv", "docker build", "kind load docker-image"):
        assert needed in runs, needed
    suite = next(s for s in steps if "tests/e2e" in s.get("run", ""))
    assert suite["env"]["E2E_KUBE_CONTEXT"] == "kind-${{ env.KIND_CLUSTER }}"
    assert set(suite["env"]) >= {"E2E_KUBE_CONTEXT", "E2E_IMAGE"}
