"""SCAR: the ranker against the reference code's own class (scar-tool), representation shapes, the loss
against a hand computation, training lowering the loss, save/load and batch-size invariance, the scorer
on multi-turn rows, and train-scar + select --method scar from the command line. A tiny random BERT
(2 layers, 32-d, all-MiniLM-L6-v2's tokenizer) keeps it fast; the rows are real (self-instruct)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import cli
from tolerances import output

torch = pytest.importorskip("torch")

from instructsift.data import Example, Message  # noqa: E402
from instructsift.models.scar import ScarRanker, build_ranker, load_ranker, save_ranker  # noqa: E402
from instructsift.scoring.scar import Scar, score_pairs  # noqa: E402
from instructsift.train.scar import (  # noqa: E402
    Quad,
    ScarTrainConfig,
    Trainer,
    batch_masks,
    forward_quads,
    read_quads,
    scar_loss,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def self_instruct(shared_data) -> list[dict]:
    path = shared_data / "self_instruct" / "text-davinci-003_predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if r["response"].strip() and r["target"].strip()]


@pytest.fixture(scope="module")
def quads(self_instruct) -> list[Quad]:
    """Human target vs the model's direct answer; every third row with a 'referenced' answer (the other
    model's, davinci), to exercise the three-way terms."""
    out = []
    for i, r in enumerate(self_instruct[:24]):
        instruction = r["instruction"].strip() + (f"\n\n{r['input']}" if r["input"].strip() else "")
        referenced = r["target"].strip() + " Thanks." if i % 3 == 0 else None
        out.append(Quad(instruction, r["target"], r["response"].strip(), referenced))
    return out


def pairs_of(quads: list[Quad]) -> list[tuple[str, str]]:
    return [(q.instruction, a) for q in quads for a in (q.human, q.direct)]


def test_same_scores_as_the_reference_class(tiny_encoder, quads, tmp_path) -> None:
    """A ranker built and saved by scar-tool's own StyleRanker loads here and gives its scores."""
    pytest.importorskip("style_ranker", reason="scar-tool is installed by `make install` (pip --no-deps)")
    from style_ranker.rank import score_pairs as reference_scores
    from style_ranker.ranker.config import StyleRankerConfig
    from style_ranker.ranker.model import StyleRanker
    from transformers import AutoTokenizer

    torch.manual_seed(1)
    ref = StyleRanker(StyleRankerConfig(encoder_name=str(tiny_encoder), hidden_dim=32, linear_dim=16)).eval()
    folder = tmp_path / "reference-ranker"
    ref.save_pretrained(str(folder))  # as the reference saves: config.json, model.safetensors (+ a pickle)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_encoder))
    tokenizer.save_pretrained(str(folder))
    pairs = pairs_of(quads[:8])
    expected = reference_scores(ref, tokenizer, [p[0] for p in pairs], [p[1] for p in pairs], device="cpu")
    ours = score_pairs(load_ranker(folder), pairs, batch_size=5)
    assert len(set(expected)) == len(expected)
    assert ours == output(expected)  # other batches than the reference's: tests/tolerances.py


def test_representation_shapes(tiny_encoder) -> None:
    model, tok = build_ranker(tiny_encoder, linear_dim=16)
    a = tok(["Name a colour.", "Add two and two."], padding=True, return_tensors="pt")
    b = tok(["Red.", "Two and two make four, as anyone can count."], padding=True, return_tensors="pt")
    surprisal, form = model.represent(a.input_ids, a.attention_mask, b.input_ids, b.attention_mask)
    assert surprisal.shape == form.shape == (2, 32)
    score, s2, f2 = model(a.input_ids, a.attention_mask, b.input_ids, b.attention_mask)
    assert score.shape == (2,) and torch.equal(s2, surprisal)
    # the form vector is the max over the response's real tokens only: padding never wins
    hidden = model.encoder(input_ids=b.input_ids, attention_mask=b.attention_mask).last_hidden_state
    n = int(b.attention_mask[0].sum())
    assert torch.allclose(form[0], hidden[0, :n].max(dim=0).values)
    assert model.relation_network[0].in_features == model.output_layer[0].in_features == 64
    with pytest.raises(ValueError, match="hidden size 32"):
        ScarRanker(model.encoder, 48, 16)


def test_loss_equals_a_hand_computation() -> None:
    t = torch.tensor
    s = {"human": t([0.1, 0.9, 0.3]), "referenced": t([0.5, 0.2, 0.0]), "direct": t([0.4, 1.0, 0.2])}
    g = torch.Generator().manual_seed(3)
    c = {k: torch.randn(3, 4, generator=g) for k in s}
    p = {k: torch.randn(3, 4, generator=g) for k in s}
    out = {k: (s[k], c[k], p[k]) for k in s}
    masks = {"dr": t([True, True, False]), "rh": t([True, False, True]), "dh": t([True, True, True])}

    def rank(hi: list[float], lo: list[float]) -> float:
        return sum(max(0.0, 0.5 - (a - b)) for a, b in zip(hi, lo, strict=True)) / len(hi)

    def dist(a, b) -> float:
        return math.sqrt(sum((x - y + 1e-6) ** 2 for x, y in zip(a.tolist(), b.tolist(), strict=True)))

    sd, sr, sh = (s[k].tolist() for k in ("direct", "referenced", "human"))
    expected = rank([sd[0], sd[1]], [sr[0], sr[1]]) + rank([sr[0], sr[2]], [sh[0], sh[2]]) + rank(sd, sh)
    # only row 0 passes all three: surprisal (anchor referenced, + human, - direct), form (direct, referenced, human)
    surprisal = max(0.0, dist(c["referenced"][0], c["human"][0]) - dist(c["referenced"][0], c["direct"][0]) + 1.0)
    form = max(0.0, dist(p["direct"][0], p["referenced"][0]) - dist(p["direct"][0], p["human"][0]) + 1.0)
    expected += 0.1 * (surprisal + form) / 2
    assert float(scar_loss(out, masks)) == pytest.approx(expected, rel=1e-5)
    none = {k: torch.zeros(3, dtype=torch.bool) for k in masks}
    assert scar_loss(out, none) is None


def test_quality_constraint_masks() -> None:
    cfg = ScarTrainConfig()
    rows = [
        Quad("i", "h", "d", "r", {"human": 6, "referenced": 7, "direct": 8}),
        Quad("i", "h", "d", "r", {"human": 3, "referenced": 7, "direct": 8}),  # human too low
        Quad("i", "h", "h", None, {"human": 6, "direct": 6}),  # same answer twice: no pair
    ]
    m = {k: v.tolist() for k, v in batch_masks(rows, cfg, "cpu").items()}
    assert m == {"dr": [True, True, False], "rh": [True, False, False], "dh": [True, False, False]}


def test_training_lowers_the_loss(tiny_encoder, quads, tmp_path) -> None:
    config = ScarTrainConfig(encoder=str(tiny_encoder), linear_dim=16, max_length=64, learning_rate=1e-3, device="cpu")
    trainer = Trainer(quads[:12], tmp_path / "r", config)
    trainer.setup()
    batch = quads[:8]

    def loss() -> float:
        trainer.model.eval()
        with torch.no_grad():
            value = float(
                scar_loss(forward_quads(trainer.model, trainer.tokenizer, batch, 64), batch_masks(batch, config, "cpu"))
            )
        trainer.model.train()
        return value

    before = loss()
    for _ in range(6):
        for lo in range(0, 8, 4):
            trainer.step(batch[lo : lo + 4])
    assert loss() < 0.75 * before  # 1.65 -> 0.96 here; the schedule decays to 0 by its 9th step


def test_save_load_and_batch_sizes_give_identical_scores(tiny_encoder, quads, tmp_path) -> None:
    model, tok = build_ranker(tiny_encoder, linear_dim=16)
    model.eval()
    folder = save_ranker(model, tok, tmp_path / "ranker", "tiny")
    loaded = load_ranker(folder)
    pairs = pairs_of(quads[:5])
    first = score_pairs(loaded, pairs, batch_size=len(pairs))
    with torch.no_grad():
        a = tok([p[0] for p in pairs], truncation=True, max_length=512, padding=True, return_tensors="pt")
        b = tok([p[1] for p in pairs], truncation=True, max_length=512, padding=True, return_tensors="pt")
        direct = model(a.input_ids, a.attention_mask, b.input_ids, b.attention_mask)[0].tolist()
    assert first == output(direct)
    for bs in range(1, len(pairs) + 1):
        assert score_pairs(loaded, pairs, batch_size=bs) == output(first), bs
    assert len(score_pairs(loaded, pairs[:1], batch_size=4)) == 1  # a batch of one is a list of one
    assert (folder / "model.safetensors").exists() and not (folder / "pytorch_model.bin").exists()


def test_scorer_ranks_each_turn_and_combines(tiny_encoder, tmp_path) -> None:
    model, tok = build_ranker(tiny_encoder, linear_dim=16)
    folder = save_ranker(model.eval(), tok, tmp_path / "ranker", "tiny")
    turns = [("Name a fruit.", "An apple."), ("And a vegetable?", "A leek, which is long.")]
    msgs = tuple(Message(r, t) for q, a in turns for r, t in (("user", q), ("assistant", a)))
    chat = Example("c", (Message("system", "Be brief."), *msgs), 0)
    empty = Example("e", (Message("user", "Say nothing."), Message("assistant", "  ")), 1)
    single = [score_pairs(load_ranker(folder), [t])[0] for t in turns]
    got = {}
    for how in ("mean", "min", "first", "last"):
        [rows] = list(Scar(ranker=str(folder), turns=how, device="cpu").score([chat, empty]))
        got[how] = rows[0][1]["scar"]
        assert rows[1][1] == {"scar": None, "scar_reason": "no non-empty answer to rank"}
    assert got["mean"] == output(sum(single) / 2)
    assert got["min"] == output(min(single))
    assert (got["first"], got["last"]) == output((single[0], single[1]))


def test_read_quads_names_file_line_and_field(tmp_path) -> None:
    from instructsift.data.errors import InputError

    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"instruction": "a", "human": "b", "direct": "c"}\n{"instruction": "a", "human": 3, "direct": "c"}\n'
    )
    with pytest.raises(InputError, match=r"q.jsonl, line 2, field 'human': must be a string"):
        read_quads(path)
    path.write_text('{"instruction": "a", "human": "b", "direct": "c", "human_score": 6}\n')
    with pytest.raises(InputError, match=r"line 1, field 'direct_score': missing"):
        read_quads(path)
    path.write_text('{"instruction": "a", "input": "x", "human": "b", "direct": "c", "referenced": null}\n')
    assert read_quads(path) == [Quad("a\n\nx", "b", "c", None, {})]


def test_train_scar_then_select_from_the_command_line(tiny_encoder, quads, tmp_path) -> None:
    qfile = tmp_path / "quads.jsonl"
    qfile.write_text("".join(json.dumps({"instruction": q.instruction, "human": q.human, "direct": q.direct,
                                         "referenced": q.referenced}) + "\n" for q in quads[:12]))  # fmt: skip
    ranker = tmp_path / "ranker"
    cli("train-scar", qfile, "--encoder", tiny_encoder, "--epochs", 2, "--linear-dim", 16, "--max-length", 64,
        "-o", ranker, "--quiet", "--device", "cpu")  # fmt: skip
    report = json.loads((ranker / "training.json").read_text())
    assert report["rows"] == {"train": 10, "validation": 1, "test": 1} and len(report["history"]) == 2
    assert report["best_validation"] == max(h["val"]["all"] for h in report["history"])
    assert not list(tmp_path.glob(".ranker.scar-*"))  # the work folder is gone once done
    data = ROOT / "examples" / "sample_alpaca.json"
    out = tmp_path / "picked.json"
    cli("select", data, "--method", "scar", "--ranker", ranker, "--top", 5, "-o", out, "--with-scores", "--quiet",
        "--cache-dir", tmp_path / "c", "--device", "cpu")  # fmt: skip
    kept = json.loads(out.read_text())
    assert len(kept) == 5
    records = json.loads(data.read_text())
    loaded = load_ranker(ranker)
    pairs = [(r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else ""), r["output"]) for r in records]
    scores = score_pairs(loaded, pairs)
    best = sorted(range(len(records)), key=lambda i: -scores[i])[:5]
    assert sorted(records.index({k: v for k, v in r.items() if k in records[0]}) for r in kept) == sorted(best)
    # a second run of the same command on an existing folder needs --overwrite
    again = cli("train-scar", qfile, "--encoder", tiny_encoder, "-o", ranker, check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_fit_step_trains_once_and_names_the_ranker_in_a_recipe(tiny_encoder, quads, tmp_path) -> None:
    import instructsift.pipeline as pipeline
    import instructsift.recipe as recipes

    qfile = tmp_path / "quads.jsonl"
    qfile.write_text("".join(json.dumps({"instruction": q.instruction, "human": q.human, "direct": q.direct}) + "\n"
                             for q in quads[:6]))  # fmt: skip
    text = f"""
input: {ROOT / "examples" / "sample_alpaca.json"}
output: {tmp_path / "kept.json"}
cache_dir: {tmp_path / "cache"}
steps:
  - fit: scar_ranker
    as: rk
    with: {{quads: {qfile}, encoder: {tiny_encoder}, epochs: 1, linear_dim: 16, max_length: 64, device: cpu}}
  - score: scar
    with: {{ranker: "@rk", device: cpu}}
  - select: top
    with: {{column: scar, k: 4}}
"""
    path = tmp_path / "scar.yaml"
    path.write_text(text)
    logs: list[str] = []
    result = pipeline.run(recipes.load(path), progress=False, log=logs.append)
    assert len(json.loads((tmp_path / "kept.json").read_text())) == 4
    folder = Path(result.artifacts["rk"])
    assert folder.is_relative_to(tmp_path / "cache" / "artifacts") and (folder / "model.safetensors").exists()
    assert any("train-scar: best validation accuracy" in m for m in logs)
    logs.clear()
    pipeline.run(recipes.load(path), progress=False, log=logs.append, overwrite=True)
    assert any("SCAR ranker from" in m and ": cached (" in m for m in logs), logs


def test_the_example_recipe_trains_a_ranker_and_selects_with_it(tiny_encoder, tmp_path, monkeypatch) -> None:
    """examples/recipes/scar.yaml as written (quads relative to it, from any folder), with the tiny encoder
    in place of all-MiniLM-L6-v2 and one epoch to keep it fast: the fit step's ranker scores every row
    and the top quarter is kept, the same rows as that ranker's own scores pick."""
    import instructsift.pipeline as pipeline
    import instructsift.recipe as recipes

    monkeypatch.chdir(tmp_path)
    recipe = recipes.load(ROOT / "examples" / "recipes" / "scar.yaml", {"output": tmp_path / "kept.json"})
    fit, score, top = recipe.steps
    assert (fit.kind, fit.name, score.name, top.name) == ("fit", "scar_ranker", "scar", "top")
    assert (
        fit.options["quads"] == str(ROOT / "examples" / "sample_quads.jsonl") and fit.options["encoder"] == "embedded"
    )
    assert score.options["ranker"] == "@ranker" and top.options["ratio"] == 0.25
    assert len(read_quads(fit.options["quads"])) == 24
    fit.options.update(encoder=str(tiny_encoder), epochs=1, linear_dim=16, max_length=64, device="cpu")
    score.options["device"] = "cpu"
    recipe.settings.dropped = None
    recipe.settings.cache_dir = str(tmp_path / "cache")
    result = pipeline.run(recipe, progress=False, log=lambda _m: None)
    kept = json.loads((tmp_path / "kept.json").read_text())
    records = json.loads((ROOT / "examples" / "sample_alpaca.json").read_text())
    assert len(kept) == 8  # 25% of 32
    pairs = [(r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else ""), r["output"]) for r in records]
    scores = score_pairs(load_ranker(result.artifacts["ranker"]), pairs)
    best = sorted(range(len(records)), key=lambda i: -scores[i])[:8]
    assert sorted(records.index(r) for r in kept) == sorted(best)


@pytest.mark.slow  # generation with the embedded SmolLM2 (and its one-time conversion): minutes on a busy CPU
def test_synthesize_with_a_local_model_is_cached(tmp_path) -> None:
    from instructsift.models import use_cache_root
    from instructsift.train.synthesize import Generator, prompt_for, read_rows, synthesize

    data = tmp_path / "two.json"
    records = json.loads((ROOT / "examples" / "sample_alpaca.json").read_text())[:2]
    data.write_text(json.dumps(records))
    rows = read_rows(data)
    assert rows[0]["human"] == records[0]["output"]
    assert records[0]["output"] in prompt_for("referenced", "task", records[0]["output"])
    gen = Generator(model="embedded", max_tokens=4, device="cpu", batch_size=2)
    logs: list[str] = []
    with use_cache_root(tmp_path / "cache"):
        first, failed = synthesize(rows, ["direct", "referenced"], gen, progress=False, log=logs.append)
        assert failed == 0 and all(r["direct"].strip() and r["referenced"].strip() for r in first)
        assert any("4 answers to generate" in m for m in logs)
        logs.clear()
        again, _ = synthesize(rows, ["direct", "referenced"], gen, progress=False, log=logs.append)
    assert again == first and not logs  # all from the cache: nothing generated


def test_an_interrupted_training_resumes_to_the_same_ranker(tiny_encoder, quads, tmp_path) -> None:
    config = ScarTrainConfig(
        encoder=str(tiny_encoder), linear_dim=16, max_length=48, epochs=2, save_every=1, device="cpu"
    )
    rows = quads[:12]  # 10 to train on: 3 steps an epoch
    whole = Trainer(rows, tmp_path / "a", config).run(progress=False)

    def stop(message: str) -> None:
        if "epoch 1:" in message:
            raise KeyboardInterrupt  # as Ctrl-C after the first epoch's last step, before its checkpoint

    with pytest.raises(KeyboardInterrupt):
        Trainer(rows, tmp_path / "b", config).run(progress=False, log=stop)
    assert not (tmp_path / "b").exists() and list(tmp_path.glob(".b.scar-*/state.json"))
    logs: list[str] = []
    resumed = Trainer(rows, tmp_path / "b", config).run(progress=False, log=logs.append)
    assert logs[0] == "train-scar: resuming at epoch 1, batch 2"
    assert resumed["history"] == whole["history"] and resumed["test"] == whole["test"]
    pairs = pairs_of(quads[12:15])
    assert score_pairs(load_ranker(tmp_path / "b"), pairs) == score_pairs(load_ranker(tmp_path / "a"), pairs)


def test_a_ranker_without_a_tokenizer_takes_its_encoders_through_the_resolver(
    tiny_encoder, quads, tmp_path, monkeypatch
) -> None:
    """A ranker folder without tokenizer files (as the reference code saves one) reads its encoder's
    tokenizer from `encoder_name` through `models.resolve_tokenizer`: a folder as it is, a hub id the
    hub cannot give is the resolver's clear error, no `encoder_name` is an error naming the folder."""
    from huggingface_hub import constants

    from instructsift.data.errors import MissingFileError
    from instructsift.models.loader import ModelUnreachableError

    model, tok = build_ranker(tiny_encoder, linear_dim=16)
    folder = save_ranker(model.eval(), tok, tmp_path / "ranker", str(tiny_encoder))
    pairs = pairs_of(quads[:4])
    expected = score_pairs(load_ranker(folder), pairs)
    for f in folder.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab")):
            f.unlink()
    assert not (folder / "tokenizer_config.json").exists()
    assert score_pairs(load_ranker(folder), pairs) == expected  # the encoder folder's tokenizer

    config = json.loads((folder / "config.json").read_text())
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-empty"))
    (folder / "config.json").write_text(json.dumps({**config, "encoder_name": "no-such-org/no-such-encoder"}))
    with pytest.raises(ModelUnreachableError, match="no-such-org/no-such-encoder: cannot get this model"):
        load_ranker(folder)
    (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "encoder_name"}))
    with pytest.raises(MissingFileError, match="no tokenizer files, and no encoder_name"):
        load_ranker(folder)


def test_bad_rankers_and_options_are_clear_errors(tmp_path) -> None:
    from instructsift.data.errors import MissingFileError
    from instructsift.errors import UsageError
    from instructsift.methods import get_method

    scar = get_method("scar")
    with pytest.raises(UsageError, match="needs ranker="):
        scar.expand({"ratio": 0.1})
    score, top = scar.expand({"ratio": 0.1, "ranker": "r/", "max_length": 256})
    assert score == {"score": "scar", "with": {"ranker": "r/", "max_length": 256}}
    assert top["with"] == {"column": "scar", "ratio": 0.1, "of": "all"}
    pickle_only = tmp_path / "pk"
    pickle_only.mkdir()
    config = {"model_type": "style_ranker", "encoder_name": "x", "hidden_dim": 32, "linear_dim": 8}
    (pickle_only / "config.json").write_text(json.dumps(config))
    (pickle_only / "pytorch_model.bin").write_bytes(b"not loaded")
    (pickle_only / "encoder_config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32,
                                                                 "num_attention_heads": 2, "num_hidden_layers": 1}))  # fmt: skip
    with pytest.raises(MissingFileError, match="pytorch_model.bin \\(a pickle\\), which instructsift does not load"):
        load_ranker(pickle_only)
    (pickle_only / "config.json").write_text(json.dumps({**config, "hidden_dim": 64}))
    with pytest.raises(MissingFileError, match="hidden_dim 64 differs from the encoder's hidden size 32"):
        load_ranker(pickle_only)
    with pytest.raises(MissingFileError, match="no such ranker folder"):
        load_ranker(tmp_path / "nope")
    with pytest.raises(MissingFileError, match="not 'style_ranker'"):
        (tmp_path / "cfg").mkdir()
        (tmp_path / "cfg" / "config.json").write_text('{"model_type": "bert"}')
        load_ranker(tmp_path / "cfg")


def test_loading_a_model_turns_the_hub_bars_off(tiny_encoder) -> None:
    """transformers' own progress bars (loading, writing shards) are off wherever instructsift loads a model
    (`models.hf_bars_off`): the ranker's encoder, and a sentence-transformers encoder."""
    from transformers.utils import logging as hf_logging

    from instructsift.scoring.embed import Embed

    was = hf_logging.is_progress_bar_enabled()
    try:
        for load in (lambda: build_ranker(tiny_encoder, linear_dim=16), lambda: Embed(device="cpu").load()):
            hf_logging.enable_progress_bar()
            load()
            assert not hf_logging.is_progress_bar_enabled()
    finally:
        (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()
