"""A step declares everything about itself (issue 23): no file outside it names its options, chunk sizes,
resource needs or class. Recipes resolve paths from the kinds declared on the steps' fields (`registry.Kind`),
both engines read the chunk sizes the scorers declare, the Ray engine the resources they declare, and `recipe.py`, `engine/` and `accounting.py` name no step,
step class or option (read with `ast`; nothing there is imported for the check)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from instructsift import recipe, registry
from instructsift.engine import local
from instructsift.engine import ray as ray_engine
from instructsift.scoring.base import LIGHT, MODEL, Resources, chunk_for, resources_of

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "instructsift"
CLI = sorted((PACKAGE / "cli").glob("*.py"))
CHECKED = [PACKAGE / "recipe.py", PACKAGE / "accounting.py", *sorted((PACKAGE / "engine").glob("*.py")), *CLI]
SAMPLE = ROOT / "examples" / "sample_alpaca.json"

# Words that are both a step's option and the recipe's own syntax or settings, allowed in recipe.py only
# (anywhere else, or any other option name, is a file naming a step's option).
RECIPE_WORDS = {
    "on": "a fit step's `on:` (its selectors), one of the recipe's step keys",
    "method": "the step kind `method: NAME`, one of the recipe's step keys",
    "scores": "the recipe setting `scores:` (where the score table is written)",
}


# Words of `cli/` that are a step's name or option but name something else there, by module (the command
# line's own vocabulary); anywhere else they are a module naming a step.
CLI_WORDS = {
    ("data_cmds.py", "score"): "the command `score`, and the registry's kind `score` (scorers)",
    ("data_cmds.py", "method"): "the registry's kind `method` (`methods` lists them)",
    ("options.py", "method"): "the registry's kind `method` (--method's help names them)",
    ("method_options.py", "method"): "the registry's kind `method` (their options are generated)",
    ("data_cmds.py", "scores"): "the recipe setting `scores:` (the score table select writes or reads)",
    ("data_cmds.py", "trained_tokens"): "experiments.length's count of a run's trained tokens (the summary line)",
    ("train_cmds.py", "finetune"): "the command `finetune`, whose options the fit step of that name generates",
    ("train_cmds.py", "model"): "an output's kind for `_check_paths`: a model folder (instructsift.outputs)",
}


def declared_names() -> tuple[dict[str, str], dict[str, str]]:
    """(step names, aliases and classes -> what they are; option names -> a step that takes it)."""
    steps: dict[str, str] = {}
    options: dict[str, str] = {}
    for kind in registry.KINDS:
        for entry in registry.entries(kind):
            steps[entry.name] = f"the {registry.KIND_NAMES[kind]} {entry.name!r}"
            steps.update({a: f"an alias of {entry.name!r}" for a in entry.aliases})
            if kind != "method":
                steps[entry.target.__name__] = f"the class of {entry.name!r}"
            options.update({o: f"an option of {entry.name!r}" for o in entry.params.model_fields})
    return steps, options


def _exported(tree: ast.AST) -> set[int]:
    """ids of the string nodes of `__all__ = [...]`: a module naming its own definitions."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            out |= {id(n) for n in ast.walk(node.value) if isinstance(n, ast.Constant)}
    return out


def violations(source: str, filename: str) -> list[str]:
    """Where `source` names a registered step, alias or step class (as a string or an identifier of any
    kind) or a step's option (as a string: identifiers such as `k` or `text` are everyone's local names)."""
    steps, options = declared_names()
    tree = ast.parse(source, filename)
    exported = _exported(tree)
    name = Path(filename).name
    allowed = set(RECIPE_WORDS) if name == "recipe.py" else set()
    if Path(filename).parent.name == "cli":
        allowed = {word for (module, word) in CLI_WORDS if module == name}
    found = []
    for node in ast.walk(tree):
        literal = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
        ident = next(
            (
                getattr(node, a)
                for a in ("id", "attr", "arg", "name", "asname")
                if isinstance(getattr(node, a, None), str)
            ),
            None,
        )
        at = f"{filename}:{getattr(node, 'lineno', '?')}"
        if literal is not None and id(node) in exported:
            continue
        for word in {literal, ident} - {None} - allowed:
            if word in steps:
                found.append(f"{at}: {word!r} is {steps[word]}")
        if literal in options and literal not in allowed:
            found.append(f"{at}: {literal!r} is {options[literal]}")
    return found


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_recipe_engines_accounting_and_cli_name_no_step_class_or_option(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), str(path)) == []


def test_the_cli_allowlist_is_used() -> None:
    """Every allowed word of `cli/` still appears in its module (a stale entry would hide a violation)."""
    steps, options = declared_names()
    for module, word in CLI_WORDS:
        assert word in steps or word in options, (module, word)
        path = PACKAGE / "cli" / module
        assert word in path.read_text(encoding="utf-8"), (module, word)
        found = violations(path.read_text(encoding="utf-8"), str(path.with_name("elsewhere.py")))
        assert [v for v in found if repr(word) in v], (module, word)


def test_the_check_finds_a_planted_violation() -> None:
    planted = """
FILE_OPTIONS = ("quads", "preference")
DEVICE_CHUNKS = {"IFD": (512, 8192)}
first = {"select": "exact_dedup"}
def pick(scorer):
    return getattr(scorer, "chunk_size", None) or Deita
"""
    found = "\n".join(violations(planted, "engine/ray.py"))
    for word in ("quads", "preference", "IFD", "exact_dedup", "chunk_size", "Deita"):
        assert repr(word) in found, word
    # The recipe's own words pass in recipe.py only; plain local names and `__all__` pass everywhere.
    own = 'STEP_KEYS = {"as", "with", "on"}\nk, text = 1, 2\n__all__ = ["score"]\n'
    assert violations(own, "recipe.py") == []
    assert "'on'" in "\n".join(violations(own, "accounting.py"))


# -- kinds: recipes resolve paths from the fields' declarations ---------------------------------------------
@dataclass
class _Probe:
    """A selector registered by the test only: one option of each kind, and one named like a file option
    of another step but declaring no kind."""

    table: registry.FilePath = ""
    held_out: registry.DataRef = ""
    judge: registry.ModelRef = "embedded"
    quads: str = ""  # a name other steps use for a file: without a kind it is not a path

    def select(self, *_args: object) -> None:  # pragma: no cover - never run
        raise AssertionError


@pytest.fixture
def probe():
    entry = registry.add(registry.Entry("select", "declared_probe", _Probe, registry.params_of(_Probe)))
    yield entry
    registry._ENTRIES.pop(("select", "declared_probe"))
    registry._BY_TARGET.pop(_Probe)


def test_a_recipe_resolves_paths_from_the_kinds_a_step_declares(probe, tmp_path: Path) -> None:
    (tmp_path / "rk").mkdir()
    options = {"table": "t.json", "held_out": "org/name", "judge": "rk", "quads": "q.jsonl"}
    r = recipe.from_dict({"input": "d.json", "steps": [{"select": "declared_probe", "with": options}]}, base=tmp_path)
    got = r.steps[0].options
    assert got["table"] == str(tmp_path / "t.json")  # a file: always relative to the recipe
    assert got["held_out"] == "org/name"  # data: a hub id that names no local path stays as written
    assert got["judge"] == str(tmp_path / "rk")  # a model reference naming something in the recipe's folder
    assert got["quads"] == "q.jsonl"  # no kind declared: not a path, whatever its name
    assert registry.option_kinds(probe.params) == {
        "table": registry.Kind.file,
        "held_out": registry.Kind.data,
        "judge": registry.Kind.model,
    }
    saved = r.steps[0].as_dict(tmp_path / "sub")["with"]
    assert saved["table"] == str(Path("..") / "t.json") and saved["quads"] == "q.jsonl"


def test_kinds_survive_dataclass_factory_and_derived_parameter_models() -> None:
    """Dataclass scorers (`params_of`), factory functions and `create_model` fit steps keep the kinds."""
    kinds = {(e.kind, e.name): registry.option_kinds(e.params) for k in registry.KINDS for e in registry.entries(k)}
    K = registry.Kind
    assert kinds[("score", "ifd")] == {"model": K.model}
    assert kinds[("score", "judge")] == {"judge_prompt": K.file, "model": K.model}
    assert kinds[("fit", "scar_ranker")] == {"quads": K.file, "encoder": K.model}
    assert kinds[("fit", "trial")] == {"model": K.model, "eval": K.data}
    assert kinds[("score", "rules")] == {"tokenizer": K.model}


# -- chunk sizes: declared by each scorer, read by both engines ---------------------------------------------
def _scorers(tmp_path: Path) -> list[object]:
    """Every registered scorer built with its defaults (and the least its required options need), plus the
    server judge (the `judge` step's other class)."""
    (tmp_path / "pref.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    (tmp_path / "ranker").mkdir()
    need = {
        "reward": {"model": "m"},
        "unieval": {"model": "m"},
        "reward_standin": {"preference": str(tmp_path / "pref.jsonl")},
        "scar": {"ranker": str(tmp_path / "ranker")},
    }
    built = [e.build(need.get(e.name, {})) for e in registry.entries("score")]
    server = registry.get("score", "judge").build({"judge_url": "http://127.0.0.1:9", "judge_model": "m"})
    return [*built, server]


def test_every_scorer_declares_its_chunks_and_both_engines_read_the_same(tmp_path: Path) -> None:
    scorers = _scorers(tmp_path)
    assert {type(s).__name__ for s in scorers} >= {"IFD", "Deita", "InstructionLoss", "LocalJudge", "ServerJudge"}
    for s in scorers:
        for gpu, device in ((False, "cpu"), (True, "cuda")):
            chunk_for(s, device)  # declared: no engine falls back to a size of its own
            for n in (None, 100, 10**6):
                assert ray_engine.chunk_size(s, gpu, n) == local.chunk_size(s, device, n), (type(s).__name__, device, n)
    ifd = registry.get("score", "ifd").build({})
    assert (local.chunk_size(ifd, "cpu"), local.chunk_size(ifd, "cuda:0")) == type(ifd).chunks
    on_cpu = registry.get("score", "ifd").build({"device": "cpu"})  # a GPU in the pool, the scorer on the CPU
    assert ray_engine.chunk_size(on_cpu, True) == local.chunk_size(on_cpu, "cpu")
    given = registry.get("score", "deita").build({"chunk_size": 7})
    assert ray_engine.chunk_size(given, True, 100) == local.chunk_size(given, "cuda", 100) == 7


def test_no_scorer_picks_a_chunk_but_through_its_declaration() -> None:
    """`self.chunk_size or <a size>` is how a scorer kept a device default of its own before `chunks`."""
    for path in [*(PACKAGE / "scoring").glob("*.py"), *(PACKAGE / "train").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
                first = node.values[0]
                assert not (isinstance(first, ast.Attribute) and first.attr == "chunk_size"), f"{path}:{node.lineno}"


# -- resources: declared by each scorer, read by the Ray engine ---------------------------------------------
def test_every_scorer_declares_its_resources(tmp_path: Path) -> None:
    """Each scorer's class says what it asks of the machine (no engine default applies to a registered one):
    the model scorers an actor pool with a GPU each where there are GPUs, the light ones (the API judge among
    them: its model is the server's) plain tasks of half a CPU."""
    scorers = {type(s).__name__: s for s in _scorers(tmp_path)}
    for name, s in scorers.items():
        assert isinstance(getattr(type(s), "resources", None), Resources), name
        assert resources_of(s) is type(s).resources
    for name in (
        "IFD",
        "Deita",
        "LocalJudge",
        "InstructionLoss",
        "Representation",
        "Embed",
        "Reward",
        "RewardStandin",
        "Scar",
        "UniEval",
    ):
        assert scorers[name].resources == MODEL == Resources(model=True, gpus=1.0), name
    for name in ("Rules", "Language", "MinHashSignature", "MTLD", "Lengths", "ServerJudge", "TrainedTokens"):
        assert scorers[name].resources == LIGHT == Resources(model=False, gpus=0.0, cpus=0.5), name


def test_a_declaration_is_checked() -> None:
    for bad in ({"gpus": 0.5}, {"model": True, "gpus": -1}, {"model": True, "gpus": 1.5}, {"cpus": 0}):
        with pytest.raises(ValueError):
            Resources(**bad)
    assert Resources(model=True, gpus=2).gpus == 2

    class Undeclared:  # a scorer outside the registry that declares nothing is light
        pass

    assert resources_of(Undeclared()) == LIGHT
    on_cpu = type("OnCpu", (), {"resources": MODEL, "device": "cpu"})()  # a model scorer given device=cpu
    assert resources_of(on_cpu) == Resources(model=True, gpus=0.0)  # an actor pool on CPUs, no GPU held
    assert resources_of(type("OnGpu", (), {"resources": MODEL, "device": "cuda:1"})()) == MODEL
    with pytest.raises(TypeError, match="Resources"):
        resources_of(type("Odd", (), {"resources": {"gpus": 1}})())


@pytest.mark.parametrize("name", ["ifd", "instruction_loss"])
def test_a_scorer_cuts_the_chunks_it_declares(name: str, tiny_llama: Path, monkeypatch) -> None:
    from instructsift.data import read

    examples = read(SAMPLE).examples[:7]
    scorer = registry.get("score", name).build({"model": str(tiny_llama), "device": "cpu", "dtype": "float32"})
    monkeypatch.setattr(type(scorer), "chunks", (3, 5))
    assert [len(c) for c in scorer.score(examples, frozenset())] == [3, 3, 1]
