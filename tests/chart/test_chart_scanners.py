"""Every rendered manifest of every scenario, checked by kubernetes-validate (strict) against the
Kubernetes versions the chart supports, and by checkov (once, over all scenarios)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.chart import KUBE_VERSIONS, LATEST, SCENARIOS, tool

# Custom resources kubernetes-validate has no schema for (it warns and skips them).
CRD_KINDS = {"ServiceMonitor"}

# Skips the chart writes as checkov.io/skipN annotations, each with its reason.
ALLOWED_SKIPS = {
    "CKV_K8S_43",  # image digest: tags by default, image.digest available
    "CKV_K8S_15",  # pullPolicy Always: follows image.pullPolicy (IfNotPresent for kind)
    "CKV_K8S_40",  # high UID: the official mysql image's uid 999
    "CKV_K8S_8",  # liveness probe on the one-shot helm test pod
    "CKV_K8S_9",  # readiness probe on the one-shot helm test pod
}


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


@pytest.fixture(scope="session")
def checkov_report(renders: dict, rendered_dir: Path) -> dict:
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


def test_checkov_finds_no_failed_check_in_any_scenario(checkov_report: dict) -> None:
    failed = [
        f"{c['check_id']} {c['resource']} {c['file_path']}"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []
    assert checkov_report["summary"]["failed"] == 0
    assert checkov_report["summary"]["passed"] > 1000  # it really scanned every scenario
    assert checkov_report["summary"]["parsing_errors"] == 0
    assert checkov_report["returncode"] == 0


def test_checkov_skips_are_only_the_documented_ones_with_reasons(checkov_report: dict) -> None:
    skipped = checkov_report["results"]["skipped_checks"]
    assert {c["check_id"] for c in skipped} <= ALLOWED_SKIPS
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment") or "") > 20, check["check_id"]
    readme = (Path(__file__).resolve().parents[2] / "chart" / "README.md").read_text()
    for check_id in ALLOWED_SKIPS:
        assert check_id in readme, f"{check_id} skip not explained in chart/README.md"
