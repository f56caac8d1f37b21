"""The AlpaGasus judge on any OpenAI-compatible server (vLLM, llama.cpp server, `transformers serve`, OpenAI).

Chen et al., 2024, "AlpaGasus" (ICLR) rated with ChatGPT at temperature 0; this back end sends the
same prompt to any server that speaks the OpenAI chat API, with the `openai` client library.

- Requests run concurrently (`concurrency` at a time) on an asyncio loop, each with a `timeout`.
- Timeouts, connection failures, 429 and 5xx are retried `retries` times with exponential backoff
  (`backoff` x 2^attempt, jittered, capped; a 429's Retry-After is honoured). The client's own retries
  are off so that every row records its attempts.
- Log-probabilities are requested; where the server returns them, the score is the expected value over
  the score tokens, otherwise the first number of the reply (see judge_prompts.py).
- A row read from a chat completion is cached by the engine (a rerun never pays for it twice), whether
  its score could be read or not, the moment its reply is read (`on_row`: a journal line, fsync'd, so a
  `kill -9` loses only the requests in flight); a row that got none (the server was down, timed out, refused, sent a
  malformed body) is missing with the reason and is kept out of the cache, so the next run asks again.
- 401, 403 and 404 stop the run: a wrong key, URL or model name is not a property of one row.
- The API key is read from the environment variable `key_env` (checked when the judge is made, read
  again for each chunk of requests); it is never stored in the scorer, its cache key, its description or
  its log lines, and credentials in the URL (`user:password@host`) are never printed either. Without
  `key_env` no key is sent (a placeholder), not even $OPENAI_API_KEY.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from ..data.errors import OptionError, Placeholder, UserError, literal
from ..data.example import Example
from .base import LIGHT, Resources, chunk_for, config_hash
from .judge_columns import COLUMN_REASONS, judge_row, judge_schema
from .judge_prompts import get_prompt, logprob_score, parse_reply

TOP_LOGPROBS = 20  # OpenAI's maximum; vLLM's default limit
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 60.0


class JudgeServerError(UserError):
    """A failure that is not about one row (bad key, unknown model, wrong URL): the run stops.
    A `UserError`, like other bad options, so the CLI reports it in one line."""


def _refused(text: str, hint: bool) -> JudgeServerError:
    """A refused request: `text`, with a hint (`hint`: no key was named) naming the judge's option for a key
    its own way (`judge_key_env=`, `--judge-key-env`)."""
    if not hint:
        return JudgeServerError(text)
    return JudgeServerError(
        literal(text) + " (name the key's environment variable with {judge_key_env})", "judge_key_env"
    )


def base_url(url: str, option: str = "url") -> str:
    """`http://host:port` -> `http://host:port/v1`; a URL with a path is used as it is. An error names `option`
    (a field name: `url=` in Python, `--url` on the command line)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise OptionError(
            "{" + option + "}: expected http(s)://host[:port][/path], e.g. http://127.0.0.1:8000/v1",
            **{option: Placeholder(repr(shown_url(url)))},
        )
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass
class _Outcome:
    row: dict[str, Any]
    requests: int


@dataclass
class ServerJudge:
    """AlpaGasus ratings from an OpenAI-compatible server at `url`, model `model`."""

    url: str
    model: str
    key_env: str | None = None  # the environment variable holding the API key (none: no key is sent)
    dimension: str = "accuracy"
    prompt: str | None = None  # a custom prompt file (see judge_prompts.get_prompt)
    concurrency: int = 8
    timeout: float = 60.0
    retries: int = 4
    backoff: float = 1.0
    max_tokens: int = 16  # the score comes first; the explanation after it is not needed
    logprobs: bool = True
    chunk_size: int | None = None
    resources: ClassVar[Resources] = LIGHT  # the server holds the model: plain Ray tasks
    columns: ClassVar[dict[str, str | None]] = COLUMN_REASONS
    name: str = field(default="judge", init=False)
    stats: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.url = base_url(self.url)
        self._prompt = get_prompt(self.dimension, self.prompt)
        for name, least in (("concurrency", 1), ("retries", 0), ("max_tokens", 1)):
            if getattr(self, name) < least:
                raise OptionError(f"{{{name}}} must be at least {least}, got {getattr(self, name)}", name)
        if self.timeout <= 0:
            raise OptionError(f"{{timeout}} must be above 0 seconds, got {self.timeout:g}", "timeout")
        self._api_key()  # fail early on a named but unset variable
        self._use_logprobs = self.logprobs
        self.stats = {"requests": 0, "replies": 0, "no_reply": 0}

    @property
    def chunks(self) -> tuple[int, int]:
        """Examples per chunk (`chunk_size` unset): eight requests per concurrent slot, at least 64, on any device."""
        n = max(64, 8 * self.concurrency)
        return (n, n)

    @property
    def schema(self) -> Any:
        return judge_schema()

    def _api_key(self) -> str:
        if self.key_env:
            key = os.environ.get(self.key_env)
            if not key:
                raise OptionError("{key_env}: that environment variable is not set", key_env=self.key_env)
            return key
        # No key option: send a placeholder (local servers take any; the client needs one), never a key
        # the user did not name for this server, such as $OPENAI_API_KEY.
        return "no-key"

    def cache_key(self) -> str:
        """Everything that changes a reply: server, model, prompt, scale, decoding. Not the key."""
        config = {
            "scorer": "judge-server/1",
            "url": self.url,
            "model": self.model,
            "prompt": self._prompt.config(),
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "logprobs": self.logprobs,
        }
        return config_hash(config)

    def describe(self) -> str:
        key = f"key from ${self.key_env}" if self.key_env else "no key option"
        return (
            f"{self.model} at {shown_url(self.url)} (OpenAI-compatible), prompt {self._prompt.name}, "
            f"concurrency {self.concurrency}, timeout {self.timeout:g}s, {self.retries} retries, {key}"
        )

    def cacheable(self, row: dict[str, Any]) -> bool:
        """Rows read from a chat completion are cached (scored or not); rows without one (no reply,
        an HTTP error, a malformed body) are asked again on the next run."""
        return row["judge_source"] is not None

    def check(self) -> None:
        """Fail now, in one line, when the server cannot be reached or refuses the key (a GET of its model
        list, not a rating): before hours of other work that ends in judging. A server without a model
        list (404 and the like) is taken as reachable."""
        import openai

        client = openai.OpenAI(
            base_url=self.url, api_key=self._api_key(), timeout=min(self.timeout, 30.0), max_retries=1
        )
        where = f"judge server {shown_url(self.url)}"
        try:
            client.models.list()
        except (openai.APIConnectionError, openai.APITimeoutError) as e:
            raise JudgeServerError(
                literal(f"{where} does not answer ({_brief(e)})") + ": start it, or fix {judge_url}", "judge_url"
            ) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise _refused(f"{where}: {_brief(e)}", not self.key_env) from None
        except (openai.APIStatusError, openai.APIResponseValidationError):
            pass
        finally:
            client.close()

    # -- scoring -------------------------------------------------------------------------------------
    def score(
        self,
        examples: Sequence[Example],
        skip: set[str] | frozenset[str] = frozenset(),
        advance: Callable[[float], None] | None = None,
        on_row: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """Yield (content_hash, columns) chunk by chunk; requests within a chunk run concurrently, and
        `on_row(content_hash, columns)` gets each row the moment its reply is read (the engine journals it)."""
        todo = [ex for ex in examples if ex.content_hash not in skip]
        chunk = chunk_for(self, "cpu")
        advance = advance or (lambda _n: None)
        for lo in range(0, len(todo), chunk):
            part = todo[lo : lo + chunk]
            rows = _run(self._score_chunk(part, advance, on_row))
            yield [(ex.content_hash, row) for ex, row in zip(part, rows, strict=True)]

    async def _score_chunk(
        self,
        part: Sequence[Example],
        advance: Callable[[float], None],
        on_row: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        from openai import AsyncOpenAI

        gate = asyncio.Semaphore(self.concurrency)
        client = AsyncOpenAI(base_url=self.url, api_key=self._api_key(), timeout=self.timeout, max_retries=0)

        async def one(ex: Example) -> dict[str, Any]:
            async with gate:
                out = await self._rate(client, ex)
            self.stats["requests"] += out.requests
            self.stats["replies" if self.cacheable(out.row) else "no_reply"] += 1
            if on_row is not None:
                on_row(ex.content_hash, out.row)
            advance(1)
            return out.row

        try:
            return list(await asyncio.gather(*(one(ex) for ex in part)))
        finally:
            await client.close()

    async def _rate(self, client: Any, ex: Example) -> _Outcome:
        import openai
        import pydantic

        messages = self._prompt.messages(ex)
        last = ""
        attempt = 0
        while attempt <= self.retries:
            wait = backoff_delay(self.backoff, attempt)
            asked_logprobs = self._use_logprobs
            try:
                reply = await self._request(client, messages)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as e:
                if asked_logprobs and "logprob" in str(e).lower():
                    # A server that refuses log-probabilities: ask again for a plain reply, now and from
                    # here on. The refusal is the server's setting, not this row's failure: no attempt used.
                    self._use_logprobs = False
                    continue
                return _Outcome(
                    judge_row(reason=f"the server refused the request: {_brief(e)}", attempts=attempt + 1), attempt + 1
                )
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as e:
                hint = not self.key_env and isinstance(e, openai.AuthenticationError)
                raise _refused(f"judge server {shown_url(self.url)}, model {self.model!r}: {_brief(e)}", hint) from None
            except openai.APITimeoutError:
                last = f"timed out after {self.timeout:g}s"
            except openai.APIConnectionError as e:
                last = f"connection failed ({_brief(e)})"
            except openai.RateLimitError as e:
                last = f"rate limited (429: {_brief(e)})"
                wait = max(wait, _retry_after(e))
            except openai.APIStatusError as e:
                if e.status_code < 500:
                    return _Outcome(
                        judge_row(reason=f"HTTP {e.status_code}: {_brief(e)}", attempts=attempt + 1), attempt + 1
                    )
                last = f"server error (HTTP {e.status_code}: {_brief(e)})"
            except (openai.APIResponseValidationError, json.JSONDecodeError, pydantic.ValidationError) as e:
                # a body that is not JSON, or JSON that is not a completion: not retried, not cached
                return _Outcome(judge_row(reason=f"malformed response: {_brief(e)}", attempts=attempt + 1), attempt + 1)
            else:
                return _Outcome(self._read(reply, attempt + 1), attempt + 1)
            if attempt < self.retries:
                await asyncio.sleep(wait)
            attempt += 1
        n = self.retries + 1
        return _Outcome(judge_row(reason=f"no reply after {n} attempt{'s' if n > 1 else ''}: {last}", attempts=n), n)

    async def _request(self, client: Any, messages: list[dict[str, str]]) -> Any:
        extra: dict[str, Any] = {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if self._use_logprobs else {}
        return await client.chat.completions.create(
            model=self.model, messages=messages, temperature=0, max_tokens=self.max_tokens, **extra
        )

    def _read(self, reply: Any, attempts: int) -> dict[str, Any]:
        """The score from one reply: log-probabilities where given, else the reply's first number."""
        choices = getattr(reply, "choices", None)
        if not isinstance(choices, list) or not choices:
            body = reply if isinstance(reply, str) else str(reply)
            return judge_row(raw=body[:2000], reason="malformed response: not a chat completion", attempts=attempts)
        choice = choices[0]
        text = getattr(getattr(choice, "message", None), "content", None)
        raw = text if isinstance(text, str) else ""
        scale = self._prompt.scores
        logprobs = getattr(choice, "logprobs", None)
        value, mass = logprob_score(getattr(logprobs, "content", None), scale)
        if value is not None:
            return judge_row(value, raw=raw, source="logprobs", mass=mass, attempts=attempts)
        value, reason = parse_reply(raw, scale.start, scale.stop - 1)
        return judge_row(value, raw=raw, reason=reason, source="reply", attempts=attempts)


def backoff_delay(base: float, attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (0-based): base x 2^attempt, jittered down by up
    to a quarter so that concurrent rows do not retry in step, capped at MAX_BACKOFF."""
    return min(base * 2**attempt * random.uniform(0.75, 1.0), MAX_BACKOFF)


def shown_url(url: str) -> str:
    """The URL as it may be printed: without any `user:password@` it carries."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _retry_after(e: Any) -> float:
    """Seconds a 429 asks us to wait (Retry-After / retry-after-ms), capped; 0 when absent."""
    headers = getattr(getattr(e, "response", None), "headers", None) or {}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return min(max(float(headers.get(name)) / scale, 0.0), MAX_RETRY_AFTER)
        except (TypeError, ValueError):
            continue
    return 0.0


def _brief(e: Exception) -> str:
    """An error message on one line, without the request (which could carry headers)."""
    message = getattr(e, "message", None) or str(e) or type(e).__name__
    return " ".join(str(message).split())[:300]


def _run(coro: Any) -> Any:
    """Run a coroutine to completion, also from code that already runs an event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
