"""`instructsift synthesize` against a real OpenAI-compatible server on loopback: `transformers serve`
(transformers[serving]) serving the embedded SmolLM2-135M-Instruct. The quads file gets the server's
`direct` and `referenced` answers; a rerun after the server is stopped is served from the cache; a server
that is not there, a wrong path and a malformed URL are one clear error each (exit 2). No request leaves
127.0.0.1; the server (conftest's, shared by the session) is stopped here and started again for any later test."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import cli

ROOT = Path(__file__).resolve().parents[1]


def synthesize(*args: str | Path) -> tuple[int, str]:
    res = cli("synthesize", *args, "--quiet", check=False)
    return res.returncode, res.output


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_wrong_path_or_url_is_a_clear_error(server, tmp_path) -> None:
    """(Runs before the test that stops the server.)"""
    data = tmp_path / "data.json"
    data.write_text(json.dumps(json.loads((ROOT / "examples" / "sample_alpaca.json").read_text())[:1]))
    wrong = server.url.replace("/v1", "/nope/v1")
    code, out = synthesize(data, "--url", wrong, "--model", server.model, "-o", tmp_path / "q.jsonl",
                           "--cache-dir", tmp_path / "c")  # fmt: skip
    assert code == 2 and f"server {wrong}, model {server.model!r}:" in out and "Error code: 404" in out, out
    code, out = synthesize(data, "--url", "127.0.0.1:8000", "-o", tmp_path / "q.jsonl")
    assert code == 2 and "--url '127.0.0.1:8000': expected http(s)://host[:port][/path]" in out, out
    assert not (tmp_path / "q.jsonl").exists()


def test_synthesize_direct_then_referenced_from_a_real_server_and_again_from_the_cache(server, tmp_path) -> None:
    records = json.loads((ROOT / "examples" / "sample_alpaca.json").read_text())[:3]
    data = tmp_path / "data.json"
    data.write_text(json.dumps(records))
    cache = tmp_path / "cache"
    before = server.requests()  # the session's server: requests of earlier tests are in its log
    common = ["--url", server.url, "--model", server.model, "--max-tokens", "12", "--cache-dir", cache]

    direct = tmp_path / "direct.jsonl"
    code, out = synthesize(data, "--kind", "direct", "-o", direct, *common)
    assert code == 0, out
    rows = lines(direct)
    assert [(r["instruction"], r.get("input", ""), r["human"]) for r in rows] == [
        (r["instruction"], r["input"], r["output"]) for r in records
    ]
    assert all(isinstance(r["direct"], str) and r["direct"].strip() for r in rows) and "referenced" not in rows[0]
    assert server.requests() == before + 3

    # the quads file is the input of the next kind: its direct answers are kept, the rewrites added
    quads = tmp_path / "quads.jsonl"
    code, out = synthesize(direct, "--kind", "referenced", "-o", quads, *common)
    assert code == 0, out
    both = lines(quads)
    assert [r["direct"] for r in both] == [r["direct"] for r in rows]
    assert all(isinstance(r["referenced"], str) and r["referenced"].strip() for r in both)
    assert [r["referenced"] for r in both] != [r["direct"] for r in both]  # a different prompt, other answers
    assert server.requests() == before + 6

    from instructsift.train.scar import read_quads

    assert [q.referenced for q in read_quads(quads)] == [r["referenced"] for r in both]  # ready for train-scar

    # the server is gone: the same answers come from the cache, with no request
    server.stop()
    again = tmp_path / "again.jsonl"
    code, out = synthesize(data, "--kind", "both", "-o", again, *common)
    assert code == 0, out
    assert lines(again) == both and server.requests() == before + 6

    # ... but anything not cached needs the server, and its absence is one clear error
    code, out = synthesize(data, "--kind", "both", "-o", tmp_path / "x.jsonl", *common[:-1], tmp_path / "cold")
    assert code == 2 and f"server {server.url}: cannot connect" in out and "is it running?" in out, out
    assert not (tmp_path / "x.jsonl").exists()
