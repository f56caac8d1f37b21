"""IFD equals a straightforward one-example-at-a-time implementation of its definition, on real rows."""

from __future__ import annotations

import json
import math

import pytest
from tolerances import BF16_REL, ifd_field, loss, ratio

from instructsift.data import Example, read
from instructsift.scoring.ifd import IFD
from instructsift.scoring.templates import get_template


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
    [
        ("cherry", "alpaca"),
        ("cherry", "chat"),
        ("cherry", "none"),
        ("superfiltering", "none"),
        ("superfiltering", "alpaca"),
        ("superfiltering", "chat"),
    ],
)
def test_ifd_matches_reference(lm32, alpaca_rows, method, template):
    scorer = IFD(model=lm32, method=method, template=template)
    got = run(scorer, alpaca_rows)
    for ex in alpaca_rows:
        want = reference(lm32, ex, method, template, scorer.max_length)
        row = got[ex.content_hash]
        assert row["reason"] is None
        for key in want:
            assert row[key] == ifd_field(key, want[key]), (ex.id, key)


def test_template_file(lm32, alpaca_rows, tmp_path):
    path = tmp_path / "vicuna.json"
    path.write_text(json.dumps({"turn_no_input": "USER: {instruction}\nASSISTANT:", "marker": "ASSISTANT:"}))
    scorer = IFD(model=lm32, method="cherry", template=str(path))
    got = run(scorer, alpaca_rows[:2])
    for ex in alpaca_rows[:2]:
        want = reference(lm32, ex, "cherry", str(path), scorer.max_length)
        assert got[ex.content_hash]["ifd"] == ratio(want["ifd"])


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
            assert row[key] == ifd_field(key, want[key]), (ex.id, key)


def test_batched_equals_unbatched(lm32, alpaca_rows, multiturn_rows):
    rows = alpaca_rows + multiturn_rows
    big = run(IFD(model=lm32, method="cherry", batch_tokens=100_000), rows)
    one = run(IFD(model=lm32, method="cherry", batch_tokens=1), rows)  # a budget of 1 forces batches of one
    for h, row in big.items():
        for key in ("loss_cond", "loss_direct", "ifd", "ifd_ppl"):
            assert row[key] == ifd_field(key, one[h][key]), (h, key)


def test_truncation_and_no_room(lm32, alpaca_rows):
    ex = max(alpaca_rows, key=lambda e: len(e.response))
    tok = lm32.tokenizer
    prompt_len = len(tok(get_template("alpaca").render(ex.messages[:1], tok), add_special_tokens=False).input_ids)
    scorer = IFD(model=lm32, method="cherry", max_length=prompt_len + 5)
    row = run(scorer, [ex])[ex.content_hash]
    assert row["truncated"] is True and row["answer_tokens"] == 5
    want = reference(lm32, ex, "cherry", "alpaca", prompt_len + 5)
    assert row["ifd"] == ratio(want["ifd"])

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
        assert fast[h]["ifd"] == pytest.approx(exact[h]["ifd"], rel=BF16_REL)


def test_templates_are_the_papers_text():
    """The prompts, written out here by hand from Stanford Alpaca's train.py and Superfiltering's code."""
    from instructsift.data import Message

    with_input = [Message("user", "Add the numbers.", context="2, 3")]
    without = [Message("user", "Name a colour.")]
    assert get_template("alpaca").render(with_input) == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nAdd the numbers.\n\n### Input:\n2, 3\n\n### Response:"
    )
    assert get_template("alpaca").render(without) == (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nName a colour.\n\n### Response:"
    )
    assert get_template("alpaca").marker == "### Response:"
    assert get_template("none").render(with_input) == "Add the numbers.\n2, 3\n"
    assert get_template("none").render(without) == "Name a colour.\n"
    assert get_template("none").marker == get_template("chat").marker == ""


@pytest.fixture(scope="module")
def lm32_bos(lm32):
    """The same weights with a tokenizer that puts a BOS at the start, as Llama-family tokenizers do."""
    from transformers import AutoTokenizer

    from instructsift.models import LoadedModel

    tok = AutoTokenizer.from_pretrained(lm32.source.path, add_bos_token=True)
    assert tok("").input_ids == [tok.bos_token_id]
    return LoadedModel(lm32.model, tok, lm32.source, lm32.dtype, lm32.device)


@pytest.mark.parametrize("template", ["alpaca", "chat"])
def test_start_token_is_put_once(lm32_bos, alpaca_rows, template):
    """S = [BOS] starts both sequences, exactly once: the reference builds the prompt the tokenizer's own
    way (`tok(text)` with its special tokens, or `apply_chat_template(tokenize=True)`)."""
    import torch

    tok = lm32_bos.tokenizer
    bos = tok.bos_token_id
    scorer = IFD(model=lm32_bos, method="cherry", template=template)
    got = run(scorer, alpaca_rows[:2])
    for ex in alpaca_rows[:2]:
        if template == "chat":
            msgs = [{"role": "user", "content": ex.messages[0].text}]
            prompt = list(
                tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
            )
            marker = [bos]
        else:
            prompt = tok(get_template("alpaca").render(ex.messages[:1])).input_ids
            marker = tok("### Response:").input_ids
        assert prompt[0] == bos and prompt[1] != bos and marker[0] == bos
        answer = tok(ex.response, add_special_tokens=False).input_ids
        losses = []
        for context in (prompt, marker):
            ids = torch.tensor([context + answer])
            labels = ids.clone()
            labels[0, : len(context)] = -100
            with torch.no_grad():
                losses.append(lm32_bos.model(input_ids=ids, labels=labels).loss.item())
        row = got[ex.content_hash]
        assert row["prompt_tokens"] == len(prompt)
        assert row["loss_cond"] == loss(losses[0])
        assert row["loss_direct"] == loss(losses[1])


def test_batches_respect_the_budget_and_the_padding_cap():
    import random

    from instructsift.scoring.losses import plan_batches

    rng = random.Random(0)
    lengths = [rng.choice([rng.randint(5, 40), rng.randint(100, 600)]) for _ in range(2000)]
    batches = plan_batches(lengths, 8192, max_batch=64, max_pad=0.1, min_tokens=256)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every sequence once
    assert batches == plan_batches(lengths, 8192, max_batch=64, max_pad=0.1, min_tokens=256)  # deterministic
    padded = 0
    for b in batches:
        width = max(lengths[i] for i in b)
        assert lengths[b[0]] == width and len(b) <= 64
        assert len(b) == 1 or len(b) * width <= 8192
        pad = sum(width - lengths[i] for i in b)
        assert len(b) * width <= 256 or pad <= 0.1 * len(b) * width
        padded += len(b) * width
    assert padded <= 1.1 * sum(lengths)
    one_each = plan_batches(lengths[:50], 1)
    assert all(len(b) == 1 for b in one_each) and len(one_each) == 50


def test_prefix_groups_share_what_neighbours_share():
    from instructsift.scoring.losses import prefix_groups

    sys_a = list(range(100, 120))  # 20 shared tokens
    sys_b = list(range(100, 110)) + list(range(200, 210))  # shares only 10 with sys_a
    ids = [sys_a + [1, 2, 3], sys_b + [4, 5], sys_a + [1, 9], [7, 8, 9], sys_b + [6], sys_a + [5]]
    limits = [len(x) - 1 for x in ids]
    limits[5] = 18  # this one needs a hidden state at position 18: the prefix must stop before it
    groups = prefix_groups(ids, limits, min_prefix=16)
    assert sorted(groups) == [(0, [3]), (18, [0, 2, 5]), (20, [1, 4])]
    assert prefix_groups(ids, limits, min_prefix=21) == [(21, [0, 2]), (0, [1, 3, 4, 5])]
    assert prefix_groups(ids, limits, min_prefix=22) == [(0, [0, 1, 2, 3, 4, 5])]


def test_shared_prefix_changes_nothing_but_the_work(lm32, alpaca_rows, multiturn_rows):
    """With and without the cached shared prefix, every loss is the same; the prefix is really used."""
    from instructsift.scoring.losses import AnswerLoss

    scorer = IFD(model=lm32, method="cherry")
    seqs = [
        s for turns in scorer.plan(alpaca_rows + multiturn_rows) for t in turns if t.cond for s in (t.cond, t.direct)
    ]
    pad = lm32.tokenizer.pad_token_id or 0
    shared, plain = AnswerLoss(lm32.model, pad), AnswerLoss(lm32.model, pad, share_prefix=False)
    plan = shared.plan([s.ids for s in seqs], [s.first - 1 for s in seqs], 8192)
    assert max(p for p, _ in plan) >= 25  # the Alpaca system text
    a = {i: r for idx, out in shared.run(seqs, 8192) for i, r in zip(idx, out, strict=True)}
    b = {i: r for idx, out in plain.run(seqs, 8192) for i, r in zip(idx, out, strict=True)}
    for i in range(len(seqs)):
        assert a[i][1] == b[i][1] and a[i][0] / a[i][1] == loss(b[i][0] / b[i][1])
