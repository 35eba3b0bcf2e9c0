"""The README and docs/ point at files that exist: every relative Markdown link, and every
`docs/*.md` the Makefile, the Dockerfile and the configs name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+ (.+)$", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_names_an_existing_file_and_heading(page: Path) -> None:
    links = relative_links(page)
    for target in links:
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: {target} does not exist"
        if fragment and file.suffix == ".md":
            prose = FENCE.sub("", file.read_text())
            anchors = {anchor(h) for h in HEADING.findall(prose)}
            assert fragment in anchors, f"{page.name}: no heading for #{fragment} in {file.name}"


def test_the_readme_links_every_page_in_docs() -> None:
    readme_links = {(REPO / t.partition("#")[0]).resolve() for t in relative_links(PAGES[0])}
    for page in PAGES[1:]:
        assert page in readme_links, f"README.md does not link {page.relative_to(REPO)}"


def test_files_that_point_at_docs_name_pages_that_exist() -> None:
    named = set()
    for source in ("Dockerfile", "docker-compose.yml", "skaffold.yaml", "Makefile", ".ci/run"):
        named |= set(re.findall(r"docs/[\w-]+\.md", (REPO / source).read_text()))
    assert named, "no file names a docs/ page"
    for name in sorted(named):
        assert (REPO / name).exists(), name
