"""The README points only inside the repository, and says who writes the Ray engine's score shards."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_links_resolve_inside_the_repository():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = [t for t in re.findall(r"\]\(([^)#\s]+)\)", text) if not re.match(r"[a-z]+:", t)]
    assert "docs/design.md" in links  # the design, in the repository (it pointed to ../shared/DESIGN.md)
    for target in links:
        path = (ROOT / target).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), target
    assert "DESIGN.md" not in text
    assert "workers write score" not in text and "the driver writes the score" in text
