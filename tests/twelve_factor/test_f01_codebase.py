"""Factor I, codebase: one repository, one image, many deploys (dev, staging, prod differ only
in configuration)."""

from __future__ import annotations

import yaml

from tests.support.paths import REPO


def _artifacts(config: dict) -> list[dict]:
    return config.get("build", {}).get("artifacts", [])


def test_every_deploy_builds_the_one_dockerfile_and_runs_the_one_chart():
    configs = list(yaml.safe_load_all((REPO / "skaffold.yaml").read_text()))
    skaffold = next(c for c in configs if c.get("kind") == "Config")
    artifacts = _artifacts(skaffold) + [a for p in skaffold["profiles"] for a in _artifacts(p)]
    assert artifacts, "skaffold builds nothing"
    for artifact in artifacts:
        assert (artifact["image"], artifact.get("context", ".")) == ("users-service", ".")
        assert artifact["docker"]["dockerfile"] == "Dockerfile"
    releases = skaffold["deploy"]["helm"]["releases"] + [
        r
        for p in skaffold["profiles"]
        for r in p.get("deploy", {}).get("helm", {}).get("releases", [])
    ]
    assert {r["chartPath"] for r in releases} == {"chart"}
    assert {p["name"] for p in skaffold["profiles"]} >= {"dev", "staging", "prod"}

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    built = [name for name, svc in compose.items() if "build" in svc]
    assert built == ["api"]
    assert compose["api"]["build"]["context"] == "."
    assert compose["migrate"]["image"] == compose["api"]["image"]

    values = yaml.safe_load((REPO / "chart" / "values.yaml").read_text())
    assert values["image"]["repository"] == "users-service"
    assert len(list(REPO.glob("Dockerfile*"))) == 1
