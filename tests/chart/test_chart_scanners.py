"""Every rendered manifest of every scenario, checked by kubernetes-validate (strict) against the
Kubernetes versions the chart supports, and by checkov (once, over all scenarios)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.chart import (
    KUBE_VERSIONS,
    LATEST,
    SCENARIOS,
    containers,
    pod_spec_of,
    render,
    tool,
)
from tests.support.paths import REPO

# Custom resources kubernetes-validate has no schema for (it warns and skips them).
CRD_KINDS = {"ServiceMonitor"}

CHART_README = REPO / "chart" / "README.md"


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_manifest_validates_strictly_against_kubernetes(
    kube_version: str, renders: dict, rendered_dir: Path
) -> None:
    files = sorted(str(p) for p in (rendered_dir / kube_version).glob("*/*.yaml"))
    assert len(files) >= 10 * len(SCENARIOS)
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", kube_version, *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = (result.stdout + result.stderr).strip().splitlines()
    problems = [
        line
        for line in output
        if not (line.startswith("WARN ") and any(f"kind {k} " in line for k in CRD_KINDS))
    ]
    assert result.returncode == 0 and problems == [], "\n".join(output)


def test_kubernetes_validate_strict_catches_a_misspelled_field(
    renders: dict, rendered_dir: Path, tmp_path: Path
) -> None:
    """Guards the test above: without --strict, unknown fields pass silently."""
    deployment = next((rendered_dir / LATEST / "default").glob("*-Deployment-*.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text(deployment.read_text().replace("readinessProbe", "readynessProbe"))
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", LATEST, str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "readynessProbe" in result.stdout + result.stderr


def any_container(test: Callable[[dict], bool]) -> Callable[[dict], bool]:
    return lambda workload: any(test(c) for c in containers(pod_spec_of(workload)))


@dataclass(frozen=True)
class CheckovException:
    """A checkov check the chart fails on purpose: on which objects, when, and why.

    The chart carries no `checkov.io/skip` annotation: production objects say nothing about a
    scanner. Each exception lives here instead, narrowed to the kinds and names it concerns and to
    the condition of the rendered object (set by the values) under which the check fails."""

    check: str
    kinds: frozenset[str]
    name: str  # a full match of the object's name
    when: Callable[[dict], bool]  # the rendered object fails the check for this reason
    reason: str

    def covers(self, check: str, workload: dict) -> bool:
        return (
            check == self.check
            and workload["kind"] in self.kinds
            and re.fullmatch(self.name, workload["metadata"]["name"]) is not None
            and self.when(workload)
        )


WORKLOADS = frozenset({"Deployment", "StatefulSet", "Job", "Pod"})
RELEASE_OBJECT = r"users-users-service(-mysql|-migrate(-[0-9a-f]{10})?|-test-api)?"
HELM_TEST_POD = r"users-users-service-test-api"
EXCEPTIONS = (
    CheckovException(
        "CKV_K8S_43", WORKLOADS, RELEASE_OBJECT,
        any_container(lambda c: "@sha256:" not in c["image"]),
        "image digest: image.digest and mysql.image.digest are empty by default (images pinned "
        "by tag); set them and the check passes (see the pinned test below)",
    ),
    CheckovException(
        "CKV_K8S_15", WORKLOADS, RELEASE_OBJECT,
        any_container(lambda c: c.get("imagePullPolicy") != "Always"),
        "pullPolicy Always: the policy follows image.pullPolicy / mysql.image.pullPolicy; "
        "IfNotPresent is what images loaded into kind need, and safe with immutable tags",
    ),
    CheckovException(
        "CKV_K8S_40", frozenset({"StatefulSet"}), r"users-users-service-mysql",
        lambda sts: pod_spec_of(sts)["securityContext"]["runAsUser"] < 10000,
        "UID >= 10000: the official mysql image runs mysqld as its own uid 999, owner of its data "
        "directory and of the PVC",
    ),
    CheckovException(
        "CKV_K8S_8", frozenset({"Pod"}), HELM_TEST_POD,
        any_container(lambda c: "livenessProbe" not in c),
        "liveness probe: the helm test pod is one-shot, with no long-running process to probe",
    ),
    CheckovException(
        "CKV_K8S_9", frozenset({"Pod"}), HELM_TEST_POD,
        any_container(lambda c: "readinessProbe" not in c),
        "readiness probe: the helm test pod serves no traffic",
    ),
)  # fmt: skip

# Images pinned by digest and pulled Always: CKV_K8S_43 and CKV_K8S_15 must pass on every workload.
PINNED = "pinned"
DIGEST = "sha256:" + "ab" * 32
PINNED_ARGS = [
    "--set", f"image.digest={DIGEST}", "--set", "image.pullPolicy=Always",
    "--set", f"mysql.image.digest={DIGEST}", "--set", "mysql.image.pullPolicy=Always",
]  # fmt: skip


@pytest.fixture(scope="session")
def checkov_report(renders: dict, rendered_dir: Path) -> dict:
    pinned = rendered_dir / PINNED  # beside <kube version>/, so kubernetes-validate skips it
    pinned.mkdir()
    for index, doc in enumerate(render(*PINNED_ARGS).docs):
        (pinned / f"{index:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml").write_text(
            yaml.safe_dump(doc, sort_keys=False)
        )
    result = subprocess.run(
        [
            tool("checkov"),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
            "--directory",
            str(rendered_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.stdout.strip(), result.stderr
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    # No --quiet here: with it the JSON report leaves out the skipped checks verified below.
    assert report["check_type"] == "kubernetes"
    report["returncode"] = result.returncode
    return report


def failures(report: dict, rendered_dir: Path) -> list[tuple[str, dict, str]]:
    """(check id, the rendered object, its file under rendered_dir) of every failed check."""
    found = []
    for failed in report["results"]["failed_checks"]:
        path = rendered_dir / failed["file_path"].lstrip("/")
        found.append((failed["check_id"], yaml.safe_load(path.read_text()), failed["file_path"]))
    return found


def test_checkov_fails_only_checks_the_exception_table_covers(
    checkov_report: dict, rendered_dir: Path
) -> None:
    uncovered = [
        f"{check} {workload['kind']}/{workload['metadata']['name']} ({path})"
        for check, workload, path in failures(checkov_report, rendered_dir)
        if not any(e.covers(check, workload) for e in EXCEPTIONS)
    ]
    assert uncovered == [], "failed checks no exception covers:\n" + "\n".join(uncovered)
    # Nothing is suppressed in the manifests: every exception is visible above.
    assert checkov_report["results"]["skipped_checks"] == []
    assert checkov_report["summary"]["passed"] > 1000  # it really scanned every scenario
    assert checkov_report["summary"]["parsing_errors"] == 0


def test_every_checkov_exception_is_still_needed(checkov_report: dict, rendered_dir: Path) -> None:
    found = failures(checkov_report, rendered_dir)
    stale = [e.check for e in EXCEPTIONS if not any(e.covers(c, w) for c, w, _ in found)]
    assert stale == [], f"exceptions no failed check needs any more (delete them): {stale}"


def test_pinned_images_pass_the_checks_they_are_excepted_from(
    checkov_report: dict, rendered_dir: Path
) -> None:
    """The image exceptions hold only for the default values: pinned by digest and pulled Always,
    every workload passes CKV_K8S_43 and CKV_K8S_15."""
    passed = {
        (c["check_id"], c["resource"].split(".")[0])
        for c in checkov_report["results"]["passed_checks"]
        if c["file_path"].lstrip("/").startswith(f"{PINNED}/")
    }
    failed = [
        (check, workload["kind"])
        for check, workload, path in failures(checkov_report, rendered_dir)
        if path.lstrip("/").startswith(f"{PINNED}/") and check in {"CKV_K8S_43", "CKV_K8S_15"}
    ]
    assert failed == []
    for kind in ("Deployment", "StatefulSet", "Job", "Pod"):
        assert {("CKV_K8S_43", kind), ("CKV_K8S_15", kind)} <= passed, kind


def test_each_checkov_exception_has_a_reason_and_a_row_in_the_chart_readme() -> None:
    readme = CHART_README.read_text()
    for exception in EXCEPTIONS:
        assert len(exception.reason) > 40, exception.check
        assert f"`{exception.check}`" in readme, (
            f"{exception.check} not explained in chart/README.md"
        )
