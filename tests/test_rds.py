"""RDS+ (target-aware selection): the representation scorer against a one-at-a-time reference, the blocked
top-k and round-robin against brute force, whitening, target files, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import cli
from tolerances import UNIT_ABS

from instructsift.data.example import Example, Message
from instructsift.selection.target import Whitening, rds_pick, task_codes, top_per_task


def _examples() -> list[Example]:
    rows = [
        ("Name three primary colours.", None, "Red, yellow and blue."),
        ("Translate to French.", "Good morning, how are you today?", "Bonjour, comment allez-vous aujourd'hui ?"),
        ("Say hi.", None, "Hi!"),
        ("Write a haiku about the sea at night, with the moon on the water.", None, "Dark waves hold the moon."),
        ("Add.", "2 + 2", "4"),
    ]
    return [Example(str(i), (Message("user", q, c), Message("assistant", a)), i) for i, (q, c, a) in enumerate(rows)]


# -- the representation scorer ----------------------------------------------------------------------------
def test_tulu_text_is_the_reference_format():
    from instructsift.scoring.representations import tulu_text

    ex = _examples()[1]
    whole = tulu_text(ex.messages, "whole", "</s>")
    assert whole == (
        "<|user|>\nTranslate to French.\n\nGood morning, how are you today?\n"
        "<|assistant|>\nBonjour, comment allez-vous aujourd'hui ?</s>\n"
    )
    assert tulu_text(ex.messages, "prompt", "</s>") == (
        "<|user|>\nTranslate to French.\n\nGood morning, how are you today?\n<|assistant|>\n"
    )
    assert tulu_text(ex.messages[:1], "prompt", "</s>") == tulu_text(ex.messages, "prompt", "</s>")


def test_pooling_matches_one_at_a_time(tiny_llama: Path):
    """Batched, padded, position-weighted pooling equals a plain forward pass of each text alone, with
    weights 1..L over its own tokens (the reference at batch size 1)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from instructsift.scoring.representations import Representation

    examples = _examples()
    scorer = Representation(model=str(tiny_llama), dtype="float32", device="cpu", batch_tokens=64, chunk_size=2)
    chunks = list(scorer.score(examples))
    assert [len(c) for c in chunks] == [2, 2, 1]
    got = np.asarray([row["representation"] for c in chunks for _, row in c], dtype=np.float32)

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    for i, ex in enumerate(examples):
        text = scorer.text_of(ex)
        assert text.startswith("<|user|>\n") and text.endswith(f"{tok.eos_token}\n")
        ids = tok(text, return_tensors="pt").input_ids
        with torch.no_grad():
            h = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
        w = torch.arange(1, len(h) + 1, dtype=torch.float32)
        v = (w[:, None] * h).sum(0) / w.sum()
        v = (v / v.norm()).numpy()
        assert got[i] == pytest.approx(v, abs=UNIT_ABS)
    # a plain mean would differ: the weights matter
    h = model(input_ids=tok(scorer.text_of(examples[3]), return_tensors="pt").input_ids, output_hidden_states=True)
    plain = h.hidden_states[-1][0].mean(0).detach().numpy()
    assert not np.allclose(got[3], plain / np.linalg.norm(plain), atol=1e-3)
    # another layer gives other vectors, and another cache key
    first = Representation(model=str(tiny_llama), dtype="float32", device="cpu", layer=1)
    assert first.cache_key() != scorer.cache_key()
    assert not np.allclose(first.encode([scorer.text_of(examples[0])])[0], got[0], atol=1e-3)


# -- the selector's pieces against brute force ------------------------------------------------------------
def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _data(seed: int, n: int = 300, q: int = 23, d: int = 16, tasks: int = 4):
    rng = np.random.default_rng(seed)
    pool = _unit(rng.normal(size=(n, d)))
    queries = _unit(rng.normal(size=(q, d)))
    labels = [f"task{rng.integers(tasks)}" for _ in range(q)]
    return pool, queries, labels


def _brute(pool, queries, labels, budget, aggregate):
    """The full N x Q matrix, each task's full sorted list, and the plain round-robin."""
    codes, names = task_codes(labels)
    s = pool @ queries.T
    agg = np.stack([getattr(s[:, codes == t], aggregate)(axis=1) for t in range(len(names))], axis=1)
    lists = [sorted(range(len(pool)), key=lambda i, t=t: (-agg[i, t], i)) for t in range(len(names))]
    picked, owner, at = [], [], [0] * len(names)
    while len(picked) < min(budget, len(pool)):
        for t in range(len(names)):
            if len(picked) >= budget:
                break
            while lists[t][at[t]] in picked:
                at[t] += 1
            picked.append(lists[t][at[t]])
            owner.append(t)
    return picked, owner, agg


@pytest.mark.parametrize("aggregate", ["max", "mean"])
@pytest.mark.parametrize("budget", [1, 7, 60, 299])
def test_round_robin_matches_brute_force(aggregate: str, budget: int):
    pool, queries, labels = _data(budget)
    want, owner, agg = _brute(pool, queries, labels, budget, aggregate)
    got = rds_pick(pool, queries, labels, budget, aggregate, block=37)  # many blocks; short lists refilled
    assert got["picked"] == want
    assert got["owner"] == owner
    assert np.allclose(got["best_sim"], agg.max(axis=1), atol=1e-5)
    assert (got["best_task"] == agg.argmax(axis=1)).all()


def test_each_target_its_own_task_and_one_task():
    pool, queries, _ = _data(5)
    alone = [f"row {i}" for i in range(len(queries))]
    assert rds_pick(pool, queries, alone, 40, block=50)["picked"] == _brute(pool, queries, alone, 40, "max")[0]
    one = ["all"] * len(queries)
    got = rds_pick(pool, queries, one, 40, block=50)["picked"]
    assert got == list(np.argsort(-(pool @ queries.T).max(axis=1), kind="stable")[:40])


def test_blocked_topk_equals_the_full_matrix():
    pool, queries, labels = _data(11, n=1000, q=40, tasks=5)
    codes, names = task_codes(labels)
    rows, sims, _, _ = top_per_task(pool, queries, codes, 25, "max", block=64)
    full = pool @ queries.T
    for t in range(len(names)):
        col = full[:, codes == t].max(axis=1)
        order = np.lexsort((np.arange(len(pool)), -col))[:25]
        assert rows[t].tolist() == order.tolist()
        assert sims[t] == pytest.approx(col[order], abs=1e-6)


def test_whitening_gives_identity_covariance_and_round_trips(tmp_path: Path):
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    mix = np.diag(np.linspace(0.5, 3.0, 8)) @ rotation  # correlated, scales 0.5..3
    X = (rng.normal(size=(5000, 8)) @ mix + 3.0).astype(np.float32)
    w = Whitening().fit(X)
    Z = w.transform(X)
    assert np.abs(Z.mean(axis=0)).max() < 1e-3
    assert np.cov(Z, rowvar=False) == pytest.approx(np.eye(8), abs=0.05)
    assert np.abs(np.cov(X, rowvar=False) - np.eye(8)).max() > 1  # it was far from white before
    w.save(tmp_path / "w.npz")
    back = Whitening.load(tmp_path / "w.npz")
    assert np.array_equal(back.mean_, w.mean_) and np.array_equal(back.matrix_, w.matrix_)
    assert np.array_equal(back.transform(X), Z)
    assert back.shrinkage_ == w.shrinkage_
    small = Whitening().fit(X[:5])  # fewer rows than dimensions: shrinkage keeps it invertible
    assert np.isfinite(small.transform(X[:5])).all()


# -- CRDS-R: layers and the Rademacher projection -----------------------------------------------------------
def test_rademacher_projection_keeps_cosines_within_a_dimension_scaled_tolerance():
    """Johnson-Lindenstrauss: the cosines of concatenated two-layer vectors after the per-layer projection
    differ from the original ones by O(1/sqrt(dim)); the error shrinks as the dimension grows; seeded."""
    from instructsift.scoring.representations import rademacher

    rng = np.random.default_rng(1)
    base = rng.standard_normal((1, 2, 512))
    x = base + rng.standard_normal((40, 2, 512)) * rng.uniform(0.3, 3.0, (40, 1, 1))  # cosines from ~0 to ~0.9
    flat = x.reshape(40, -1)
    unit = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    cos = unit @ unit.T
    assert cos[np.triu_indices(40, 1)].min() < 0.2 and cos[np.triu_indices(40, 1)].max() > 0.8
    errors = {}
    for dim in (128, 2048):
        r = rademacher(2, 512, dim // 2, seed=0)
        assert r.shape == (2, 512, dim // 2) and set(np.unique(r * np.sqrt(dim // 2)).round(6)) == {-1.0, 1.0}
        y = np.concatenate([x[:, j] @ r[j] for j in range(2)], axis=1)
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        err = np.abs(y @ y.T - cos)[np.triu_indices(40, 1)]
        assert err.max() < 5 * np.sqrt(2 / dim), (dim, err.max())
        errors[dim] = err.mean()
    assert errors[2048] < errors[128] / 2
    assert np.array_equal(rademacher(2, 8, 4, seed=3), rademacher(2, 8, 4, seed=3))
    assert not np.array_equal(rademacher(2, 8, 4, seed=3), rademacher(2, 8, 4, seed=4))


def test_layers_and_projection_in_the_scorer(tiny_llama: Path):
    """`layers` concatenates position-weighted means of several hidden states; `project` maps each through
    its own seeded Rademacher block first (a one-at-a-time reference); both are in the cache key."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from instructsift.data.errors import OptionError
    from instructsift.scoring.representations import Representation, rademacher

    examples = _examples()
    opts = dict(model=str(tiny_llama), dtype="float32", device="cpu", batch_tokens=64)
    cat = Representation(layers=(1, -1), **opts)
    proj = Representation(layers=(1, -1), project=16, seed=5, **opts)
    texts = [cat.text_of(ex) for ex in examples]
    got_cat, got_proj = cat.encode(texts), proj.encode(texts)
    assert got_cat.shape == (5, 64) and got_proj.shape == (5, 16)

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    r = rademacher(2, 32, 8, seed=5)
    for i, text in enumerate(texts):
        with torch.no_grad():
            hs = model(input_ids=tok(text, return_tensors="pt").input_ids, output_hidden_states=True).hidden_states
        w = torch.arange(1, hs[0].shape[1] + 1, dtype=torch.float32)
        pooled = [((w[:, None] * hs[j][0]).sum(0) / w.sum()).numpy() for j in (1, -1)]
        v = np.concatenate(pooled)
        assert got_cat[i] == pytest.approx(v / np.linalg.norm(v), abs=UNIT_ABS)
        p = np.concatenate([pooled[0] @ r[0], pooled[1] @ r[1]])
        assert got_proj[i] == pytest.approx(p / np.linalg.norm(p), abs=UNIT_ABS)
    keys = {Representation(**opts).cache_key(), cat.cache_key(), proj.cache_key(),
            Representation(layers=(1, -1), project=16, seed=6, **opts).cache_key()}  # fmt: skip
    assert len(keys) == 4
    for bad in (dict(layers=(1, -1), project=15), dict(layers=(1, 1)), dict(layers=(1,), layer=1)):
        with pytest.raises(OptionError):
            Representation(**opts, **bad)
    with pytest.raises(OptionError, match="hidden states 0..2"):
        Representation(layers=(1, 7), **opts).describe()


# -- target files -----------------------------------------------------------------------------------------
def test_target_files_read_with_and_without_answers(tmp_path: Path):
    from instructsift.data.targets import read_targets

    with_answers = tmp_path / "a.json"
    with_answers.write_text(json.dumps([{"instruction": "Hi", "output": "Hello", "dataset": "x"}]))
    bare = tmp_path / "b.jsonl"
    bare.write_text(json.dumps({"instruction": "Hi", "dataset": "x"}) + "\n")
    chat = tmp_path / "c.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"}], "dataset": "x"}) + "\n")
    a, b, c = (read_targets(p, task_field="dataset") for p in (with_answers, bare, chat))
    assert [m.role for m in a.examples[0].messages] == ["user", "assistant"]
    assert b.examples[0].messages == c.examples[0].messages == a.examples[0].messages[:1]
    assert a.tasks == b.tasks == ["x"]
    assert read_targets(bare).tasks == ["target row 0"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("", "no records"),
        (json.dumps({"question": "Hi"}) + "\n", "no instruction field"),
        (json.dumps({"instruction": "Hi"}) + "\n", "'dataset'"),
    ],
)
def test_bad_target_is_a_clear_error(tmp_path: Path, tiny_llama: Path, content: str, says: str):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps([{"instruction": "Hi", "output": "Hello"}]))
    target = tmp_path / "t.jsonl"
    target.write_text(content)
    proc = cli("select", pool, "--method", "rds", "--target", target, "--target-task-field", "dataset",
               "--model", tiny_llama, "--top", "1", "-o", tmp_path / "out.json", check=False)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert str(target) in proc.stderr and says in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.json").exists()


# -- end to end -------------------------------------------------------------------------------------------
def test_select_rds_end_to_end(tmp_path: Path, tiny_llama: Path, shared_data: Path):
    """Real Alpaca rows with a tiny model; AlpacaEval instructions as targets grouped by their data set; a
    target file with answers and one without give the same picks (only instructions are encoded)."""
    pool_rows = json.loads((shared_data / "alpaca" / "alpaca_random_9k.json").read_text(encoding="utf-8"))[:40]
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(pool_rows))
    evals = json.loads((shared_data / "alpaca_eval" / "gpt4.json").read_text(encoding="utf-8"))
    by_set: dict[str, list] = {}
    for r in evals:
        by_set.setdefault(r["dataset"], []).append(r)
    rows = [r for rs in by_set.values() for r in rs[:3]]
    answered = tmp_path / "targets.json"
    answered.write_text(json.dumps(rows))
    bare = tmp_path / "targets_bare.jsonl"
    bare.write_text(
        "".join(json.dumps({"instruction": r["instruction"], "dataset": r["dataset"]}) + "\n" for r in rows)
    )

    outs = []
    for target in (answered, bare):
        out = tmp_path / f"out_{target.stem}.json"
        dropped = tmp_path / f"dropped_{target.stem}.jsonl"
        cli("select", pool, "--method", "rds", "--target", target, "--target-task-field", "dataset",
            "--model", tiny_llama, "--ratio", "0.1", "-o", out, "--dropped", dropped, "-q")  # fmt: skip
        outs.append(json.loads(out.read_text()))
        reasons = [json.loads(line) for line in dropped.read_text().splitlines()]
        assert len(outs[-1]) == 4 and len(reasons) == 36
        assert all(r["code"] == "not among the 4 rds picks by representation" for r in reasons)
        assert all(r["detail"].startswith("best similarity ") and " to " in r["detail"] for r in reasons)
        assert {r["detail"].rsplit(" to ", 1)[1] for r in reasons} <= set(by_set)
    assert outs[0] == outs[1]
    assert all(r in pool_rows for r in outs[0])

    white, scores = tmp_path / "white.json", tmp_path / "scores.parquet"
    cli("select", pool, "--method", "rds", "--target", bare, "--model", tiny_llama, "--top", "4", "--whiten",
        "--aggregate", "mean", "--layers=-2,-1", "--project", "16", "--seed", "3", "--save-scores", scores,
        "-o", white, "-q")  # fmt: skip
    assert len(json.loads(white.read_text())) == 4
    import pyarrow.parquet as pq

    vectors = pq.read_table(scores).column("representation").to_pylist()
    assert len(vectors) == 40 and {len(v) for v in vectors} == {16}  # CRDS-R: two layers projected to 16


def test_recipe_steps_with_a_selector_first(tmp_path: Path, tiny_llama: Path):
    """The docs' recipe: representation, the targets fit step, a selector, then rds on what is left; the
    target path is relative to the recipe's folder."""
    import yaml

    from instructsift.pipeline import run
    from instructsift.recipe import load

    rows = [{"instruction": f"Question {i}: what is {i} plus {i}?", "output": str(2 * i)} for i in range(12)]
    (tmp_path / "pool.json").write_text(json.dumps(rows + rows[:3]))  # three exact repeats
    (tmp_path / "t.jsonl").write_text(json.dumps({"instruction": "What is 5 plus 5?"}) + "\n")
    model = str(tiny_llama)
    recipe = {
        "input": "pool.json",
        "output": "out.json",
        "steps": [
            {"score": "representation", "with": {"model": model}},
            {"fit": "targets", "as": "targets", "with": {"target": "t.jsonl", "model": model}},
            {"select": "exact_dedup"},
            {"select": "rds", "with": {"targets": "@targets", "k": 4, "of": "all"}},
        ],
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    result = run(load(tmp_path / "r.yaml"), progress=False, log=lambda _m: None)
    sel = result.picked.selection
    assert len(sel.kept) == 4 and max(sel.kept) < 12
    assert all(c is not None and "rds" not in c for c in sel.codes[12:])  # dropped as repeats, before rds
    assert sum(1 for c in sel.codes if c and "rds picks" in c) == 8
    assert len(json.loads((tmp_path / "out.json").read_text())) == 4


# -- compare --target ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compare_files(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """24 short real Alpaca rows, 8 others held out, and two target files of AlpacaEval instructions (no
    answers) grouped by their data set."""
    data = json.loads((shared_data / "alpaca" / "alpaca_random_9k.json").read_text(encoding="utf-8"))
    short = sorted(data[:300], key=lambda r: len(r["instruction"]) + len(r["input"]) + len(r["output"]))
    evals = json.loads((shared_data / "alpaca_eval" / "gpt4.json").read_text(encoding="utf-8"))
    folder = tmp_path_factory.mktemp("compare-rds")
    files = {"pool": folder / "pool.json", "held": folder / "held.json"}
    files["pool"].write_text(json.dumps(short[:24]))
    files["held"].write_text(json.dumps(short[24:32]))
    for name, rows in (("targets", evals[:6]), ("other", evals[400:406])):
        files[name] = folder / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps({"instruction": r["instruction"], "dataset": r["dataset"]}) + "\n"
                                       for r in rows))  # fmt: skip
    return files


def test_compare_gives_the_targets_to_rds_at_equal_tokens(compare_files: dict[str, Path], tiny_bpe_llama: Path,
                                                          tmp_path: Path):  # fmt: skip
    """`compare --target`: rds (and a whitened arm, `LABEL=METHOD`) get the targets, longest does not; at
    equal trained tokens rds's pick is `select --method rds --budget-tokens`'s (its round-robin order is
    its rank order); other targets change rds's picks alone, and only changed picks train again."""
    from instructsift.experiments.compare import CompareSpec, compare

    model = str(tiny_bpe_llama)
    spec = CompareSpec(
        data=str(compare_files["pool"]), eval=str(compare_files["held"]), methods=["rds", "rds-white=rds", "longest"],
        budget_tokens=0.3, base=model, random_seeds=1, target=str(compare_files["targets"]),
        target_task_field="dataset", options={"*": {"model": model}, "rds-white": {"whiten": True}},
        finetune=dict(lora=False, lr=5e-3, epochs=1, batch_size=2, warmup_ratio=0.0, max_length=128, dtype="float32"),
        eval_dtype="float32", cache_dir=str(tmp_path / "cache"), plot=False,
    )  # fmt: skip
    r = compare(spec, tmp_path / "out", progress=False)
    steps = {name: s["steps"] for name, s in r["selections"].items()}
    fits = {name: [st for st in ss if st.get("fit") == "targets"] for name, ss in steps.items()}
    assert [f["with"]["target"] for f in fits["rds"]] == [str(compare_files["targets"])]
    assert fits["rds"][0]["with"]["target_task_field"] == "dataset" and len(fits["rds-white"]) == 1
    assert fits["longest"] == []
    rds_sel = {name: next(st for st in ss if st.get("select") == "rds") for name, ss in steps.items() if "rds" in name}
    assert "whiten" not in rds_sel["rds"]["with"] and rds_sel["rds-white"]["with"]["whiten"] is True
    by_name = {row["name"]: row for row in r["rows"]}
    budget = r["budget"]["tokens"]
    for name in ("rds", "rds-white", "longest", "random-0"):
        assert abs(by_name[name]["trained_tokens"] - budget) <= 128 / 2, name

    out = tmp_path / "select.json"  # the same pick from `select --budget-tokens`
    cli("select", compare_files["pool"], "--method", "rds", "--target", compare_files["targets"],
        "--target-task-field", "dataset", "--model", model, "--budget-tokens", "0.3", "--base", model,
        "--train-max-length", "128", "--cache-dir", tmp_path / "cache", "-o", out, "-q")  # fmt: skip
    pool = json.loads(compare_files["pool"].read_text())
    picked = json.loads(out.read_text())
    from instructsift.api import read

    ids = [ex.id for ex in read(compare_files["pool"]).examples]
    assert sorted(ids[pool.index(row)] for row in picked) == sorted(r["selections"]["rds"]["ids"])

    other = compare(spec.model_copy(update={"target": str(compare_files["other"])}), tmp_path / "out2", progress=False)
    changed = [n for n in ("rds", "rds-white") if other["selections"][n]["ids"] != r["selections"][n]["ids"]]
    assert changed, "other targets should change some rds pick"
    assert other["selections"]["longest"]["ids"] == r["selections"]["longest"]["ids"]
    assert other["trained_now"] == len({tuple(sorted(other["selections"][n]["ids"])) for n in changed})


def test_compare_target_usage_errors(compare_files: dict[str, Path], tmp_path: Path):
    base = ["compare", compare_files["pool"], "--eval", compare_files["held"], "--budget", "4", "-o", tmp_path / "o"]
    cases = [
        (["--methods", "longest", "--target", compare_files["targets"]], "none of the methods (longest)"),
        (["--methods", "rds", "--target", compare_files["targets"], "--set", f"rds.target={compare_files['other']}"],
         "not --set target"),
        (["--methods", "rds", "--target-task-field", "dataset"], "target_task_field needs target"),
        (["--methods", "rds,longest=rds"], "is a method's or an arm's name"),
        (["--methods", "rds", "--target", tmp_path / "missing.jsonl"], "missing.jsonl"),
    ]  # fmt: skip
    for extra, says in cases:
        proc = cli(*base, *extra, check=False)
        assert proc.returncode == 2, (extra, proc.stderr)
        assert says in proc.stderr and "Traceback" not in proc.stderr, (extra, proc.stderr)
    assert not (tmp_path / "o").exists()


def test_compare_warns_when_held_out_questions_are_targets(compare_files: dict[str, Path], tmp_path: Path):
    from instructsift.api import read
    from instructsift.experiments.arms import warn_target_overlap
    from instructsift.experiments.compare_spec import CompareSpec

    targets = [json.loads(line) for line in compare_files["targets"].read_text().splitlines()]
    held = tmp_path / "held.json"
    held.write_text(json.dumps([{"instruction": t["instruction"], "input": "", "output": "x"} for t in targets[:2]]
                               + json.loads(compare_files["held"].read_text())))  # fmt: skip
    spec = CompareSpec(data=str(compare_files["pool"]), eval=str(held), budget=4, target=str(compare_files["targets"]))
    said: list[str] = []
    warn_target_overlap(compare_files["targets"], spec, [read(held), read(compare_files["held"])], said.append)
    assert len(said) == 1 and said[0].startswith(f"warning: 2 instructions of {held} are also targets")


def test_compare_target_without_a_target_aware_method_names_those_the_registry_has(monkeypatch, tmp_path: Path):
    """The methods that take targets come from the registry (a `target` parameter), not from a list."""
    from pydantic import Field

    from instructsift import registry
    from instructsift.errors import UsageError
    from instructsift.experiments.compare import CompareSpec, compare
    from instructsift.registry import Method, StrictModel

    class AimParams(StrictModel):
        target: str | None = Field(None, description="examples of the tasks to aim at")

    registry.load_all()
    aim = Method(
        name="aim", paper="none", summary="a throwaway target-aware method", Params=AimParams, steps=lambda p: []
    )
    monkeypatch.setitem(registry._ENTRIES, ("method", "aim"), registry.Entry("method", "aim", aim, AimParams))
    spec = CompareSpec(data="pool.json", eval="held.json", methods=["longest"], target="t.json", budget_tokens=0.3)
    with pytest.raises(UsageError, match=r"target-aware methods: .*\baim\b.*rds|rds.*\baim\b"):
        compare(spec, tmp_path / "out", progress=False)
