"""The chart as source: helm lint, yamllint, documented values, a schema that rejects typos."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from tests.support.chart import CHART, SCENARIOS, render, render_error, tool

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def leaf_keys(node: object, prefix: str = "") -> list[str]:
    """Dotted paths of values.yaml's knobs: maps recurse, lists and empty maps are leaves.
    Free-form maps (resources, annotations, selectors) are documented as one knob."""
    if isinstance(node, dict) and node and not prefix.endswith(("resources", "Annotations")):
        keys: list[str] = []
        for key, value in node.items():
            keys += leaf_keys(value, f"{prefix}.{key}" if prefix else key)
        return keys
    return [prefix]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_helm_lint_strict_passes_for_every_scenario(name: str) -> None:
    result = subprocess.run(
        [tool("helm"), "lint", "--strict", str(CHART), "--values", str(CHART / SCENARIOS[name])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_yamllint_accepts_every_values_file() -> None:
    files = [CHART / "values.yaml", *CHART.glob("values-*.yaml"), *CHART.glob("ci/*.yaml")]
    result = subprocess.run(
        [tool("yamllint"), "--strict", "-c", str(CHART / ".yamllint"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_value_has_a_param_comment_and_every_param_names_a_value() -> None:
    text = (CHART / "values.yaml").read_text()
    documented = set(re.findall(r"^\s*## @param (\S+) ", text, flags=re.MULTILINE))
    knobs = set(leaf_keys(VALUES))
    assert knobs - documented == set(), "values without a ## @param comment"
    assert documented - knobs == set(), "## @param comments naming no value"


def test_readme_values_table_lists_every_param() -> None:
    readme = (CHART / "README.md").read_text()
    text = (CHART / "values.yaml").read_text()
    for key in re.findall(r"^\s*## @param (\S+) ", text, flags=re.MULTILINE):
        assert f"| `{key}` |" in readme, f"{key} missing from chart/README.md's values table"


def test_schema_forbids_unknown_keys_on_every_object_it_defines() -> None:
    open_objects = []

    def walk(node: dict, path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            if node.get("additionalProperties") is not False:
                open_objects.append(path)
            for key, child in node["properties"].items():
                walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(SCHEMA, "")
    assert open_objects == []


def test_schema_describes_every_key_of_values_yaml() -> None:
    def walk(values: dict, schema: dict, path: str) -> None:
        for key, value in values.items():
            assert key in schema.get("properties", {}), f"{path}{key} missing from the schema"
            child = schema["properties"][key]
            if isinstance(value, dict) and "properties" in child:
                walk(value, child, f"{path}{key}.")

    walk(VALUES, SCHEMA, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "replicaCont=3"], "additional properties 'replicaCont' not allowed"),
        (["--set", "web.concurency=3"], "additional properties 'concurency' not allowed"),
        (["--set", "logLevel=verbose"], "/logLevel"),
        (["--set", "migrations.mode=manual"], "/migrations/mode"),
        (["--set", "replicaCount=two"], "/replicaCount"),
        (["--set", "podSecurityContext.runAsUser=0"], "/podSecurityContext/runAsUser"),
        (["--set", "shutdown.preStopAction=wait"], "/shutdown/preStopAction"),
    ],
)
def test_schema_rejects_typos_and_bad_types(args: list[str], message: str) -> None:
    error = render_error(*args)
    assert "values don't meet the specifications of the schema" in error
    assert message in error


def test_chart_app_version_is_the_default_image_tag() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "users-service"
    image = render().one("Deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"users-service:{chart['appVersion']}"


@pytest.mark.parametrize(
    "path",
    [
        "image.repository",
        "image.tag",
        "image.pullPolicy",
        "replicaCount",
        "web.concurrency",
        "web.reload",
        "mysql.enabled",
        "service.port",
        "autoscaling.enabled",
        "ingress.enabled",
        "logLevel",
    ],
)
def test_value_names_other_components_rely_on_exist(path: str) -> None:
    node = VALUES
    for part in path.split("."):
        assert part in node, f"{path} is used by skaffold.yaml / k8s-dev / tests/e2e"
        node = node[part]
