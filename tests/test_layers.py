"""Imports run downwards: no import cycle among instructsift's modules, and no module importing one of a
higher layer. Every import counts, a function's own (lazy) imports too: a lazy import keeps a heavy
library out of start-up, it does not make an upward arrow right. Read with `ast`; nothing is imported."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "instructsift"

# The layers, lowest first: a module may import its own layer's and lower layers' modules, never a higher
# one's. A unit is a top-level module or subpackage of instructsift; every unit must stand in a layer.
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"atomic", "progress", "errors", "data"}),
    ("registry and models", {"registry", "models"}),
    ("scorers", {"scoring"}),
    ("selectors, fit steps, engines", {"selection", "train", "engine", "accounting", "outputs", "card"}),
    ("methods", {"methods"}),
    ("python api and recipes", {"api", "recipe"}),
    ("report", {"report"}),
    ("pipeline", {"pipeline"}),
    ("experiments", {"experiments"}),
    ("command line", {"cli"}),
]
# Packages on one side of the layers that must not import each other although the layers alone would allow
# it (DESIGN.md): a method writes recipe steps and names a fit step by its registry name, it never imports
# the trainer; nor does it reach the experiments above it.
NEVER: list[tuple[str, str]] = [("methods", "train"), ("methods", "experiments"), ("train", "experiments")]
FACE = "instructsift"  # the package's __init__: it hands names on lazily; importing it is importing the root


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package under `root`."""
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: Iterable[str]) -> set[str]:
    """The instructsift modules `name` imports anywhere in its source (`from . import x` naming a module
    counts as that module; `from .x import y` as `.x`)."""
    known = set(modules)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - (0 if is_package else 1)]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]
        for t in targets:
            while t not in known and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in known and t != name:
                found.add(t)
    return found


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = module_names(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else FACE


def layer_of(module: str) -> int | None:
    u = unit(module)
    return next((i for i, (_, units) in enumerate(LAYERS) if u in units), None)


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Each import from a lower layer's module to a higher layer's, as 'a -> b (layer -> layer)'."""
    out = []
    for a, targets in sorted(edges.items()):
        la = layer_of(a)
        for b in sorted(targets):
            lb = layer_of(b)
            if FACE in (unit(a), unit(b)) or la is None or lb is None:
                continue
            if lb > la:
                out.append(f"{a} -> {b} ({LAYERS[la][0]} -> {LAYERS[lb][0]})")
    return out


def unit_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, targets in edges.items():
        out.setdefault(unit(a), set()).update(unit(b) for b in targets if unit(b) != unit(a))
    return out


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    return graph()


def test_every_unit_has_a_layer(edges):
    placed = set().union(*(units for _, units in LAYERS))
    missing = sorted({unit(m) for m in edges} - placed - {FACE})
    assert not missing, f"put these in a layer of tests/test_layers.py: {missing}"


def test_no_import_cycle_between_modules(edges):
    found = cycles(edges)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)


def test_no_import_cycle_between_packages(edges):
    """`methods/` and `train/` (or any two top-level packages) never import each other, not even through
    different modules."""
    found = cycles(unit_edges(edges))
    assert not found, "cycles between packages: " + "; ".join(" <-> ".join(sorted(c)) for c in found)


def test_imports_run_downwards(edges):
    found = upward(edges)
    assert not found, "imports from a lower layer to a higher one:\n" + "\n".join(found)


def test_methods_never_import_train_or_experiments(edges):
    """`methods/` writes recipes: it names the `finetune` fit step (Cherry's pre-experience) by its registry
    name and imports neither `train/` nor `experiments/`, lazily or not; `train/` never imports
    `experiments/`."""
    found = [f"{a} -> {b}" for a, targets in sorted(edges.items()) for b in sorted(targets)
             if (unit(a), unit(b)) in NEVER]  # fmt: skip
    assert not found, "imports DESIGN.md rules out:\n" + "\n".join(found)


def test_the_registry_loads_steps_only_from_below_the_recipes():
    """`registry.load_all` imports every module of `registry.PACKAGES` (an import the graph above cannot
    see): each of them stands below the layers that name steps (recipes, the pipeline), so no fit step is
    registered from `experiments/` or higher."""
    from instructsift import registry

    names = [name for name, _ in LAYERS]
    recipes = names.index("python api and recipes")
    above = [p for p in registry.PACKAGES if (i := layer_of(f"instructsift.{p}")) is None or i >= recipes]
    assert not above, f"registry.PACKAGES loads steps from a layer at or above the recipes: {above}"
    registry.load_all()
    for kind in ("score", "select", "fit", "method"):
        for entry in registry.entries(kind):
            home = getattr(entry.target, "__module__", None) or type(entry.target).__module__
            if kind == "method":
                home = entry.target.steps.__module__
            assert unit(home) in registry.PACKAGES, f"{kind} {entry.name!r} is registered from {home}"


def test_the_checks_see_a_violation(tmp_path):
    """The reader finds a lazy upward import and a cycle (a package written for the purpose)."""
    pkg = tmp_path / "instructsift"
    (pkg / "scoring").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "scoring" / "__init__.py").write_text("")
    (pkg / "scoring" / "base.py").write_text("def f():\n    from ..pipeline import run\n")
    (pkg / "pipeline.py").write_text("from .scoring import base\nfrom . import recipe\n")
    (pkg / "recipe.py").write_text("import instructsift.pipeline\n")
    found = graph(pkg)
    assert found["instructsift.scoring.base"] == {"instructsift.pipeline"}
    assert "instructsift.scoring.base -> instructsift.pipeline (scorers -> pipeline)" in upward(found)
    assert cycles(found) == [{"instructsift.pipeline", "instructsift.recipe", "instructsift.scoring.base"}]
