"""`compare`'s judged win rate: each tuned model answers the held-out instructions, and a judge rates those
answers against the answers of the random model (the first random seed's trial).

Generation: greedy decoding (transformers `generate`, batched, left-padded) of the last answer turn of each
held-out example, from the prompt the fine-tuning used (the same template and S start tokens), at most
`max_new_tokens` new tokens, stopping at EOS. A prompt longer than the fine-tuning's `max_length` keeps its
last `max_length` tokens. Answers are cached beside the trial (`answers-<key>.json`, written atomically),
keyed by the trial, the held-out content and the generation settings: a rerun does not generate again.

Judging is the repository's pairwise standard (`benchmarks/judge_pairwise.py`): the AlpaGasus judge
(`scoring.judge`, any OpenAI-compatible server) rates each answer alone on its 0-5 scale, and an answer
wins when it is rated above the random model's answer to the same instruction, ties when rated equal.
Each answer is rated on its own, so there is no answer order and no position bias to cancel. The ratings
go through the score engine's cache (by answer content and judge settings): a rerun asks nothing again,
and a killed run loses only the requests in flight. Win rate = (wins + ties / 2) / n, over the n pairs
where both answers got a rating; a pair with a missing rating is counted apart with its reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from ..registry import OptionalFilePath, StrictModel, flag

GEN_VERSION = 1  # bump when a change makes cached answers incomparable


def _flag(name: str) -> dict[str, str]:
    """A field's command-line flag (`compare --judge-url`), where it is not the field's name."""
    return {"flag": name}


class JudgeSpec(StrictModel):
    """The recipe's `judge:` mapping; `compare`'s win-rate options are generated from it (each field's
    flag declared on it: --judge-url, ..., --max-new-tokens, --gen-batch-size)."""

    url: str = Field(
        description="OpenAI-compatible judge server; answers are generated and judged",
        json_schema_extra=_flag("judge-url"),
    )
    model: str = Field(description="model name on the judge server", json_schema_extra=_flag("judge-model"))
    key_env: str | None = Field(
        None,
        description="environment variable holding the API key (never printed)",
        json_schema_extra=_flag("judge-key-env"),
    )
    dimension: str = Field(
        "accuracy", description="accuracy or helpfulness", json_schema_extra=_flag("judge-dimension")
    )
    prompt: OptionalFilePath = Field(
        None, description="custom AlpaGasus-style prompt file", json_schema_extra=_flag("judge-prompt")
    )
    concurrency: int | None = Field(
        None, ge=1, description="judge requests in flight at once [8]", json_schema_extra=_flag("judge-concurrency")
    )
    timeout: float | None = Field(
        None, gt=0, description="seconds per judge request [60]", json_schema_extra=_flag("judge-timeout")
    )
    retries: int | None = Field(
        None, ge=0, description="retries on timeouts, 429 and 5xx [4]", json_schema_extra=_flag("judge-retries")
    )
    max_tokens: int | None = Field(
        None, ge=1, description="tokens the judge may reply with [16]", json_schema_extra=_flag("judge-max-tokens")
    )
    max_new_tokens: int = Field(256, ge=1, description="tokens each tuned model may answer with")
    batch_size: int = Field(
        8, ge=1, description="held-out prompts generated at once", json_schema_extra=_flag("gen-batch-size")
    )

    def judge(self) -> Any:
        """The server judge these settings ask for (the alpagasus scorer's own factory and checks)."""
        from ..scoring.judge import Judge

        return Judge(
            judge_url=self.url, judge_model=self.model, judge_key_env=self.key_env, judge_dimension=self.dimension,
            judge_prompt=self.prompt, judge_concurrency=self.concurrency, judge_timeout=self.timeout,
            judge_retries=self.retries, judge_max_tokens=self.max_tokens,
        )  # fmt: skip


def from_options(given: dict[str, Any]) -> dict[str, Any] | None:
    """The `judge:` mapping of the win-rate options given on the command line (field name -> value), None
    when none is; any of them without the server's url is an error naming their flags, as no answers are
    generated or judged without a judge."""
    if not given:
        return None
    if "url" not in given:
        from ..data.errors import OptionError

        fields = JudgeSpec.model_fields
        named = ", ".join(flag(k, fields[k]) for k in given)
        raise OptionError(f"{named}: only with {flag('url', fields['url'])} (the win rate's judge server)")
    return dict(given)


def _template_prompt(example: Any, template: Any, tokenizer: Any) -> tuple[int, str]:
    turn = example.answer_turns[-1] if example.answer_turns else len(example.messages)
    return turn, template.render(example.messages[:turn], tokenizer)


def generate(model_dir: str | Path, examples: Sequence[Any], settings: dict[str, Any], *,
             progress: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """Greedy answers of the model in `model_dir` to the last answer turn of each example (see the module
    docstring): [{id, answer, new_tokens, stopped, prompt_cut}], in order."""
    import torch
    from transformers import GenerationConfig

    from ..models import load_causal_lm
    from ..progress import progress_bar
    from ..scoring.templates import get_template, start_ids

    lm = load_causal_lm(str(model_dir), dtype=settings["dtype"], device=settings["device"],
                        trust_remote_code=settings["trust_remote_code"])  # fmt: skip
    tok, model = lm.tokenizer, lm.model
    template = get_template(settings["template"])
    start = list(start_ids(tok))
    limit = settings["max_length"]
    prompts = [_template_prompt(ex, template, tok)[1] for ex in examples]
    ids = [start + t for t in (tok(prompts, add_special_tokens=False).input_ids if prompts else [])]
    cut = [len(x) > limit for x in ids]
    ids = [x[-limit:] for x in ids]
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else (eos if eos is not None else 0)
    config = GenerationConfig(do_sample=False, max_new_tokens=settings["max_new_tokens"], pad_token_id=pad,
                              eos_token_id=eos)  # fmt: skip
    out: list[dict[str, Any] | None] = [None] * len(examples)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    size = settings["batch_size"]
    with progress_bar(progress and bool(ids)) as bar, torch.inference_mode():
        task = bar.add_task("generate", total=len(ids), rate="")
        for lo in range(0, len(order), size):
            batch = order[lo : lo + size]
            width = max(len(ids[i]) for i in batch)
            inputs = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in batch], device=model.device)
            mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in batch], device=model.device)
            new = model.generate(input_ids=inputs, attention_mask=mask, generation_config=config)[:, width:].tolist()
            for i, toks in zip(batch, new, strict=True):
                stop = toks.index(eos) if eos is not None and eos in toks else None
                kept = toks if stop is None else toks[:stop]
                out[i] = {
                    "id": examples[i].id,
                    "answer": tok.decode(kept, skip_special_tokens=True).strip(),
                    "new_tokens": len(kept),
                    "stopped": stop is not None,
                    "prompt_cut": cut[i],
                }
            bar.advance(task, len(batch))
    return [a for a in out if a is not None]


class Answers:
    """Held-out answers of each trial's tuned model, cached beside the trial under the runner's cache."""

    def __init__(self, runner: Any, max_new_tokens: int, batch_size: int, *, progress: bool = True,
                 log: Callable[[str], None] | None = None):  # fmt: skip
        cfg = runner.config
        self.runner = runner
        self.settings = {
            "version": GEN_VERSION,
            "decoding": "greedy",
            "max_new_tokens": max_new_tokens,
            "template": cfg.template,
            "max_length": cfg.max_length,
            "dtype": runner.eval_dtype,
            "device": cfg.device,
            "trust_remote_code": cfg.trust_remote_code,
            "eval": runner.settings()["eval"],
        }
        key = json.dumps({k: v for k, v in self.settings.items() if k != "device"}, sort_keys=True)
        self.file = f"answers-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
        self.batch_size = batch_size
        self.progress = progress
        self.log = log or (lambda _m: None)
        self.generated: list[str] = []  # trial keys generated by this run

    def path(self, key: str) -> Path:
        return self.runner.root / key / self.file

    def cached(self, key: str) -> list[dict[str, Any]] | None:
        p = self.path(key)
        return json.loads(p.read_text(encoding="utf-8"))["answers"] if p.is_file() else None

    def make(self, key: str, model_dir: Path) -> list[dict[str, Any]]:
        """The answers of trial `key`'s model in `model_dir`: cached, or generated now and saved."""
        from ..atomic import write_text

        done = self.cached(key)
        if done is not None:
            return done
        self.log(f"trial {key}: answering {len(self.runner.eval_examples)} held-out instructions")
        answers = generate(model_dir, self.runner.eval_examples, {**self.settings, "batch_size": self.batch_size},
                           progress=self.progress)  # fmt: skip
        write_text(self.path(key), json.dumps({"settings": self.settings, "answers": answers}, indent=2))
        self.generated.append(key)
        return answers

    def of(self, trial: Any, subset: Sequence[int]) -> list[dict[str, Any]]:
        """A finished trial's answers; its model is fine-tuned again if it was deleted before answering."""
        done = self.cached(trial.key)
        if done is not None:
            return done
        with self.runner.tuned_model(subset) as model_dir:
            return self.make(trial.key, model_dir)


def judged(examples: Sequence[Any], answers: dict[str, list[dict[str, Any]]], judge: Any, *,
           cache_dir: Any = None, progress: bool = True) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """The judge's columns for every trial's answer to every held-out example (trial name -> rows in order),
    scored through the engine and its cache."""
    from ..data.example import Example, Message
    from ..data.io import Dataset
    from ..engine.local import score

    rated: list[Example] = []
    for name, rows in answers.items():
        for i, (ex, a) in enumerate(zip(examples, rows, strict=True)):
            turn = ex.answer_turns[-1] if ex.answer_turns else len(ex.messages)
            messages = (*ex.messages[:turn], Message("assistant", a["answer"]))
            rated.append(Example(id=f"{name}/{ex.id}", messages=messages, row=i))
    table = score(Dataset("compare-answers", "alpaca", "json", rated), [judge], cache_dir=cache_dir, progress=progress)
    cols = table.select(["judge", "judge_reason"]).to_pylist()
    n = len(examples)
    return {name: cols[k * n : (k + 1) * n] for k, name in enumerate(answers)}


def verdicts(ratings: list[dict[str, Any]], reference: list[dict[str, Any]], answers: list[dict[str, Any]],
             ref_answers: list[dict[str, Any]]) -> list[dict[str, Any]]:  # fmt: skip
    """Per held-out instruction: both answers, both ratings and win / tie / loss (None, with the reason,
    where a rating is missing)."""
    out = []
    for mine, ref, a, b in zip(ratings, reference, answers, ref_answers, strict=True):
        s, r = mine["judge"], ref["judge"]
        if s is None or r is None:
            verdict = None
            reason = "; ".join(f"{who}: {x['judge_reason']}" for who, x in (("answer", mine), ("random", ref))
                               if x["judge"] is None)  # fmt: skip
        else:
            verdict, reason = ("win" if s > r else "tie" if s == r else "loss"), None
        out.append({"id": a["id"], "answer": a["answer"], "random_answer": b["answer"], "score": s,
                    "random_score": r, "verdict": verdict, "reason": reason})  # fmt: skip
    return out


def win_rate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """wins, ties, losses, missing, n (rated pairs) and (wins + ties/2)/n (None when n is 0)."""
    wins = sum(v["verdict"] == "win" for v in rows)
    ties = sum(v["verdict"] == "tie" for v in rows)
    losses = sum(v["verdict"] == "loss" for v in rows)
    n = wins + ties + losses
    return {"win_rate": (wins + 0.5 * ties) / n if n else None, "n": n, "wins": wins, "ties": ties,
            "losses": losses, "missing": len(rows) - n}  # fmt: skip


STANDARD = (
    "each answer rated alone by the judge (0-5); a win when rated above the random model's answer to the same "
    "instruction, a tie when equal (counted half); pairs with a missing rating are left out of n"
)

__all__ = ["STANDARD", "Answers", "JudgeSpec", "from_options", "generate", "judged", "verdicts", "win_rate"]


def run(spec: Any, runner: Any, answers: Answers, judge: Any, trials: Sequence[Any], subsets: dict[str, Sequence[int]],
        kinds: dict[str, str], *, progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Every trial's answers, the judge's ratings and each trial's win rate against the random model:
    what results.json holds under `judge` (`trials`: name -> win rate and per-instruction verdicts)."""
    from ..models import use_cache_root

    reference = f"random-{spec.seed}"
    texts = {t.name: answers.of(t, subsets[t.name]) for t in trials}
    before = dict(judge.stats)
    with use_cache_root(runner.cache_dir):
        ratings = judged(runner.eval_examples, texts, judge, progress=progress)
    per_trial = {}
    for t in trials:
        if t.name == reference:
            continue
        rows = verdicts(ratings[t.name], ratings[reference], texts[t.name], texts[reference])
        per_trial[t.name] = {**win_rate(rows), "kind": kinds[t.name], "verdicts": rows}
    rated = [r["judge"] for r in ratings[reference]]
    return {
        "reference": reference,
        "reference_note": f"the random model: the model fine-tuned on the first random seed's pick ({reference})",
        "standard": STANDARD,
        "judge": judge.describe(),
        "generation": {k: v for k, v in answers.settings.items() if k != "eval"} | {"batch_size": answers.batch_size},
        "generated_now": len(answers.generated),
        "requests_now": judge.stats["requests"] - before.get("requests", 0),
        "reference_scores": {"rated": sum(x is not None for x in rated), "of": len(rated)},
        "trials": per_trial,
    }
