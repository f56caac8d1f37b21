"""The README is a two-minute front page that points into the documentation site, and the site builds
with `mkdocs build --strict` (no broken link or anchor), its CLI reference generated from the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import typer
import yaml

from instructsift import registry
from instructsift.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _links(text: str) -> list[str]:
    return [t for t in re.findall(r"\]\(([^)#\s]+)\)", text) if not re.match(r"[a-z]+:", t)]


def _nav_pages() -> set[str]:
    """Every page named in mkdocs.yml's nav, relative to docs/."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def walk(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from walk(value)

    return set(walk(config["nav"]))


def test_readme_is_short_and_names_the_make_commands():
    assert len(README.splitlines()) <= 200
    assert "make demo" in README and "make test" in README
    assert "DESIGN.md" not in README
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", README), "no dates in the README: they belong to benchmark outputs"


def test_the_docs_state_no_dates_they_belong_to_benchmark_outputs():
    for page in sorted((ROOT / "docs").rglob("*.md")):
        found = re.search(r"\b20\d\d-\d\d-\d\d\b", page.read_text(encoding="utf-8"))
        assert not found, f"{page.relative_to(ROOT)}: {found.group(0)}: dates belong to benchmark outputs"


def test_readme_links_resolve_inside_the_repository():
    links = _links(README)
    assert "docs/design.md" in links  # the design, in the repository (it pointed to ../shared/DESIGN.md)
    for target in links:
        path = (ROOT / target).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), target


def test_every_method_has_a_readme_row_linking_its_page_in_the_nav():
    nav = _nav_pages()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([\w-]+)`.*$", README, re.MULTILINE)}
    for entry in registry.entries("method"):
        name = entry.target.name
        assert name in rows, f"no README row for method {name!r}"
        pages = [t for t in _links(rows[name]) if t.startswith("docs/") and t.endswith(".md")]
        assert pages, f"the README row of {name!r} links no docs page"
        for page in pages:
            assert (ROOT / page).exists(), page
            assert page.removeprefix("docs/") in nav, f"{page} is not in mkdocs.yml's nav"
            # the page shows the method's own `instructsift methods NAME` block, filled at build time
            assert f"<!-- methods: {name} -->" in (ROOT / page).read_text(encoding="utf-8"), page


def test_engines_page_says_who_writes_the_ray_score_shards():
    text = (ROOT / "docs" / "engines.md").read_text(encoding="utf-8")
    assert "workers write score" not in text and "the driver writes the score" in text


def test_docs_build_strict_with_the_generated_cli_reference(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    reference = (site / "cli" / "index.html").read_text(encoding="utf-8")
    for name in typer.main.get_command(app).commands:
        assert f"Usage: instructsift {name}" in reference, name
    cherry = (site / "methods" / "cherry" / "index.html").read_text(encoding="utf-8")
    assert "instructsift methods cherry" in cherry and "max_length: 512" in cherry
