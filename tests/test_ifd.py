"""IFD equals a straightforward one-example-at-a-time implementation of its definition, on real rows."""

from __future__ import annotations

import json
import math

import pytest

from instructsift.data import Example, read
from instructsift.scoring.ifd import IFD
from instructsift.scoring.templates import get_template

TOL = 1e-4


@pytest.fixture(scope="module")
def lm32():
    from instructsift.models import load_causal_lm

    return load_causal_lm("embedded", dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def alpaca_rows(shared_data) -> list[Example]:
    """Short real Alpaca rows, with and without an input."""
    ds = read(shared_data / "alpaca" / "alpaca_random_9k.json", on_error="skip")
    short = [ex for ex in ds.examples if len(ex.response) < 160 and len(ex.instruction) < 200]
    with_input = [ex for ex in short if ex.messages[0].context][:2]
    without = [ex for ex in short if not ex.messages[0].context][:2]
    return with_input + without


@pytest.fixture(scope="module")
def multiturn_rows(shared_data) -> list[Example]:
    ds = read(shared_data / "multiturn" / "sharegpt_dummy_500.json")
    multi = [ex for ex in ds.examples if len(ex.answer_turns) >= 2 and sum(len(m.content) for m in ex.messages) < 400]
    return multi[:2]


def reference(lm, ex: Example, method: str, template_name: str, max_length: int) -> dict:
    """The definition, one sequence at a time, with the model's own loss."""
    import torch

    tok, model = lm.tokenizer, lm.model
    template = get_template(template_name)
    start = tok("").input_ids
    marker = tok(template.marker, add_special_tokens=False).input_ids if method == "cherry" else []
    totals = {"cond": [0.0, 0], "direct": [0.0, 0]}
    for t in ex.answer_turns:
        prompt = start + tok(template.render(ex.messages[:t], tok), add_special_tokens=False).input_ids
        answer = tok(ex.messages[t].content, add_special_tokens=False).input_ids[: max_length - len(prompt)]
        for kind, context in (("cond", prompt), ("direct", start + marker)):
            ids = torch.tensor([context + answer])
            labels = ids.clone()
            labels[0, : len(context)] = -100
            with torch.no_grad():
                loss = model(input_ids=ids, labels=labels).loss.item()
            n = len(answer) - (1 if not context else 0)
            totals[kind][0] += loss * n
            totals[kind][1] += n
    cond = totals["cond"][0] / totals["cond"][1]
    direct = totals["direct"][0] / totals["direct"][1]
    return {"loss_cond": cond, "loss_direct": direct, "ifd": cond / direct, "ifd_ppl": math.exp(cond - direct)}


def run(scorer: IFD, examples: list[Example]) -> dict[str, dict]:
    return {h: r for chunk in scorer.score(examples) for h, r in chunk}


@pytest.mark.parametrize(
    ("method", "template"),
    [("cherry", "alpaca"), ("cherry", "chat"), ("cherry", "none"), ("superfiltering", "none")],
)
def test_ifd_matches_reference(lm32, alpaca_rows, method, template):
    scorer = IFD(model=lm32, method=method, template=template)
    got = run(scorer, alpaca_rows)
    for ex in alpaca_rows:
        want = reference(lm32, ex, method, template, scorer.max_length)
        row = got[ex.content_hash]
        assert row["reason"] is None
        for key in want:
            assert row[key] == pytest.approx(want[key], abs=TOL), (ex.id, key)


def test_template_file(lm32, alpaca_rows, tmp_path):
    path = tmp_path / "vicuna.json"
    path.write_text(json.dumps({"turn_no_input": "USER: {instruction}\nASSISTANT:", "marker": "ASSISTANT:"}))
    scorer = IFD(model=lm32, method="cherry", template=str(path))
    got = run(scorer, alpaca_rows[:2])
    for ex in alpaca_rows[:2]:
        want = reference(lm32, ex, "cherry", str(path), scorer.max_length)
        assert got[ex.content_hash]["ifd"] == pytest.approx(want["ifd"], abs=TOL)


@pytest.mark.parametrize("method", ["cherry", "superfiltering"])
def test_multiturn_matches_reference(lm32, multiturn_rows, method):
    assert multiturn_rows, "the ShareGPT sample has multi-turn conversations"
    scorer = IFD(model=lm32, method=method)
    got = run(scorer, multiturn_rows)
    for ex in multiturn_rows:
        want = reference(lm32, ex, method, scorer.template, scorer.max_length)
        row = got[ex.content_hash]
        assert row["n_turns"] == row["turns_scored"] == len(ex.answer_turns) >= 2
        assert len(row["turn_ifd"]) == row["n_turns"]
        for key in want:
            assert row[key] == pytest.approx(want[key], abs=TOL)


def test_batched_equals_unbatched(lm32, alpaca_rows, multiturn_rows):
    rows = alpaca_rows + multiturn_rows
    big = run(IFD(model=lm32, method="cherry", batch_tokens=100_000), rows)
    one = run(IFD(model=lm32, method="cherry", batch_tokens=1), rows)  # a budget of 1 forces batches of one
    for h, row in big.items():
        for key in ("loss_cond", "loss_direct", "ifd", "ifd_ppl"):
            assert row[key] == pytest.approx(one[h][key], abs=TOL)


def test_truncation_and_no_room(lm32, alpaca_rows):
    ex = max(alpaca_rows, key=lambda e: len(e.response))
    tok = lm32.tokenizer
    prompt_len = len(tok(get_template("alpaca").render(ex.messages[:1], tok), add_special_tokens=False).input_ids)
    scorer = IFD(model=lm32, method="cherry", max_length=prompt_len + 5)
    row = run(scorer, [ex])[ex.content_hash]
    assert row["truncated"] is True and row["answer_tokens"] == 5
    want = reference(lm32, ex, "cherry", "alpaca", prompt_len + 5)
    assert row["ifd"] == pytest.approx(want["ifd"], abs=TOL)

    tight = IFD(model=lm32, method="cherry", max_length=prompt_len)
    row = run(tight, [ex])[ex.content_hash]
    assert row["ifd"] is None and row["loss_cond"] is None
    assert "leaves no room for the answer" in row["reason"]


def test_one_token_answer_without_context_has_a_reason(lm32):
    from instructsift.data import Message

    ex = Example("x", (Message("user", "Is water wet? Answer yes or no."), Message("assistant", "yes")), 0)
    assert len(lm32.tokenizer("yes", add_special_tokens=False).input_ids) == 1
    row = run(IFD(model=lm32, method="superfiltering"), [ex])[ex.content_hash]
    assert row["ifd"] is None and "nothing before it" in row["reason"]
    # With the cherry marker there is context, so the same answer scores.
    row = run(IFD(model=lm32, method="cherry"), [ex])[ex.content_hash]
    assert row["ifd"] is not None and math.isfinite(row["ifd"])


def test_bf16_is_close_to_fp32(alpaca_rows, lm32):
    """The fast dtype ranks like fp32 (values differ by bf16 rounding, not by a bug)."""
    fast = run(IFD(method="cherry", dtype="bfloat16"), alpaca_rows)
    exact = run(IFD(model=lm32, method="cherry"), alpaca_rows)
    for h in exact:
        assert fast[h]["ifd"] == pytest.approx(exact[h]["ifd"], abs=0.05)
