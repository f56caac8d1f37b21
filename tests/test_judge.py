"""The AlpaGasus judge against real servers on loopback.

- `transformers serve` (transformers[serving]) serving the embedded SmolLM2: it ignores log-probability
  requests, so every score comes from the reply text, and the judge must agree with the reply it got.
- A small fault-injection HTTP server written here (stdlib http.server on 127.0.0.1) that times out,
  returns 500/429/garbage, is killed mid-run, or returns OpenAI-format log-probabilities.
- The local back end's expected score against a one-prompt-at-a-time computation from the model's logits.
Every server is stopped when its test ends; no request leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, cli_command
from tolerances import expected_score, ratio

import instructsift as isf
from instructsift.cli.core import cli_message
from instructsift.data import Example, read
from instructsift.scoring.judge import Judge
from instructsift.scoring.judge_client import JudgeServerError, ServerJudge
from instructsift.scoring.judge_local import LocalJudge
from instructsift.scoring.judge_prompts import SYSTEM, get_prompt, logprob_score, parse_reply

SECRET = "sk-instructsift-test-0123456789"

# -- real rows -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alpaca_file(shared_data, tmp_path_factory) -> Path:
    """Six short real Alpaca rows (three with an input) in a temporary JSON file."""
    records = json.loads((shared_data / "alpaca" / "alpaca_random_9k.json").read_text(encoding="utf-8"))
    short = [r for r in records if len(r["output"]) < 150 and len(r["instruction"]) < 150]
    picked = [r for r in short if r["input"]][:3] + [r for r in short if not r["input"]][:3]
    path = tmp_path_factory.mktemp("judge-data") / "alpaca6.json"
    path.write_text(json.dumps(picked, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def rows(alpaca_file) -> list[Example]:
    return read(alpaca_file).examples


def by_instruction(prompt: str, rows: list[Example]) -> int:
    """Which row a rating prompt is about."""
    hits = [i for i, ex in enumerate(rows) if f"### Instruction:\n{ex.messages[0].content}\n" in prompt]
    assert len(hits) == 1, prompt[:300]
    return hits[0]


# -- a fault-injection OpenAI-compatible server ----------------------------------------------------------

Reply = tuple[int, dict[str, str], bytes, float]  # status, headers, body, seconds to stall first


def completion(text: str | None, logprobs: Any = None) -> Reply:
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "judge",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
                "logprobs": logprobs,
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode(), 0.0


def error(status: int, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps({"error": {"message": f"injected {status}", "type": "test"}}).encode()
    return status, {"Content-Type": "application/json", **(headers or {})}, body, 0.0


class FaultServer:
    """An HTTP server on 127.0.0.1 whose `behave(prompt, n, body)` decides each reply (n = how many
    times this prompt was asked). `kill_after` stops the server for good after that many requests."""

    def __init__(self, behave: Callable[[str, int, dict], Reply], port: int = 0, kill_after: int | None = None):
        self.behave = behave
        self.kill_after = kill_after
        self.requests: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.dead = False
        self.in_flight = self.max_in_flight = 0  # requests being answered at once, now and at most
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner.lock:
                    if owner.dead:  # killed: drop the connection without a reply
                        self.close_connection = True
                        return
                    body = json.loads(raw)
                    prompt = body["messages"][-1]["content"]
                    n = owner.counts[prompt] = owner.counts.get(prompt, 0) + 1
                    owner.requests.append(
                        {
                            "prompt": prompt,
                            "auth": self.headers.get("Authorization"),
                            "body": body,
                            "at": time.monotonic(),
                        }
                    )
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                    kill = owner.kill_after is not None and len(owner.requests) >= owner.kill_after
                    owner.dead = kill
                try:
                    self._answer(prompt, n, body, kill)
                finally:
                    with owner.lock:
                        owner.in_flight -= 1

            def _answer(self, prompt: str, n: int, body: dict, kill: bool) -> None:
                status, headers, payload, stall = owner.behave(prompt, n, body)
                if stall and owner.stopping.wait(stall):
                    return
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass
                if kill:
                    threading.Thread(target=owner.stop, daemon=True).start()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def asked(self, prompt: str) -> int:
        return self.counts.get(prompt, 0)

    def stop(self) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            self.httpd.shutdown()
            self.httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        self.thread.join(5)


def server_judge(url: str, **kw: Any) -> ServerJudge:
    kw = {"concurrency": 3, "timeout": 5.0, "retries": 2, "backoff": 0.01, **kw}
    return ServerJudge(url=url, model="judge", **kw)


def run(judge: Any, dataset: Any, cache: Path | None = None) -> tuple[list[dict[str, Any]], dict]:
    stats: dict[str, Any] = {}
    table = isf.score(dataset, [judge], cache_dir=cache, use_cache=cache is not None, progress=False, stats=stats)
    return table.to_pylist(), stats["judge"]


# -- prompt and reply parsing ----------------------------------------------------------------------------


def test_reply_parsing_reads_the_first_number_or_says_why_not() -> None:
    assert parse_reply("4.5\nThe response is accurate and complete.") == (4.5, None)
    assert parse_reply("Score: 3\n\nThe answer misses the second part.") == (3.0, None)
    assert parse_reply("  5  ") == (5.0, None)
    assert parse_reply("0") == (0.0, None)
    for text, why in [
        ("I would rate this response highly.", "no number in the reply"),
        ("", "empty reply"),
        (None, "empty reply"),
        ("7\nExcellent.", "outside the scale 0-5"),
        ("-1", "outside the scale 0-5"),
    ]:
        value, reason = parse_reply(text)
        assert value is None and why in reason, (text, reason)


def test_prompt_is_the_alpagasus_triplet(rows, tmp_path) -> None:
    with_input = next(ex for ex in rows if ex.messages[0].context)
    msgs = get_prompt("accuracy").messages(with_input)
    assert msgs[0] == {"role": "system", "content": SYSTEM}
    user = msgs[1]["content"]
    assert user.startswith(f"### Instruction:\n{with_input.messages[0].content}\n\n### Input:\n")
    assert f"### Input:\n{with_input.messages[0].context}\n\n### Response:\n{with_input.response}\n\n" in user
    assert "according to the accuracy of the response" in user and "scale of 0 to 5" in user
    assert "according to the helpfulness" in get_prompt("helpfulness").messages(with_input)[1]["content"]
    with pytest.raises(ValueError, match="unknown judge dimension"):
        get_prompt("fluency")
    custom = tmp_path / "prompt.json"
    custom.write_text(json.dumps({"user": "Q: {instruction}\nA: {response}\nRate 1-3. {x}", "low": 1, "high": 3}))
    p = get_prompt(path=str(custom))
    assert p.messages(with_input) == [
        {"role": "user", "content": f"Q: {with_input.messages[0].content}\nA: {with_input.response}\nRate 1-3. {{x}}"}
    ]
    assert list(p.scores) == [1, 2, 3]
    bad = tmp_path / "bad.txt"
    bad.write_text("Rate {response}")
    with pytest.raises(ValueError, match=r"must contain \{instruction\}"):
        get_prompt(path=str(bad))


def test_logprob_parsing_picks_the_score_position() -> None:
    lp = math.log
    content = [
        {"token": "Score", "logprob": lp(0.9), "top_logprobs": []},
        {"token": ":", "logprob": lp(0.9), "top_logprobs": []},
        {
            "token": " 4",
            "logprob": lp(0.6),
            "top_logprobs": [
                {"token": " 4", "logprob": lp(0.6)},
                {"token": " 5", "logprob": lp(0.3)},
                {"token": "3", "logprob": lp(0.05)},
                {"token": " The", "logprob": lp(0.05)},
            ],
        },
    ]
    value, mass = logprob_score(content, range(0, 6))
    assert value == pytest.approx((4 * 0.6 + 5 * 0.3 + 3 * 0.05) / 0.95) and mass == pytest.approx(0.95)
    # a number that does not start with a score token ("10") is left to the reply text
    assert logprob_score([{"token": "10", "logprob": 0.0, "top_logprobs": []}], range(0, 6)) == (None, None)

    # ... and so is a number split over tokens: digit by digit ("1" "0") or with a decimal part ("4" "." "5")
    def tokens(*ts: str) -> list[dict]:
        return [{"token": t, "logprob": 0.0, "top_logprobs": [{"token": t, "logprob": 0.0}]} for t in ts]

    assert logprob_score(tokens("1", "0", "/", "10"), range(0, 6)) == (None, None)
    assert logprob_score(tokens(" 4", ".", "5", "\n"), range(0, 6)) == (None, None)
    assert logprob_score(tokens(" 4", ",", "5"), range(0, 6)) == (None, None)
    # a score followed by a full stop, a space or the end of the reply is a whole score
    assert logprob_score(tokens(" 4", ".", "\n", "The"), range(0, 6)) == (4.0, 1.0)
    assert logprob_score(tokens("3", " out", " of"), range(0, 6)) == (3.0, 1.0)
    assert logprob_score(tokens("5"), range(0, 6)) == (5.0, 1.0)
    assert logprob_score([{"token": "Good", "logprob": 0.0, "top_logprobs": []}], range(0, 6)) == (None, None)


# -- the fault-injection server --------------------------------------------------------------------------


def test_logprobs_from_the_server_give_the_expected_score(rows, alpaca_file, monkeypatch) -> None:
    """OpenAI-format log-probabilities -> expected score; none -> the reply; the key goes in the header."""
    lp = math.log
    tops = {0: [(" 4", 0.6), (" 5", 0.3), (" 3", 0.1)], 1: [("5", 0.5), ("4", 0.25), ("Five", 0.25)]}

    def behave(prompt: str, n: int, body: dict) -> Reply:
        i = by_instruction(prompt, rows)
        if i in tops:
            top = [{"token": t, "logprob": lp(p), "bytes": None} for t, p in tops[i]]
            content = [{"token": top[0]["token"], "logprob": top[0]["logprob"], "bytes": None, "top_logprobs": top}]
            return completion(top[0]["token"].strip() + "\nFine.", {"content": content})
        if i == 2:  # "10" split digit by digit: read from the reply, whose first number is outside the scale
            content = [{"token": t, "logprob": 0.0, "bytes": None, "top_logprobs": []} for t in ("1", "0", "\n")]
            return completion("10\nPerfect.", {"content": content})
        if i == 3:  # "4.5" split as "4" "." "5": the expected value at "4" would lose the half; the reply has it
            top = [{"token": t, "logprob": lp(p), "bytes": None} for t, p in (("4", 0.7), ("5", 0.3))]
            content = [
                {"token": "4", "logprob": lp(0.7), "bytes": None, "top_logprobs": top},
                *({"token": t, "logprob": 0.0, "bytes": None, "top_logprobs": []} for t in (".", "5", "\n")),
            ]
            return completion("4.5\nAccurate.", {"content": content})
        return completion(f"{i - 1}\nSome explanation.")  # no log-probabilities at all

    monkeypatch.setenv("ISF_TEST_JUDGE_KEY", SECRET)
    with FaultServer(behave) as srv:
        judge = server_judge(srv.url, key_env="ISF_TEST_JUDGE_KEY")
        out, _ = run(judge, read(alpaca_file))
    assert SECRET not in judge.describe() and SECRET not in repr(judge) and SECRET not in judge.cache_key()
    assert all(r["auth"] == f"Bearer {SECRET}" for r in srv.requests)
    assert all(r["body"]["logprobs"] is True and r["body"]["top_logprobs"] == 20 for r in srv.requests)
    assert out[0]["judge"] == pytest.approx(4 * 0.6 + 5 * 0.3 + 3 * 0.1) and out[0]["judge_source"] == "logprobs"
    assert out[1]["judge"] == pytest.approx((5 * 0.5 + 4 * 0.25) / 0.75)
    assert out[1]["judge_mass"] == pytest.approx(0.75)
    assert (
        out[2]["judge"] is None
        and "outside the scale" in out[2]["judge_reason"]
        and out[2]["judge_raw"] == "10\nPerfect."
    )
    assert out[3]["judge"] == 4.5 and out[3]["judge_source"] == "reply"
    for i in (4, 5):
        assert out[i]["judge"] == i - 1 and out[i]["judge_source"] == "reply" and out[i]["judge_mass"] is None


def test_retries_through_500_429_and_timeouts(rows, alpaca_file) -> None:
    """Each prompt first gets 500, then 429 (Retry-After), then a reply slower than the timeout, then an answer."""

    def behave(prompt: str, n: int, body: dict) -> Reply:
        if n == 1:
            return error(500)
        if n == 2:
            return error(429, {"Retry-After": "0.05"})
        if n == 3:
            status, headers, payload, _ = completion("5")
            return status, headers, payload, 3.0  # stalls past the 0.5 s timeout
        return completion(f"4\nAttempt {n} got through.")

    with FaultServer(behave) as srv:
        judge = server_judge(srv.url, timeout=0.5, retries=3)
        out, _ = run(judge, read(alpaca_file))
    assert [r["judge"] for r in out] == [4.0] * len(rows)
    assert [r["judge_attempts"] for r in out] == [4] * len(rows)
    assert sorted(srv.counts.values()) == [4] * len(rows)
    assert judge.stats["requests"] == 4 * len(rows)


def test_concurrency_is_bounded(rows, alpaca_file) -> None:
    """At most `concurrency` requests are in flight at once, and more than one when allowed."""

    def behave(prompt: str, n: int, body: dict) -> Reply:
        status, headers, payload, _ = completion("3")
        return status, headers, payload, 0.3  # slow enough that requests overlap

    for concurrency, want in ((1, 1), (2, 2), (4, 4)):
        with FaultServer(behave) as srv:
            out, _ = run(server_judge(srv.url, concurrency=concurrency), read(alpaca_file))
        assert [r["judge"] for r in out] == [3.0] * len(rows)
        assert srv.max_in_flight == want, (concurrency, srv.max_in_flight)


def test_retry_after_is_honoured_and_backoff_grows() -> None:
    from instructsift.scoring.judge_client import MAX_BACKOFF, backoff_delay

    for attempt in range(6):
        d = backoff_delay(1.0, attempt)
        assert min(0.75 * 2**attempt, MAX_BACKOFF) <= d <= min(2**attempt, MAX_BACKOFF)
    assert backoff_delay(1.0, 20) == MAX_BACKOFF


def test_retry_after_header_sets_the_wait(rows, alpaca_file) -> None:
    """A 429 asking for 0.6 s is waited out even though the backoff alone would retry after 0.01 s."""

    def behave(prompt: str, n: int, body: dict) -> Reply:
        return error(429, {"Retry-After": "0.6"}) if n == 1 else completion("2")

    dataset = read(alpaca_file)
    dataset.examples = dataset.examples[:2]
    with FaultServer(behave) as srv:
        out, _ = run(server_judge(srv.url, retries=1), dataset)
    assert [r["judge"] for r in out] == [2.0, 2.0] and [r["judge_attempts"] for r in out] == [2, 2]
    for prompt in {r["prompt"] for r in srv.requests}:
        first, second = (r["at"] for r in srv.requests if r["prompt"] == prompt)
        assert second - first >= 0.55


@pytest.mark.parametrize("status", [400, 422])
def test_a_server_that_refuses_logprobs_is_read_from_replies(rows, alpaca_file, status) -> None:
    """vLLM-style servers started without log-probabilities answer 400 (or 422): the judge asks again
    without them, and the refusal does not use up the row's attempts (retries=0 still gets a score)."""

    def behave(prompt: str, n: int, body: dict) -> Reply:
        if body.get("logprobs"):
            payload = json.dumps({"error": {"message": "logprobs is not enabled on this server", "type": "x"}})
            return status, {"Content-Type": "application/json"}, payload.encode(), 0.0
        return completion("4\nFine.")

    with FaultServer(behave) as srv:
        judge = server_judge(srv.url, retries=0, concurrency=1)
        out, _ = run(judge, read(alpaca_file))
    assert [r["judge"] for r in out] == [4.0] * len(rows)
    assert {r["judge_source"] for r in out} == {"reply"} and {r["judge_attempts"] for r in out} == {1}
    assert sum(1 for r in srv.requests if r["body"].get("logprobs")) == 1  # asked once, then never again


def test_credentials_in_the_url_are_never_printed() -> None:
    from instructsift.scoring.judge_client import JudgeServerError, shown_url

    judge = ServerJudge(url="http://alice:hunter2@127.0.0.1:9/v1", model="judge", retries=0, timeout=1)
    assert "hunter2" not in judge.describe() and "alice" not in judge.describe()
    assert shown_url(judge.url) == "http://127.0.0.1:9/v1"
    with pytest.raises(ValueError) as e:
        ServerJudge(url="ftp://alice:hunter2@host/v1", model="judge")
    assert "hunter2" not in str(e.value)
    assert issubclass(JudgeServerError, ValueError)


def test_no_reply_is_missing_with_reason_and_is_asked_again_next_run(rows, alpaca_file, tmp_path) -> None:
    """A server that keeps failing: every row missing with the reason; nothing cached; once it recovers,
    the rerun pays for each row once, and a third run pays for none."""
    state = {"mode": "down"}

    def behave(prompt: str, n: int, body: dict) -> Reply:
        return error(503) if state["mode"] == "down" else completion("5\nCorrect.")

    dataset = read(alpaca_file)
    with FaultServer(behave) as srv:
        out, stats = run(server_judge(srv.url), dataset, tmp_path)
        assert all(r["judge"] is None for r in out)
        assert all(r["judge_reason"].startswith("no reply after 3 attempts: server error (HTTP 503") for r in out)
        assert all(r["judge_raw"] is None for r in out)
        assert len(srv.requests) == 3 * len(rows)

        state["mode"] = "up"
        out, stats = run(server_judge(srv.url), dataset, tmp_path)
        assert stats["cached"] == 0 and [r["judge"] for r in out] == [5.0] * len(rows)
        assert len(srv.requests) == 4 * len(rows)

        out, stats = run(server_judge(srv.url), dataset, tmp_path)
        assert stats["cached"] == len(rows) and [r["judge"] for r in out] == [5.0] * len(rows)
        assert len(srv.requests) == 4 * len(rows)  # the rerun paid nothing


def test_garbage_is_missing_with_the_raw_reply(rows, alpaca_file, tmp_path) -> None:
    """Unreadable replies are missing (never a number), with the raw reply and the reason; chat replies
    are cached, malformed bodies are asked again."""
    garbage: list[Reply] = [
        completion("I'd rather not say."),
        completion("7 out of 10"),
        completion(None),
        (200, {"Content-Type": "application/json"}, b"{not json", 0.0),
        (200, {"Content-Type": "text/html"}, b"<html><body>502 Bad Gateway</body></html>", 0.0),
        (200, {"Content-Type": "application/json"}, b'{"unexpected": "shape"}', 0.0),
    ]

    def behave(prompt: str, n: int, body: dict) -> Reply:
        return garbage[by_instruction(prompt, rows)]

    dataset = read(alpaca_file)
    with FaultServer(behave) as srv:
        out, _ = run(server_judge(srv.url), dataset, tmp_path)
        assert [r["judge"] for r in out] == [None] * 6
        assert [r["judge_raw"] for r in out[:3]] == ["I'd rather not say.", "7 out of 10", ""]
        assert "no number" in out[0]["judge_reason"] and "outside the scale" in out[1]["judge_reason"]
        assert out[2]["judge_reason"] == "empty reply"
        assert all(r["judge_reason"].startswith("malformed response") for r in out[3:])
        assert "502 Bad Gateway" in out[4]["judge_raw"]
        assert len(srv.requests) == 6  # a 200 is not retried
        out2, stats = run(server_judge(srv.url), dataset, tmp_path)
        assert stats["cached"] == 3 and len(srv.requests) == 9
        assert out2 == out


def test_server_killed_mid_run(rows, alpaca_file, tmp_path) -> None:
    """The server dies after 3 requests: those rows are scored, the rest missing with the connection
    error; a server back on the same port is asked only for the rest."""
    dataset = read(alpaca_file)

    def behave(prompt: str, n: int, body: dict) -> Reply:
        return completion(f"{by_instruction(prompt, rows) % 3 + 3}\nOk.")

    with FaultServer(behave, kill_after=3) as first:
        out, _ = run(server_judge(first.url, concurrency=1), dataset, tmp_path)
    expected = [i % 3 + 3.0 for i in range(len(rows))]
    scored = [r["judge"] for r in out if r["judge"] is not None]
    missing = [r for r in out if r["judge"] is None]
    assert len(scored) == 3 and len(missing) == 3
    assert all(r["judge"] == expected[i] for i, r in enumerate(out) if r["judge"] is not None)
    assert all(r["judge_reason"].startswith("no reply after 3 attempts: connection failed") for r in missing)
    with FaultServer(behave, port=first.port) as second:
        out, stats = run(server_judge(second.url, concurrency=1), dataset, tmp_path)
    assert stats["cached"] == 3 and len(second.requests) == 3
    assert [r["judge"] for r in out] == expected


def test_kill_9_loses_only_the_replies_in_flight(tmp_path) -> None:
    """`instructsift score` killed with SIGKILL mid-chunk: every reply it had read is journaled, so the
    rerun asks the server only for what was in flight or never asked, and writes the same bytes as a run
    that was never interrupted."""
    import signal
    import zlib

    records = json.loads((Path(__file__).parents[1] / "examples" / "sample_alpaca.json").read_text())[:12]
    data = tmp_path / "rows.json"
    data.write_text(json.dumps(records, indent=2), encoding="utf-8")
    state = {"answer_first": 5}  # first run: answer the first 5 requests, stall every later one

    def behave(prompt: str, n: int, body: dict) -> Reply:
        p = 0.05 + (zlib.crc32(prompt.encode()) % 1000) / 1000 * 0.9  # a float per prompt, e.g. 0.30000000000000004
        top = [{"token": t, "logprob": math.log(q), "bytes": None} for t, q in ((" 4", p), (" 5", 1 - p))]
        content = [{"token": " 4", "logprob": top[0]["logprob"], "bytes": None, "top_logprobs": top}]
        status, headers, payload, _ = completion("4\nFine.", {"content": content})
        with srv.lock:
            stall = len(srv.requests) > state["answer_first"]
        return status, headers, payload, 600.0 if stall else 0.0

    def command(cache: Path, out: Path) -> list[str]:
        judge = ["--judge-url", srv.url, "--judge-model", "judge", "--judge-concurrency", "3", "--judge-timeout", "900"]
        args = ["score", data, "--method", "alpagasus", *judge, "--cache-dir", cache, "-o", out]  # no -q: the summary
        return cli_command(*args)

    def journaled(cache: Path) -> list[str]:
        return [x for f in cache.glob("scores/judge-*/journal-*.jsonl") for x in f.read_text().splitlines()]

    with FaultServer(behave) as srv:
        cache = tmp_path / "cache"
        proc = subprocess.Popen(command(cache, tmp_path / "b.parquet"), stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while (len(journaled(cache)) < 5 or len(srv.requests) < 8) and proc.poll() is None:
            assert time.monotonic() < deadline, "the run never got its first replies"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, err.decode()
        first = [r["prompt"] for r in srv.requests]
        answered, in_flight = first[:5], first[5:]
        assert len(in_flight) == 3 and len(journaled(cache)) == 5
        assert not list(cache.glob("scores/*/part-*.parquet")), "the chunk was not complete: no shard yet"

        state["answer_first"] = 10**9
        rerun = subprocess.run(command(cache, tmp_path / "b.parquet"), capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        second = [r["prompt"] for r in srv.requests[len(first) :]]
        assert len(second) == len(records) - len(answered) == 7  # 3 in flight + 4 never asked
        assert not set(second) & set(answered) and set(in_flight) <= set(second) and len(set(second)) == 7
        assert "judge: 7 scored, 5 from cache" in rerun.stderr, rerun.stderr
        assert not journaled(cache) and list(cache.glob("scores/*/part-*.parquet"))  # folded into shards

        clean = subprocess.run(command(tmp_path / "clean", tmp_path / "a.parquet"), capture_output=True, text=True)
        assert clean.returncode == 0, clean.stderr
        assert len(srv.requests) == len(first) + 7 + 12
        again = subprocess.run(command(cache, tmp_path / "c.parquet"), capture_output=True, text=True)
        assert again.returncode == 0 and len(srv.requests) == len(first) + 7 + 12  # nothing paid twice
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert (tmp_path / "c.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_replies_before_an_error_that_stops_the_run_are_kept(rows, alpaca_file, tmp_path) -> None:
    """The server answers three rows, then refuses the key: the run stops, and the three replies (of an
    unfinished chunk) are in the cache; a torn journal line from a killed run is skipped."""
    dataset = read(alpaca_file)
    state = {"ok": 3}

    def behave(prompt: str, n: int, body: dict) -> Reply:
        with srv.lock:
            ok = len(srv.requests) <= state["ok"]
        return completion(f"{by_instruction(prompt, rows) % 3 + 3}\nOk.") if ok else error(401)

    with FaultServer(behave) as srv:
        with pytest.raises(JudgeServerError):
            run(server_judge(srv.url, concurrency=1), dataset, tmp_path)
        assert len(srv.requests) == 4
        (folder,) = (tmp_path / "scores").glob("judge-*")
        (folder / "journal-0-torn.jsonl").write_text('["abc", {"judge": 4.0, "judge_raw"')  # cut by a kill
        state["ok"] = 10**9
        out, stats = run(server_judge(srv.url, concurrency=1), dataset, tmp_path)
    assert stats["cached"] == 3 and len(srv.requests) == 4 + 3
    assert [r["judge"] for r in out] == [i % 3 + 3.0 for i in range(len(rows))]
    assert not list(folder.glob("journal-*"))


def test_wrong_model_or_key_stops_the_run(alpaca_file, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # not named by --judge-key-env: never sent
    with FaultServer(lambda p, n, b: error(401)) as srv:
        with pytest.raises(JudgeServerError, match="injected 401.*judge_key_env=") as e:  # Python: its keyword
            run(server_judge(srv.url), read(alpaca_file))
        assert "--" not in str(e.value) and cli_message(e.value).endswith("with --judge-key-env)")
        args = ["score", str(alpaca_file), "-o", str(tmp_path / "s.parquet"), "-m", "alpagasus", "--judge-url", srv.url]
        res = cli(*args, "--judge-model", "judge", "--cache-dir", tmp_path, "-q", check=False)
    assert res.returncode == 2 and "error:" in res.output and "injected 401" in res.output, res.output
    assert "with --judge-key-env)" in res.output, res.output  # the command line: its flag
    assert srv.requests and all(r["auth"] == "Bearer no-key" for r in srv.requests)
    with pytest.raises(ValueError, match="ISF_UNSET_KEY"):
        server_judge("http://127.0.0.1:9/v1", key_env="ISF_UNSET_KEY")
    with pytest.raises(ValueError, match="judge_url= needs judge_model="):
        Judge(judge_url="http://127.0.0.1:9/v1")


def test_cli_alpagasus_keeps_judge_at_least_threshold(rows, alpaca_file, tmp_path, monkeypatch) -> None:
    replies = ["5\nExact.", "4.5\nGood.", "4\nMinor slip.", "I cannot judge this.", "3\nVague.", "4.49\nClose."]
    monkeypatch.setenv("ISF_TEST_JUDGE_KEY", SECRET)
    with FaultServer(lambda p, n, b: completion(replies[by_instruction(p, rows)])) as srv:
        common = [
            "--method",
            "alpagasus",
            "--judge-url",
            srv.url,
            "--judge-model",
            "judge",
            "--cache-dir",
            str(tmp_path),
        ]
        common += ["--judge-key-env", "ISF_TEST_JUDGE_KEY", "--judge-concurrency", "2"]  # no --quiet: the summary
        res = cli("select", alpaca_file, "-o", tmp_path / "kept.json", *common)
        kept = json.loads((tmp_path / "kept.json").read_text())
        assert [r["instruction"] for r in kept] == [ex.messages[0].content for ex in rows[:2]]  # 5 and 4.5 (>=)
        assert "judge: 5 scored, 1 missing (no number in the reply: 1)" in res.output
        assert "kept 2" in res.output and SECRET not in res.output
        assert len(srv.requests) == 6

        res = cli("select", alpaca_file, "-o", tmp_path / "kept4.json", "--threshold", 4, "--top", 2, *common)
        kept = json.loads((tmp_path / "kept4.json").read_text())
        assert [r["instruction"] for r in kept] == [ex.messages[0].content for ex in rows[:2]]
        assert "6 from cache" in res.output and len(srv.requests) == 6

        res = cli("score", alpaca_file, "-o", tmp_path / "s.parquet", *common)
        assert "judge: 5 scored, 1 missing" in res.output

        # the server's request settings from the command line; a new max_tokens is a new cache key
        opts = ["--judge-max-tokens", "7", "--judge-timeout", "9", "--judge-retries", "0"]
        res = cli("score", alpaca_file, "-o", tmp_path / "s7.parquet", *common, *opts)
        assert "timeout 9s, 0 retries" in res.output
        assert len(srv.requests) == 12 and {r["body"]["max_tokens"] for r in srv.requests[6:]} == {7}
        res = cli("score", alpaca_file, "-o", tmp_path / "x.parquet", "-m", "alpagasus", *opts, check=False)
        assert res.returncode == 2 and "only apply to a judge server" in res.output


# -- transformers serve ----------------------------------------------------------------------------------


def test_transformers_serve_replies_are_parsed_and_cached(server, alpaca_file, tmp_path) -> None:
    """The real server ignores log-probabilities: every score is the reply's first number, and a reply
    without one is missing with the raw text. A rerun is served from the cache."""
    url, model = server.url, server.model
    dataset = read(alpaca_file)
    dataset.examples = dataset.examples[:5]
    judge = ServerJudge(url=url, model=model, concurrency=2, max_tokens=6, timeout=300, retries=1)
    out, stats = run(judge, dataset, tmp_path)
    assert judge.stats["requests"] == 5 and judge.stats["replies"] == 5
    for r in out:
        assert r["judge_source"] == "reply" and r["judge_raw"].strip() and r["judge_attempts"] == 1
        assert (r["judge"], r["judge_reason"]) == parse_reply(r["judge_raw"]), r
        assert r["judge_mass"] is None
    again = ServerJudge(url=url, model=model, concurrency=2, max_tokens=6, timeout=300, retries=1)
    out2, stats = run(again, dataset, tmp_path)
    assert stats["cached"] == 5 and again.stats["requests"] == 0 and out2 == out


# -- the local back end ----------------------------------------------------------------------------------


def test_local_expected_score_matches_one_prompt_at_a_time(lm32, rows) -> None:
    import torch

    judge = LocalJudge(model=lm32, batch_tokens=1024, min_mass=0.0)  # the embedded model's mass is ~1%
    out = [r for part in judge.score(rows) for _, r in part]
    tok = lm32.tokenizer
    ids = {s: tok(str(s), add_special_tokens=False).input_ids for s in range(6)}
    assert all(len(v) == 1 for v in ids.values())
    for ex, r in zip(rows, out, strict=True):
        text = tok.apply_chat_template(get_prompt().messages(ex), tokenize=False, add_generation_prompt=True)
        assert text.endswith("<|im_start|>assistant\n")
        with torch.no_grad():
            logits = lm32.model(input_ids=torch.tensor([tok(text).input_ids])).logits[0, -1]
        p = torch.softmax(logits.double(), -1)
        probs = {s: float(p[ids[s][0]]) + (float(p[v[0]]) if len(v := tok(f" {s}").input_ids) == 1 else 0) for s in ids}
        mass = sum(probs.values())
        assert r["judge_source"] == "next-token" and not r["judge_truncated"]
        assert r["judge_mass"] == ratio(mass)  # batched vs one prompt at a time: tests/tolerances.py
        assert r["judge"] == expected_score(sum(s * q for s, q in probs.items()) / mass, 5)
        assert 0 <= r["judge"] <= 5 and json.loads(r["judge_raw"]).keys() == {str(s) for s in range(6)}


def test_local_long_response_is_cut_to_fit(lm32, rows) -> None:
    ex = max(rows, key=lambda e: len(e.response))
    full = len(LocalJudge(model=lm32).encode(ex).ids)
    judge = LocalJudge(model=lm32, max_length=full - 10, min_mass=0.0)
    p = judge.encode(ex)
    assert p.truncated and len(p.ids) <= full - 10
    ((_, row),) = next(judge.score([ex]))
    assert row["judge_truncated"] and row["judge"] is not None
    tiny = LocalJudge(model=lm32, max_length=64)
    ((_, row),) = next(tiny.score([ex]))
    assert row["judge"] is None and "over max_length 64" in row["judge_reason"]


def test_cli_alpagasus_with_the_local_model(alpaca_file, tmp_path) -> None:
    """Without --judge-url the method rates with the local model. The embedded SmolLM2 puts about 1% of
    its probability on the score tokens: by default its ratings are missing, with the mass; with the
    threshold lowered (knowingly), --ratio keeps the best of what passes."""
    import pyarrow.parquet as pq

    common = ["-m", "alpagasus", "--dtype", "float32", "--device", "cpu", "--cache-dir", str(tmp_path)]
    res = cli("score", alpaca_file, "-o", tmp_path / "s.parquet", *common, check=False)
    assert res.returncode == 1 and "no row could be scored (judge: low score-token mass: 6)" in res.output
    res = cli("score", alpaca_file, "-o", tmp_path / "s.parquet", *common, "--allow-empty")
    assert "judge: 0 scored, 6 missing (low score-token mass: 6)" in res.output, res.output
    table = pq.read_table(tmp_path / "s.parquet").to_pylist()
    assert all(r["judge"] is None and r["judge_source"] == "next-token" and r["judge_mass"] < 0.5 for r in table)

    method = isf.get_method("alpagasus")
    dataset = read(alpaca_file)
    scorers = method.scorers(judge_min_mass=0.0, dtype="float32", device="cpu")
    scores = isf.score(dataset, scorers, cache_dir=tmp_path, progress=False)
    judged = scores.column("judge").to_pylist()
    assert all(0 <= v <= 5 for v in judged)
    picked = isf.select(dataset, scores, *method.selectors(ratio=0.5, threshold=0))
    isf.write(picked, tmp_path / "k.json")
    best = sorted(range(6), key=lambda i: -judged[i])[:3]
    records = json.loads(alpaca_file.read_text())
    assert json.loads((tmp_path / "k.json").read_text()) == [records[i] for i in sorted(best)]
    res = cli("score", alpaca_file, "-o", tmp_path / "x.parquet", *common, "--judge-concurrency", 4, check=False)
    assert res.returncode == 2 and "only apply to a judge server" in res.output


def test_local_score_below_the_mass_threshold_is_missing_with_the_mass(lm32, rows, tmp_path) -> None:
    """A rating whose score tokens hold too little of the model's probability is not a rating: missing,
    with the mass in the reason (raw probabilities and mass kept); the threshold is in the cache key."""
    rows = rows[:4]
    free = LocalJudge(model=lm32, min_mass=0.0)
    out = [r for part in free.score(rows) for _, r in part]
    masses = sorted(r["judge_mass"] for r in out)
    assert all(r["judge"] is not None for r in out)
    cut = (masses[0] + masses[1]) / 2  # between the lowest mass and the next: exactly one row falls under
    strict = LocalJudge(model=lm32, min_mass=cut)
    assert strict.cache_key() != free.cache_key() and f"{cut:g}" in strict.describe()
    got = [r for part in strict.score(rows) for _, r in part]
    low = [i for i, r in enumerate(out) if r["judge_mass"] < cut]
    assert len(low) == 1
    for i, (a, b) in enumerate(zip(out, got, strict=True)):
        if i in low:
            assert b["judge"] is None and b["judge_reason"] == f"low score-token mass: {a['judge_mass']:.3g} < {cut:g}"
            assert b["judge_mass"] == a["judge_mass"] and b["judge_raw"] == a["judge_raw"]
        else:
            assert b == a

    # A prompt that does not ask for a number: the model barely writes a digit, and the default
    # threshold turns what would be a confident-looking score into a missing one.
    prompt = tmp_path / "story.txt"
    prompt.write_text("Write a short story inspired by this task: {instruction}\n\nand this text: {response}")
    loose = LocalJudge(model=lm32, prompt=str(prompt), min_mass=0.0)
    ((_, row),) = next(loose.score(rows[:1]))
    assert row["judge"] is not None and row["judge_mass"] < 0.05
    ((_, row),) = next(Judge(model=lm32, judge_prompt=str(prompt)).score(rows[:1]))
    assert row["judge"] is None and row["judge_reason"].startswith("low score-token mass: 0.0")
    assert row["judge_reason"].endswith(f" < {LocalJudge.min_mass:g}")
    assert Judge(model=lm32, judge_min_mass=0.25).min_mass == 0.25
    with pytest.raises(ValueError, match="between 0 and 1"):
        LocalJudge(model=lm32, min_mass=1.5)
    with pytest.raises(ValueError, match="applies to the local judge"):
        Judge(judge_url="http://127.0.0.1:9/v1", judge_model="judge", judge_min_mass=0.5)
