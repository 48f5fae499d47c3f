"""The README a new user starts from: its contents list leads to every section."""

from __future__ import annotations

import re
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]


def _slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading: lower case, spaces as
    hyphens, punctuation dropped."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _readme() -> str:
    return (REPO_DIR / "README.md").read_text()


def _headings(text: str, level: str) -> list[str]:
    # Lines starting with '#' inside code blocks are comments, not headings.
    outside_code = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.findall(rf"^{level} (.+)$", outside_code, flags=re.M)


def test_every_link_within_the_readme_leads_to_one_of_its_headings():
    text = _readme()
    anchors = {_slug(h) for level in ("##", "###") for h in _headings(text, level)}
    links = re.findall(r"\]\(#([^)]+)\)", text)

    assert links, "the README has a contents list"
    assert sorted(set(links) - anchors) == []


def test_the_contents_list_names_every_section():
    text = _readme()
    links = set(re.findall(r"\]\(#([^)]+)\)", text))

    assert [h for h in _headings(text, "##") if _slug(h) not in links] == []
