"""Synthesize SCAR's LLM answers: `direct` (the LLM answers the instruction unaided) and `referenced` (the
LLM rewrites the human answer in its own words, keeping its meaning), turning a data set into quads.

The prompts keep the intent of the reference code's (zhuang-li/SCAR `style_ranker/consts.py`), in their
own wording. Back ends: any OpenAI-compatible server (`url` + `model`, temperature 0, concurrent,
retried as the judge's), or a local causal LM (`model`, greedy `generate`, batched). Every answer is
cached under `<cache>/scores/synth-<key>/` by (kind, instruction, human answer) and the back end's
settings, so a rerun (or one after a kill) asks only for what is missing. A request that fails leaves the
row without that answer, with the reason on stderr; it is not cached and is asked again next time. A
server that cannot be reached, or that refuses the key, model or path, stops the run with one clear error.

Input: a quads JSON Lines file (rows with `human`; their other fields are kept), or any data set that
`instructsift.read` takes: each row's first user turn is the instruction (with `input`) and its first
answer the human answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.errors import InputError, OptionError, Reject
from ..models.embedded import EMBEDDED

KINDS = ("direct", "referenced")
PROBE_TIMEOUT = 10.0  # seconds for the first request that checks the server is there

DIRECT_PROMPT = """You are a capable, well-informed AI assistant. Complete the task described below as well as you can.

### Task:
{instruction}

### Your answer:
"""

REFERENCED_PROMPT = """You are a capable, well-informed AI assistant. Below is a task, followed by an answer \
someone else wrote for it. Write your own answer to the task that says the same things: keep every fact, \
step and conclusion of the given answer and add nothing it does not support, but express it the way you \
naturally would, as if you had never seen that answer. Never mention that you were given an answer.

### Task:
{instruction}

### Their answer:
{human}

### Your answer:
"""


def prompt_for(kind: str, instruction: str, human: str) -> str:
    if kind == "direct":
        return DIRECT_PROMPT.format(instruction=instruction)
    return REFERENCED_PROMPT.format(instruction=instruction, human=human)


@dataclass
class Generator:
    """One back end: a server (`url` set) or a local model; `max_tokens` new tokens per answer."""

    model: str = EMBEDDED
    url: str | None = None
    key_env: str | None = None
    max_tokens: int = 1024
    concurrency: int = 8
    timeout: float = 120.0
    retries: int = 4
    batch_size: int = 8  # local: prompts per generate call
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.url:
            from ..scoring.judge_client import base_url

            self.url = base_url(self.url)
        if self.max_tokens < 1 or self.concurrency < 1 or self.batch_size < 1 or self.retries < 0:
            raise OptionError("max_tokens, concurrency and batch_size must be at least 1, retries at least 0")
        self._lm: Any = None

    def config(self) -> dict[str, Any]:
        """What changes an answer (never the key)."""
        where = {"url": self.url} if self.url else {"local": self._fingerprint()}
        return {"synth": 1, "model": self.model, "max_tokens": self.max_tokens, "temperature": 0, **where}

    def _fingerprint(self) -> str:
        from ..models import resolve

        return resolve(self.model).fingerprint

    def generate(self, prompts: Sequence[str], on_answer: Callable[[int, str | None, str | None], None]) -> None:
        """Call `on_answer(i, text, reason)` for each prompt as its answer arrives (text None on failure)."""
        if self.url:
            from ..scoring.judge_client import _run

            _run(self._serve(prompts, on_answer))
        else:
            self._local(prompts, on_answer)

    async def _serve(self, prompts: Sequence[str], on_answer: Callable) -> None:
        import os

        import openai
        from openai import AsyncOpenAI

        from ..scoring.judge_client import JudgeServerError, _brief, backoff_delay, shown_url

        key = "no-key"
        if self.key_env:
            key = os.environ.get(self.key_env) or ""
            if not key:
                raise OptionError("{key_env}: that environment variable is not set", key_env=self.key_env)
        client = AsyncOpenAI(base_url=self.url, api_key=key, timeout=self.timeout, max_retries=0)
        gate = asyncio.Semaphore(self.concurrency)
        try:  # one cheap request first: a server that is not there is one clear error, not a failure per row
            await client.with_options(timeout=min(self.timeout, PROBE_TIMEOUT)).models.list()
        except (openai.APIConnectionError, openai.APITimeoutError) as e:
            await client.close()
            raise JudgeServerError(
                f"server {shown_url(self.url or '')}: cannot connect ({_brief(e)}); is it running?"
            ) from None
        except openai.APIError:
            pass  # it answered (a server without /models still serves chat completions)

        async def one(i: int, prompt: str) -> None:
            last = ""
            async with gate:
                for attempt in range(self.retries + 1):
                    try:
                        reply = await client.chat.completions.create(
                            model=self.model,
                            messages=[{"role": "user", "content": prompt}],
                            temperature=0,
                            max_tokens=self.max_tokens,
                        )
                        text = reply.choices[0].message.content if reply.choices else None
                        if isinstance(text, str) and text.strip():
                            on_answer(i, text.strip(), None)
                        else:
                            on_answer(i, None, "the server sent an empty answer")
                        return
                    except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as e:
                        raise JudgeServerError(
                            f"server {shown_url(self.url or '')}, model {self.model!r}: {_brief(e)}"
                        ) from None
                    except (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError) as e:
                        last = _brief(e)
                    except openai.APIStatusError as e:
                        if e.status_code < 500:
                            on_answer(i, None, f"HTTP {e.status_code}: {_brief(e)}")
                            return
                        last = _brief(e)
                    if attempt < self.retries:
                        await asyncio.sleep(backoff_delay(1.0, attempt))
            on_answer(i, None, f"no answer after {self.retries + 1} attempts: {last}")

        try:
            await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
        finally:
            await client.close()

    def _local(self, prompts: Sequence[str], on_answer: Callable) -> None:
        import torch

        from ..models import load_causal_lm

        if self._lm is None:
            self._lm = load_causal_lm(self.model, dtype="float32", device=self.device)
        lm = self._lm
        tok = lm.tokenizer
        tok.padding_side = "left"
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        texts = [
            tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            if tok.chat_template
            else p
            for p in prompts
        ]
        for lo in range(0, len(texts), self.batch_size):
            batch = texts[lo : lo + self.batch_size]
            enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=not tok.chat_template)
            with torch.inference_mode():
                out = lm.model.generate(
                    **enc.to(lm.device), max_new_tokens=self.max_tokens, do_sample=False, pad_token_id=pad
                )
            for j, row in enumerate(out[:, enc["input_ids"].shape[1] :]):
                text = tok.decode(row, skip_special_tokens=True).strip()
                on_answer(lo + j, text or None, None if text else "the model generated an empty answer")


# -- rows -----------------------------------------------------------------------------------------
def read_rows(path: str | Path, on_error: str = "fail") -> list[dict[str, Any]]:
    """Quads-shaped rows (instruction, input?, human, ...) from a quads file or any data set."""
    path = Path(path)
    if path.suffix == ".jsonl":
        first = next((ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()), "")
        try:
            is_quads = isinstance(json.loads(first), dict) and "human" in json.loads(first)
        except ValueError:
            is_quads = False
        if is_quads:
            rows = []
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                rec = json.loads(line)
                for name in ("instruction", "human"):
                    if not isinstance(rec.get(name), str) or not rec[name].strip():
                        raise InputError(Reject(str(path), None, n, name, "missing or not a non-empty string"))
                rows.append(rec)
            return rows
    from ..data import read

    ds = read(path, on_error=on_error)
    rows = []
    for ex in ds.examples:
        user = next((m for m in ex.messages if m.role == "user"), None)
        answer = next((m for m in ex.messages if m.role == "assistant"), None)
        if user is None or answer is None or not answer.content.strip():
            raise InputError(Reject(str(path), ex.row, ex.line, None, "needs an instruction and a non-empty answer"))
        row = {"instruction": user.content, "human": answer.content}
        if user.context:
            row["input"] = user.context
        rows.append(row)
    return rows


def _instruction(row: dict[str, Any]) -> str:
    return row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")


def synthesize(
    rows: list[dict[str, Any]],
    kinds: Sequence[str],
    generator: Generator,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Rows with the `kinds` answers added (from the cache where it has them); and how many failed."""
    import pyarrow as pa

    from ..models import cache_root
    from ..progress import progress_bar
    from ..scoring.cache import ScoreCache

    log = log or (lambda _m: None)
    for k in kinds:
        if k not in KINDS:
            raise OptionError(f"unknown kind {k!r} (known: {', '.join(KINDS)})")
    key = hashlib.sha256(
        json.dumps(
            {**generator.config(), "direct": DIRECT_PROMPT, "referenced": REFERENCED_PROMPT}, sort_keys=True
        ).encode()
    ).hexdigest()[:16]
    cache = ScoreCache(cache_root(), "synth", key, [("text", pa.string())])
    done = cache.load()

    def item_key(kind: str, row: dict[str, Any]) -> str:
        payload = json.dumps(
            [kind, _instruction(row), row["human"] if kind == "referenced" else ""], ensure_ascii=False
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    todo = [(k, i) for k in kinds for i, r in enumerate(rows) if item_key(k, r) not in done and not r.get(k)]
    failed = 0
    if todo:
        log(f"synthesize: {len(todo)} answers to generate ({len(rows) * len(kinds) - len(todo)} cached or given)")
        prompts = [prompt_for(k, _instruction(rows[i]), rows[i]["human"]) for k, i in todo]
        with progress_bar(progress) as bar:
            task = bar.add_task("synthesize", total=len(todo))

            def on_answer(j: int, text: str | None, reason: str | None) -> None:
                nonlocal failed
                k, i = todo[j]
                if text is None:
                    failed += 1
                    log(f"synthesize: row {i}, {k}: {reason}")
                else:
                    h = item_key(k, rows[i])
                    cache.record(h, {"text": text})
                    done[h] = {"text": text}
                bar.advance(task, 1)

            try:
                generator.generate(prompts, on_answer)
            finally:
                cache.close()
    out = []
    for r in rows:
        r = dict(r)
        for k in kinds:
            got = done.get(item_key(k, r))
            if not r.get(k) and got is not None:
                r[k] = got["text"]
        out.append(r)
    return out, failed
