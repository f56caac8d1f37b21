"""The `instructsift` command end to end with the embedded model: score, select, rejects, resume after kill -9."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import cli, cli_command

from instructsift.data import read

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample_alpaca.json"


def summary(stderr: str) -> dict[str, int]:
    line = [x for x in stderr.splitlines() if x.startswith("read ")][-1]
    return {k: int(v) for v, k in ((m.group(2), m.group(1)) for m in re.finditer(r"(\w+) (\d+)", line))}


@pytest.fixture(scope="module")
def sample_scores(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scores") / "scores.parquet"
    proc = cli("score", SAMPLE, "--method", "superfiltering", "-o", out)  # not -q: the summary line
    assert "read 32 · scored" in proc.stderr
    return out


def test_score_table_has_one_row_per_example_in_input_order(sample_scores):
    table = pq.read_table(sample_scores)
    ds = read(SAMPLE)
    assert table.column("row").to_pylist() == list(range(32))
    assert table.column("id").to_pylist() == [ex.id for ex in ds.examples]
    for name in ("loss_cond", "loss_direct", "ifd", "ifd_ppl", "prompt_tokens", "answer_tokens", "turn_ifd", "reason"):
        assert name in table.column_names
    ifd, reason = table.column("ifd").to_pylist(), table.column("reason").to_pylist()
    for value, why in zip(ifd, reason, strict=True):
        assert (value is None) == (why is not None)  # a missing score always says why; never NaN or 0
        assert value is None or 0 < value < 10


def test_select_keeps_input_order_and_accounts_for_every_row(sample_scores, tmp_path):
    out = tmp_path / "picked.json"
    proc = cli("select", SAMPLE, "--method", "superfiltering", "--ratio", "0.25", "--scores", sample_scores, "-o", out)
    s = summary(proc.stderr)
    picked = json.loads(out.read_text())
    records = json.loads(SAMPLE.read_text())
    assert s["read"] == 32 and s["kept"] == len(picked) == 8
    assert s["kept"] + s["dropped"] + s["rejected"] == s["read"]
    positions = [records.index(r) for r in picked]
    assert positions == sorted(positions)  # input order, the user's own records untouched
    table = pq.read_table(sample_scores).to_pylist()
    kept = sorted((table[p]["ifd_ppl"] for p in positions), reverse=True)
    rest = [r["ifd_ppl"] for i, r in enumerate(table) if i not in positions and r["ifd_ppl"] is not None]
    assert min(kept) >= max(x for x in rest if x < 1)
    # The careful answers in the sample should win over the weak ones more often than not.
    careful = sum(1 for p in positions if p % 2 == 0)
    assert careful >= 5, positions


def test_select_scores_itself_the_same_as_with_a_score_file(sample_scores, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    cli("select", SAMPLE, "--method", "superfiltering", "--top", "5", "--scores", sample_scores, "-o", a)
    cli("select", SAMPLE, "--method", "superfiltering", "--top", "5", "--with-scores", "-q", "-o", b)
    plain = [json.loads(x) for x in a.read_text().splitlines()]
    scored = [json.loads(x) for x in b.read_text().splitlines()]
    assert [{k: r[k] for k in ("instruction", "input", "output")} for r in scored] == plain
    assert [r["rank"] for r in scored] and all(r["ifd_ppl"] < 1 for r in scored)


def test_cherry_drops_ifd_above_one(tmp_path):
    out, scores = tmp_path / "c.json", tmp_path / "c.parquet"
    proc = cli("select", SAMPLE, "--method", "cherry", "--ratio", "0.5", "--save-scores", scores, "-o", out)
    table = pq.read_table(scores).to_pylist()
    below = [r for r in table if r["ifd"] is not None and r["ifd"] <= 1]
    s = summary(proc.stderr)
    assert s["kept"] == len(json.loads(out.read_text())) == round(0.5 * len(below))
    assert s["kept"] + s["dropped"] == 32


def test_bad_rows_fail_or_go_to_rejects(tmp_path):
    records = json.loads(SAMPLE.read_text())[:6]
    records[3] = {"instruction": "Say hi.", "output": 42}
    data = tmp_path / "bad.json"
    data.write_text(json.dumps(records, indent=2))
    proc = cli("select", data, "--method", "superfiltering", "--top", "2", "-q", "-o", tmp_path / "o.json", check=False)
    assert proc.returncode == 2
    assert f"{data}, line 17, row 3, field 'output': must be a string, got int" in proc.stderr
    assert not (tmp_path / "o.json").exists()

    proc = cli(
        "select",
        data,
        "--method",
        "superfiltering",
        "--top",
        "2",
        "--on-error",
        "skip",
        "-o",
        tmp_path / "o.json",
    )
    s = summary(proc.stderr)
    assert (s["read"], s["kept"], s["rejected"]) == (6, 2, 1) and s["kept"] + s["dropped"] + s["rejected"] == 6
    rejects = [json.loads(x) for x in (tmp_path / "o.json.rejects.jsonl").read_text().splitlines()]
    assert [(r["row"], r["line"], r["field"]) for r in rejects] == [(3, 17, "output")]
    assert len(json.loads((tmp_path / "o.json").read_text())) == s["kept"]
    # every dropped row is counted under a reason
    reasons = re.search(r"dropped \d+ \(([^)]*)\)", proc.stderr).group(1)
    assert sum(int(n) for n in re.findall(r": (\d+)", reasons)) == s["dropped"] == 3

    # fixed and run again: the rejects file says so, instead of keeping the last run's rows
    records[3]["output"] = "Hi!"
    data.write_text(json.dumps(records, indent=2))
    args = ["select", data, "-m", "superfiltering", "--top", "2", "--on-error", "skip", "-q", "-o", tmp_path / "o.json"]
    assert "pass --overwrite" in cli(*args, check=False).stderr  # the last run's output is not replaced silently
    cli(*args, "--overwrite")
    assert (tmp_path / "o.json.rejects.jsonl").read_text() == ""


def test_mismatched_scores_and_bad_options_are_clear(sample_scores, tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps(json.loads(SAMPLE.read_text())[::-1]))
    proc = cli(
        "select",
        other,
        "--method",
        "cherry",
        "--top",
        "2",
        "--scores",
        sample_scores,
        "-o",
        tmp_path / "x.json",
        check=False,
    )
    assert (
        proc.returncode == 2
        and "32 rows of" in proc.stderr
        and "changed since these scores were computed" in proc.stderr
    )
    proc = cli("select", SAMPLE, "--method", "cherry", "-o", tmp_path / "x.json", check=False)
    assert proc.returncode == 2 and "exactly one of --ratio or --top" in proc.stderr
    proc = cli("select", SAMPLE, "--method", "nope", "--top", "1", "-o", tmp_path / "x.json", check=False)
    assert proc.returncode == 2 and "unknown method 'nope'" in proc.stderr


def test_methods_lists_papers(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    out = cli("methods").stdout
    assert "cherry" in out and "superfiltering" in out and "NAACL 2024" in out


def started(cmd: list[str]) -> subprocess.Popen:
    """`cmd` started as a shell starts it: SIGINT at its default and not blocked. An earlier test in this
    worker may leave SIGINT ignored or blocked here, and a child inherits both (Python then installs no
    KeyboardInterrupt handler: a run once ignored Ctrl-C and exited 0)."""
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def stopped_after_a_step(cache: Path, sig: signal.Signals) -> subprocess.Popen:
    """`score SAMPLE -m superfiltering`, sent `sig` once its first step of rows is cached. Its 32 rows are
    cached in steps of 16 (a small data set is persisted in eighths of at least 16 rows; the default chunk of
    512 would keep nothing), so the run is still scoring its second step."""
    out = cache / "out.parquet"
    proc = started(cli_command("score", SAMPLE, "-m", "superfiltering", "-q", "--cache-dir", cache, "-o", out))
    deadline = time.monotonic() + 600
    while not list(cache.glob("scores/*/part-*.parquet")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(sig)
    return proc


def test_ctrl_c_says_what_is_cached_and_a_rerun_gives_the_same_bytes(sample_scores, tmp_path):
    """Ctrl-C: one line, exit 130; the finished rows stay cached, and a rerun writes what an uninterrupted
    run wrote (`sample_scores`), byte for byte."""
    proc = stopped_after_a_step(tmp_path, signal.SIGINT)
    _, err = proc.communicate()
    assert proc.returncode == 130, err
    last = err.splitlines()[-1]
    assert "Traceback" not in err and last.startswith("interrupted during ifd: "), err
    assert last.endswith(" of 32 rows are cached; run the same command again to resume"), err
    assert 16 <= int(last.split(": ")[1].split(" of ")[0]) < 32
    cli("score", SAMPLE, "-m", "superfiltering", "-q", "--cache-dir", tmp_path, "-o", tmp_path / "out.parquet")
    assert (tmp_path / "out.parquet").read_bytes() == sample_scores.read_bytes()


def test_resume_after_kill_is_byte_identical(sample_scores, tmp_path):
    """A run killed with SIGKILL resumes from its cache without rescoring the finished step."""
    proc = stopped_after_a_step(tmp_path, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "out.parquet").exists()
    resumed = cli("score", SAMPLE, "-m", "superfiltering", "--cache-dir", tmp_path, "-o", tmp_path / "out.parquet")
    scored, cached = map(int, re.search(r"ifd: (\d+) scored, (\d+) from cache", resumed.stderr).groups())
    assert cached >= 16 and scored + cached == 32 and scored < 32
    assert (tmp_path / "out.parquet").read_bytes() == sample_scores.read_bytes()
