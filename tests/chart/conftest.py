"""Fixtures for the chart tests: the real helm binary renders every values scenario once per
session (for each Kubernetes version the chart supports); the files land in a directory that
kubernetes-validate and checkov scan once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.chart import KUBE_VERSIONS, LATEST, SCENARIOS, Rendered, render, scenario_args


@pytest.fixture(scope="session")
def rendered_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rendered")


@pytest.fixture(scope="session")
def renders(rendered_dir: Path) -> dict[tuple[str, str], Rendered]:
    """Every scenario x Kubernetes version, rendered once; one file per object on disk under
    <rendered_dir>/<kube version>/<scenario>/ for the scanners."""
    out: dict[tuple[str, str], Rendered] = {}
    for kube_version in KUBE_VERSIONS:
        for name in SCENARIOS:
            rendered = render(*scenario_args(name), kube_version=kube_version)
            out[name, kube_version] = rendered
            target = rendered_dir / kube_version / name
            target.mkdir(parents=True)
            for index, doc in enumerate(rendered.docs):
                filename = f"{index:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
                (target / filename).write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


@pytest.fixture(scope="session")
def default(renders: dict[tuple[str, str], Rendered]) -> Rendered:
    return renders["default", LATEST]


@pytest.fixture(params=list(SCENARIOS))
def scenario(request: pytest.FixtureRequest, renders: dict) -> Rendered:
    return renders[request.param, LATEST]
