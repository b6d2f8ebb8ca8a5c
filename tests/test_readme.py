"""The README's map names real files, and its links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_path_in_the_readme_exists() -> None:
    named = set(re.findall(r"`((?:streams|models|state|deploy|docs|bench|tests)/[\w./-]+)`", README))
    assert len(named) > 20, "the map names the files behind the flow"
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert missing == []


def test_every_link_in_the_readme_and_docs_leads_to_a_file() -> None:
    for document in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = document.read_text(encoding="utf-8")
        for target in re.findall(r"\]\((?!https?:|#|mailto:)([^)#]+)", text):
            assert (document.parent / target).exists(), f"{document.relative_to(REPO)} links to {target}"


def test_the_readme_starts_with_the_two_commands() -> None:
    first_block = README[README.index("```bash") : README.index("```", README.index("```bash") + 3)]
    assert "make run" in first_block
    assert "make test" in first_block
