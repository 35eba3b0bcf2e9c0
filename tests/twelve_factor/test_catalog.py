"""The factor catalog, the tests it names and docs/twelve-factor.md stay in step."""

from __future__ import annotations

import ast
import re

import pytest

from tests.support.paths import REPO
from tests.twelve_factor.catalog import FACTORS

DOC = REPO / "docs" / "twelve-factor.md"


def _functions(path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def _sections() -> dict[int, str]:
    """The doc's `## N. Name` sections, by number."""
    parts = re.split(r"^## (\d+)\. ", DOC.read_text(), flags=re.MULTILINE)
    return {int(number): body for number, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_the_catalog_has_the_twelve_factors_in_order_each_with_its_own_module():
    assert [f.number for f in FACTORS] == list(range(1, 13))
    for factor in FACTORS:
        module = REPO / factor.node_ids[0]
        assert module.name.startswith(f"test_f{factor.number:02d}_")
        assert any(name.startswith("test_") for name in _functions(module)), module


@pytest.mark.parametrize("factor", FACTORS, ids=lambda f: f"factor-{f.number}")
def test_every_linked_test_exists(factor):
    for node_id in (*factor.links, *factor.image):
        path, name = node_id.split("::")
        assert name in _functions(REPO / path), f"{node_id} does not exist"


@pytest.mark.parametrize("factor", FACTORS, ids=lambda f: f"factor-{f.number}")
def test_the_doc_explains_every_factor_and_names_every_proof(factor):
    section = _sections()[factor.number]
    assert section.startswith(factor.name)
    for heading in ("What it asks", "Where this project does it", "See it", "Proof"):
        assert f"**{heading}" in section, f"factor {factor.number}: no {heading!r}"
    for proof in (factor.module, *factor.links, *factor.image):
        assert proof.rsplit("::", 1)[-1].rsplit("/", 1)[-1] in section, proof


def test_the_readme_links_the_doc_and_make_factors():
    readme = (REPO / "README.md").read_text()
    assert "docs/twelve-factor.md" in readme
    assert "make factors" in readme
