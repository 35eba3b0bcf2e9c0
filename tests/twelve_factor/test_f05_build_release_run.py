"""Factor V, build, release, run: one immutable image is built once; a release is that image plus
a configuration (a Helm revision); every process of a release runs the same image."""

from __future__ import annotations

from tests.support.chart import CHART, Rendered, containers, render

APP_COMPONENTS = {"web", "migrate", "test"}


def _app_images(rendered: Rendered) -> set[str]:
    images = set()
    for doc, spec in rendered.pod_specs():
        labels = (doc.get("spec", {}).get("template", {}) or doc)["metadata"]["labels"]
        if labels.get("app.kubernetes.io/component") in APP_COMPONENTS:
            images |= {c["image"] for c in containers(spec) if "users-service" in c["image"]}
    return images


def _strip(doc: object, drop: set[str]) -> object:
    if isinstance(doc, dict):
        return {k: _strip(v, drop) for k, v in doc.items() if k not in drop}
    if isinstance(doc, list):
        return [_strip(v, drop) for v in doc]
    return doc


def _without(doc: dict, drop: set[str]) -> object:
    """The document with every mapping key in `drop` removed, recursively, and the migration
    Job's name (hashed from the release's image and config, so that each release runs its own
    Job) replaced by a placeholder."""
    doc = _strip(doc, drop)
    if doc["kind"] == "Job":
        doc["metadata"]["name"] = "<per release>"
    return doc


def test_a_release_is_the_one_image_plus_config():
    values = ["--values", str(CHART / "values-staging.yaml")]
    one = render(*values, "--set", "image.tag=1.0.0")
    other_image = render(*values, "--set", "image.tag=1.1.0")
    other_config = render(*values, "--set", "image.tag=1.0.0", "--set", "web.maxBodyBytes=131072")

    assert _app_images(one) == {"users-service:1.0.0"}  # web, the migration Job, helm's test
    assert _app_images(other_image) == {"users-service:1.1.0"}
    assert _app_images(other_config) == {"users-service:1.0.0"}

    # A new image changes the image fields and the version labels, nothing else.
    version_fields = {"image", "app.kubernetes.io/version", "helm.sh/chart"}
    assert [_without(d, version_fields) for d in one.docs] == [
        _without(d, version_fields) for d in other_image.docs
    ]
    # New config changes the ConfigMap and the checksum that rolls the pods, not the image.
    changed = {d["kind"] for d, e in zip(one.docs, other_config.docs, strict=True) if d != e}
    assert "ConfigMap" in changed
    assert one.job["metadata"]["name"] != other_image.job["metadata"]["name"]
    config_fields = {"MAX_BODY_BYTES", "checksum/config"}
    for before, after in zip(one.docs, other_config.docs, strict=True):
        if before["kind"] != "ConfigMap":
            assert _without(before, config_fields) == _without(after, config_fields)
