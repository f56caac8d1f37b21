"""What a data set holds beyond what is scored: trailing unanswered turns and exact duplicates are
counted on the Dataset (and in the selection's summary), written back untouched, and duplicates can be
dropped with `ExactDedup`."""

from __future__ import annotations

import json
from pathlib import Path

import instructsift as isf
from instructsift.data import read
from instructsift.data.io import EXACT_DUPLICATE
from instructsift.scoring.rules import Rules
from instructsift.selection import ExactDedup, Top

TRAILING_USER = "trailing user turn not scored"


def _score(ds):
    return isf.score(ds, [Rules(tokenizer=None)], use_cache=False, progress=False)


def test_a_trailing_user_turn_is_counted_scored_without_it_and_written_back_whole(tmp_path: Path) -> None:
    answered = [
        {"from": "human", "value": "Name a prime number."},
        {"from": "gpt", "value": "Seven is a prime number."},
    ]
    records = [
        {"id": "open", "conversations": [*answered, {"from": "human", "value": "And an even one?"}]},
        {"id": "closed", "conversations": answered},
        {"id": "other", "conversations": [answered[0], {"from": "gpt", "value": "Two, the only even prime."}]},
    ]
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    ds = read(path)
    assert len(ds) == 3 and ds.notes == {TRAILING_USER: 1}
    assert ds.examples[0].answer_turns == [1] and ds.examples[0].messages[-1].role == "user"

    table = _score(ds).to_pylist()
    measured = {k: v for k, v in table[0].items() if k not in ("row", "id", "content_hash")}
    assert measured == {
        k: v for k, v in table[1].items() if k not in ("row", "id", "content_hash")
    }  # its answered turn scored

    picked = isf.select(ds, _score(ds), Top("response_chars", k=2))
    assert picked.summary()["notes"] == {TRAILING_USER: 1}
    assert picked.rows == [0, 2]  # ties go to the earlier row
    isf.write(picked, tmp_path / "kept.jsonl")
    back = [json.loads(x) for x in (tmp_path / "kept.jsonl").read_text(encoding="utf-8").splitlines()]
    assert back == [records[0], records[2]]  # the unanswered turn rides along

    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}
    chat["messages"].append({"role": "user", "content": "Bye"})
    (tmp_path / "chat.json").write_text(json.dumps([chat, chat | {"messages": chat["messages"][:2]}]))
    assert read(tmp_path / "chat.json").notes == {TRAILING_USER: 1}


def test_exact_duplicates_are_counted_and_exact_dedup_keeps_the_first(tmp_path: Path) -> None:
    base = {"instruction": "Name a colour.", "input": "", "output": "Red is a colour."}
    records = [
        base,
        {"instruction": "Name two colours.", "input": "", "output": "Red and blue, both colours."},
        {**base, "id": "copy", "source": "crawl"},  # the same content under another id and extra fields
        {"instruction": "Name a colour.", "input": "", "output": "Red is a colour!"},  # not the same
        base,
    ]
    path = tmp_path / "dups.json"
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    ds = read(path)
    assert ds.notes == {EXACT_DUPLICATE: 2}
    assert ds.examples[0].content_hash == ds.examples[2].content_hash == ds.examples[4].content_hash
    assert len({ex.id for ex in ds.examples}) == 5

    scores = _score(ds)
    # without dedup a top-k keeps the copies
    assert isf.select(ds, scores, Top("response_chars", k=3)).rows == [0, 1, 2]
    picked = isf.select(ds, scores, ExactDedup(), Top("response_chars", k=3))
    assert sorted(picked.rows) == [0, 1, 3]
    assert picked.selection.reasons[2] == "exact duplicate (of row 0)"
    assert picked.selection.reasons[4] == "exact duplicate (of row 0)"
    summary = picked.summary()
    assert summary["dropped_by"] == {"exact duplicate": 2} and summary["notes"] == {EXACT_DUPLICATE: 2}
    assert picked.scores.column("content_hash").to_pylist() == [ex.content_hash for ex in ds.examples]
    assert isf.ExactDedup is ExactDedup and "exact duplicates" in ExactDedup().describe()

    # only rows still kept count: when an earlier selector dropped the first copy, the next one stays
    from instructsift.api import with_content_hash
    from instructsift.selection import Selection

    selection = Selection.all(len(ds))
    selection.drop([0], "dropped before")
    ExactDedup().apply(with_content_hash(scores, ds), selection)
    assert selection.kept.tolist() == [1, 2, 3] and selection.reasons[4] == "exact duplicate (of row 2)"


def test_select_dedup_exact_drops_repeats_before_scoring_and_prints_the_notes(tmp_path: Path) -> None:
    """`--dedup-exact` puts an `exact_dedup` step first: the repeats are dropped with their reason (not
    scored), and the summary says what reading noticed."""
    from helpers import cli

    sample = json.loads((Path(__file__).resolve().parents[1] / "examples" / "sample_alpaca.json").read_text())
    rows = sample[:6] + [dict(sample[1]), dict(sample[3])]
    path = tmp_path / "d.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    out, dropped, recipe = tmp_path / "o.json", tmp_path / "dropped.jsonl", tmp_path / "r.yaml"
    proc = cli("select", path, "--method", "lima", "--top", "8", "--dedup-exact", "--dropped", dropped,
               "--save-recipe", recipe, "-o", out)  # fmt: skip
    assert f"noticed: {EXACT_DUPLICATE}: 2" in proc.stderr
    why = {d["row"]: (d["step"], d["code"], d["detail"]) for d in map(json.loads, dropped.read_text().splitlines())}
    assert why[6] == ("exact_dedup", "exact duplicate", "of row 1") and why[7][2] == "of row 3"
    assert len(json.loads(out.read_text())) + len(why) == 8
    assert recipe.read_text().count("exact_dedup") == 1
