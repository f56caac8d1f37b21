"""LIMA-style curation: each rule on hand-written and real rows, MinHash near duplicates, the stratified
selector, and the `lima` method end to end through the command line on Dolly."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import cli

from instructsift.api import score, select
from instructsift.data import Example, Message, read
from instructsift.scoring.dedup import MinHashSignature, shingles, words
from instructsift.scoring.language import Language
from instructsift.scoring.rules import RULE_NAMES, Rules, check, check_example
from instructsift.scoring.text import whole_text
from instructsift.selection import Dedup, KeepLanguage, RuleFilter, Selection, Stratified

# -- each rule on hand-written cases ------------------------------------------------------------------

POSITIVE = {
    "first_person": [
        ("I think the second option is better.", "I think"),
        ("In my experience, cast iron holds heat well.", "my experience"),
        ("Let me explain how a transistor works.", "Let me"),
        ("I've tried both and I'd pick the first.", "I've"),
        ("As an AI language model, here is a summary.", "As an AI language model"),
        ("The weather was bad, so I stayed home.", "I stayed"),
    ],
    "refers_other": [
        ("As mentioned above, the loop runs twice.", "As mentioned above"),
        ("The other answer is wrong about the units.", "other answer"),
        ("Another answer suggests caching, which helps.", "Another answer"),
        ("See the discussion in the comments for details.", "in the comments"),
        ("Use a dict.\n\nEDIT: fixed the typo in the key.", "EDIT:"),
        ("This question has come up on Stack Exchange before.", "Stack Exchange"),
        ("As others have pointed out, the API changed.", "As others have pointed out"),
    ],
    "residue": [
        ("<div>Paris is the capital of France.</div>", "<div>"),
        ("Add a space&nbsp;here to keep them apart.", "&nbsp;"),
        ("Here is the chart: ![chart](http://example.com/c.png) as requested", "![chart]"),
        ("https://en.wikipedia.org/wiki/Paris", "only a link"),
        ("[Paris](https://en.wikipedia.org/wiki/Paris)", "only a link"),
        ("Itâ€™s raining in Paris today.", "â€™"),
    ],
    "refusal": [
        ("I'm sorry, but I can't help with that request.", "I'm sorry, but"),
        ("As an AI language model, I cannot browse the internet.", "As an AI language model, I cannot"),
        ("I cannot provide instructions for building weapons.", "I cannot provide"),
        ("That would be against my guidelines.", "against my guidelines"),
        ("I apologize, but this is outside what I can do.", "I apologize, but"),
        ("It is not appropriate for me to speculate on that.", "not appropriate for me to"),
    ],
}

NEGATIVE = {
    "first_person": [
        "World War I ended in 1918.",
        "Henry I of England was the fourth son of William the Conqueror.",
        "Type I errors are false positives.",
        "Open the developer tools with Ctrl + Shift + I on Windows.",
        "How I Met Your Mother ran for nine seasons.",
        "The coal mine closed in 1984.",
        "Python's `my_list.append(x)` adds one item.",
        "```python\nI = 1\nmy_value = I + 1\nprint(my_value)\n```",
        "I. Introduction\nII. Methods",
    ],
    "refers_other": [
        "As stated in the passage, the treaty was signed in 1648.",
        "The answer is 42.",
        "Other animals, such as cats, also purr.",
        "The edit distance between the two words is three.",
    ],
    "residue": [
        "Use the `<div>` element to group content.",
        '```html\n<div class="box">Hi</div>\n```',
        "See https://docs.python.org/3/library/re.html for the full syntax of regular expressions.",
        "3 < 4 and 5 > 2, so both comparisons hold.",
        "Tom & Jerry is a cartoon.",
    ],
    "refusal": [
        "I can't help but smile when I see it.",
        "It is not appropriate to wear white to a wedding.",
        "Sorry for the wait! Here is the recipe.",
        "The engine cannot provide enough torque at low speed.",
    ],
}


@pytest.mark.parametrize(("rule", "text", "evidence"), [(r, t, e) for r, cases in POSITIVE.items() for t, e in cases])
def test_rule_fires_with_its_evidence(rule, text, evidence):
    found = check(text)
    assert found[rule] is not None, f"{rule} missed {text!r}"
    assert evidence in found[rule]


@pytest.mark.parametrize(("rule", "text"), [(r, t) for r, cases in NEGATIVE.items() for t in cases])
def test_rule_stays_quiet(rule, text):
    assert check(text)[rule] is None, f"{rule} fired on {text!r}: {check(text)[rule]}"


def test_rules_read_every_answer_turn_and_name_it():
    ex = Example(
        "x",
        (
            Message("user", "What is the capital of France?"),
            Message("assistant", "Paris."),
            Message("user", "And of Italy?"),
            Message("assistant", "I believe it is Rome."),
        ),
        row=0,
    )
    flags = check_example(ex)
    assert flags["first_person"].startswith("answer 2 of 2: ")
    assert flags["refusal"] is None and flags["residue"] is None


# -- real rows ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lima(shared_data):
    return read(shared_data / "lima" / "lima_1k.json")


@pytest.fixture(scope="module")
def dolly(shared_data):
    return read(shared_data / "dolly" / "dolly_3k.json")


@pytest.fixture(scope="module")
def lima_scores(lima, tmp_path_factory):
    stats: dict = {}
    table = score(lima, [Rules(), Language(), MinHashSignature()], progress=False, stats=stats)
    assert all(s["scored"] == s["unique"] for s in stats.values())
    return table


@pytest.fixture(scope="module")
def dolly_scores(dolly):
    return score(dolly, [Rules(), Language(), MinHashSignature()], progress=False)


# Every word or mark any rule looks for: an answer with none of them must come out clean.
TRIGGERS = re.compile(
    r"[<&\[\]]|https?:|www\.|â€|Ã|\ufffd|\b(?:I|my|me|myself|sorry|apologi\w+|cannot|can't|unable|appropriate|"
    r"against|AI|language model|mention\w*|stated|noted|said|pointed|discussed|suggested|answered|explained|other|"
    r"another|previous|earlier|accepted|answers?|comments?|edit|update|OP|stack\w*)\b",
    re.I,
)


def _rows(ds, pred):
    return [i for i, ex in enumerate(ds.examples) if pred(ex.record)]


def test_lengths_on_real_rows(lima, lima_scores):
    chars = lima_scores.column("response_chars").to_pylist()
    tokens = lima_scores.column("response_tokens").to_pylist()
    assert chars == [len(ex.record["output"]) for ex in lima.examples]  # the last answer is `output`
    ratio = np.array(
        [c / t for c, t, ex in zip(chars, tokens, lima.examples, strict=True) if c > 200 and ex.response.isascii()]
    )
    assert len(ratio) > 500 and 3.5 < np.median(ratio) < 5.5  # BPE on English: about 4 characters a token
    assert (ratio > 1).all() and (ratio < 8).all()
    untokenized = score(lima, [Rules(tokenizer=None)], use_cache=False, progress=False)
    assert untokenized.column("response_tokens").null_count == lima_scores.num_rows


def test_rules_on_real_lima_rows(lima, lima_scores):
    flags = {r: lima_scores.column(f"rule_{r}").to_pylist() for r in RULE_NAMES}
    # HTML entities left in scraped Stack Exchange answers are residue.
    quoted = _rows(lima, lambda r: "&quot;" in r["output"])
    assert quoted and all(flags["residue"][i] for i in quoted)
    # Refusals and first person that LIMA's own authors wrote.
    refusal = _rows(lima, lambda r: r["output"].startswith("I am sorry, but as an AI assistant"))
    assert refusal and all(flags["refusal"][i] and flags["first_person"][i] for i in refusal)
    other = _rows(lima, lambda r: "Another answer suggests" in r["output"])
    assert other and all("Another answer" in flags["refers_other"][i] for i in other)
    # Multi-turn rows (`history`): the evidence names the answer it came from.
    multi = [i for i in _rows(lima, lambda r: r["history"]) if any(flags[r][i] for r in RULE_NAMES)]
    assert multi and all(
        re.match(r"answer \d+ of \d+: ", flags[r][i]) for i in multi for r in RULE_NAMES if flags[r][i]
    )
    # `rule_flags` lists exactly the rules with evidence.
    listed = lima_scores.column("rule_flags").to_pylist()
    assert all(set(listed[i]) == {r for r in RULE_NAMES if flags[r][i]} for i in range(lima_scores.num_rows))
    # Plain rows stay clean: no markup, no pronoun, no refusal words anywhere in the answer.
    plain = _rows(lima, lambda r: not r["history"] and not TRIGGERS.search(r["output"]))
    assert len(plain) > 100 and not any(listed[i] for i in plain)


def test_rules_on_real_dolly_rows(dolly, dolly_scores):
    fp = dolly_scores.column("rule_first_person").to_pylist()
    croissant = _rows(dolly, lambda r: "Personally, I prefer my croissants" in r["output"])
    assert croissant and all("I prefer" in fp[i] for i in croissant)
    # "World War I" in real answers is a numeral, not the pronoun.
    sentences = [
        s
        for ex in dolly.examples
        for s in re.findall(r"[^.\n]*World War I\b[^.\n]*", ex.record["output"])
        if not re.search(r"\b(?:my|me|myself)\b|(?<!War )\bI\b", s, re.I)
    ]
    assert len(sentences) >= 3
    assert all(check(s)["first_person"] is None for s in sentences)


def test_language_on_real_rows(lima, lima_scores, dolly_scores):
    langs, probs = lima_scores.column("lang").to_pylist(), lima_scores.column("lang_prob").to_pylist()
    portuguese = _rows(lima, lambda r: r["instruction"].startswith(("Gostaria de saber", "Quando devo fazer")))
    german = _rows(lima, lambda r: r["output"].startswith("Ich sammle Briefmarken"))
    assert portuguese and german
    assert all(langs[i] == "pt" and probs[i] > 0.9 for i in portuguese)
    assert all(langs[i] == "de" and probs[i] > 0.9 for i in german)
    dl = Counter(dolly_scores.column("lang").to_pylist())
    assert dl["en"] / dolly_scores.num_rows > 0.98  # Dolly is English
    # The selector drops confident non-English rows only, with the language as reason.
    picked = select(lima, lima_scores, KeepLanguage("en"))
    dropped = {i for i, r in enumerate(picked.selection.reasons) if r}
    assert set(portuguese + german) <= dropped
    assert all(langs[i] != "en" and probs[i] >= 0.9 for i in dropped)
    assert picked.selection.reasons[german[0]].startswith("language not en (de, p = ")


def test_rule_filter_keeps_the_evidence_as_reason(lima, lima_scores):
    picked = select(lima, lima_scores, RuleFilter("refusal,residue"))
    reasons = picked.selection.reasons
    refusal = lima_scores.column("rule_refusal").to_pylist()
    residue = lima_scores.column("rule_residue").to_pylist()
    for i, why in enumerate(reasons):
        assert (why is not None) == bool(refusal[i] or residue[i])
        if refusal[i]:
            assert why == f"rule refusal ({refusal[i]})"
    assert set(picked.summary()["dropped_by"]) == {"rule refusal", "rule residue"}
    with pytest.raises(ValueError, match="unknown rule"):
        RuleFilter("first_person,politeness")


# -- duplicates --------------------------------------------------------------------------------------


def _jaccard(a: Example, b: Example, n: int = 3) -> float:
    sa, sb = set(shingles(words(whole_text(a)), n)), set(shingles(words(whole_text(b)), n))
    return len(sa & sb) / len(sa | sb)


@pytest.fixture(scope="module")
def dup_file(dolly, tmp_path_factory):
    """200 real Dolly rows, then a lightly edited copy of one (near) and a re-cased, re-spaced copy of
    another (exact after normalisation)."""
    records = [ex.record for ex in dolly.examples[:200]]
    src = next(i for i, r in enumerate(records) if 400 < len(r["output"]) < 1500 and not r["input"])
    near = dict(records[src])
    out = near["output"]
    out = out.replace(".", ";", 1).replace(" the ", " a ", 1)
    near["output"] = out[: len(out) // 2] + " really " + out[len(out) // 2 :]
    exact_src = src + 1
    exact = dict(records[exact_src])
    exact["output"] = "  " + exact["output"].upper().replace(" ", "   ") + "!!"
    path = tmp_path_factory.mktemp("dups") / "dolly_dups.json"
    path.write_text(json.dumps([*records, near, exact]))
    return path, src, exact_src


def test_minhash_finds_an_edited_copy_and_not_unrelated_rows(dup_file):
    path, src, exact_src = dup_file
    ds = read(path)
    table = score(ds, [MinHashSignature()], progress=False)
    picked = select(ds, table, Dedup(threshold=0.7))
    reasons = picked.selection.reasons
    near_row, exact_row = len(ds.examples) - 2, len(ds.examples) - 1
    assert _jaccard(ds.examples[src], ds.examples[near_row]) >= 0.7  # the edit is small
    assert reasons[near_row].startswith(f"near duplicate (of row {src}, Jaccard ~ ")
    assert reasons[exact_row] == f"exact duplicate (of row {exact_src})"
    # Anything else dropped really is close to the row it names; rows far from every earlier row stay.
    for i, why in enumerate(reasons[:200]):
        if why is not None:
            j = int(re.search(r"of row (\d+)", why).group(1))
            assert _jaccard(ds.examples[i], ds.examples[j]) >= 0.5, why
    far = [i for i in range(1, 200) if max(_jaccard(ds.examples[i], ds.examples[j]) for j in range(i)) < 0.3]
    assert len(far) > 150 and all(reasons[i] is None for i in far)
    assert Counter(picked.selection.reason_counts()).keys() <= {"near duplicate", "exact duplicate"}


def test_dedup_keeps_the_first_among_rows_still_kept(dup_file):
    path, src, _ = dup_file
    ds = read(path)
    table = score(ds, [MinHashSignature()], progress=False)
    sel = Selection.all(table.num_rows)
    sel.drop([src], "dropped earlier")  # the original is gone, so its edited copy is no longer a duplicate
    Dedup().apply(table, sel)
    assert sel.keep[len(ds.examples) - 2]


# -- stratified --------------------------------------------------------------------------------------


def test_stratified_keeps_the_best_n_per_category(dolly, dolly_scores):
    picked = select(dolly, dolly_scores, Stratified(per=7, by="category", rank="response_chars"))
    kept = picked.selection.kept.tolist()
    chars = dolly_scores.column("response_chars").to_pylist()
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(dolly.examples):
        by_cat[ex.record["category"]].append(i)
    assert len(by_cat) == 8
    for members in by_cat.values():
        best = sorted(members, key=lambda i: (-chars[i], i))[:7]  # the oracle: longest first, earlier on ties
        assert sorted(i for i in kept if i in set(members)) == sorted(best)
        assert [picked.selection.rank[i] for i in best] == list(range(1, 8))
    assert len(kept) == 56
    assert "category" not in picked.scores.column_names  # the record field is read, not written as a score
    why = picked.selection.reasons[next(i for i in range(len(chars)) if i not in set(kept))]
    assert why.startswith("not in the top 7 per category by response_chars (category ")


def test_stratified_sample_without_a_score_and_rows_without_category(dolly, dolly_scores, tmp_path):
    records = [dict(ex.record) for ex in dolly.examples[:300]]
    for r in records[:10]:
        del r["category"]
    path = tmp_path / "some_uncategorised.json"
    path.write_text(json.dumps(records))
    ds = read(path)
    table = dolly_scores.slice(0, 300)
    a = select(ds, table, Stratified(per=4, by="category", seed=3))
    b = select(ds, table, Stratified(per=4, by="category", seed=3))
    assert a.selection.kept.tolist() == b.selection.kept.tolist()  # seeded
    assert all(a.selection.reasons[i] == "no category" for i in range(10))
    counts = Counter(records[i]["category"] for i in a.selection.kept.tolist())
    have = Counter(r.get("category") for r in records[10:])
    assert counts == {c: min(4, n) for c, n in have.items()}


def test_stratified_without_the_field_says_so(dolly, dolly_scores):
    with pytest.raises(KeyError, match="no record has a field 'topic'"):
        select(dolly, dolly_scores, Stratified(per=3, by="topic"))
    with pytest.raises(ValueError, match="category column"):
        Stratified(per=3, by=None)


def test_stratified_total_is_spread_evenly_over_categories(dolly, dolly_scores):
    """k in all: every category's best, then every category's second best, ... (LIMA's breadth)."""
    picked = select(dolly, dolly_scores, Stratified(by="category", rank="response_chars", k=20))
    kept = picked.selection.kept.tolist()
    chars = dolly_scores.column("response_chars").to_pylist()
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(dolly.examples):
        by_cat[ex.record["category"]].append(i)
    ranked = {c: sorted(m, key=lambda i: (-chars[i], i)) for c, m in by_cat.items()}
    rounds = [ranked[c][:2] for c in ranked]  # 8 categories: two full rounds are 16 rows ...
    third = sorted((ranked[c][2] for c in ranked), key=lambda i: (-chars[i], i))[:4]  # ... the best 4 thirds
    assert sorted(kept) == sorted([i for r in rounds for i in r] + third)
    assert sorted(picked.selection.rank[i] for i in kept) == list(range(1, 21))
    dropped = next(i for i in range(len(chars)) if i not in set(kept))
    assert picked.selection.reasons[dropped].startswith("not among the 20 spread evenly by category (category ")


def test_stratified_total_lets_large_strata_fill_in_for_small_ones():
    cats = ["a"] + ["b"] * 10 + ["c"] * 10
    quality = np.linspace(0, 1, len(cats))
    table = pa.table({"row": pa.array(range(len(cats)), pa.int64()), "category": cats, "quality": quality})
    sel = Selection.all(len(cats))
    Stratified(by="category", rank="quality", k=9).apply(table, sel)
    assert Counter(cats[i] for i in sel.kept.tolist()) == {"a": 1, "b": 4, "c": 4}
    sel = Selection.all(len(cats))
    Stratified(per=2, by="category", rank="quality", ratio=0.5).apply(table, sel)  # 11 of 21, but per=2 leaves 5
    assert Counter(cats[i] for i in sel.kept.tolist()) == {"a": 1, "b": 2, "c": 2}
    with pytest.raises(ValueError, match="per .* and/or a total"):
        Stratified(by="category")


def test_stratified_by_kmeans_clusters():
    """Without categories: K-Means over an embedding column, best first within each cluster."""
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]], dtype=np.float32)
    blob = np.repeat(np.arange(3), 20)
    vectors = centres[blob] + rng.normal(0, 0.3, size=(60, 2)).astype(np.float32)
    quality = rng.random(60)
    table = pa.table(
        {
            "row": pa.array(range(60), pa.int64()),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), 2),
            "quality": pa.array(quality),
        }
    )
    sel = Selection.all(60)
    Stratified(per=2, by=None, clusters=3, rank="quality").apply(table, sel)
    kept = sel.kept.tolist()
    assert sorted(kept) == sorted(
        i for b in range(3) for i in sorted(np.flatnonzero(blob == b), key=lambda i: -quality[i])[:2]
    )


# -- the lima method through the command line ---------------------------------------------------------


def test_lima_method_end_to_end_on_dolly(shared_data, tmp_path):
    data = shared_data / "dolly" / "dolly_3k.json"
    records = json.loads(data.read_text())
    out = tmp_path / "out.json"
    proc = cli("select", data, "--method", "lima", "--per-category", "20", "-o", out)
    kept = json.loads(out.read_text())
    assert kept, proc.stderr
    # A subset of the input, in input order, untouched.
    positions = [records.index(r) for r in kept]
    assert positions == sorted(positions)
    assert max(Counter(r["category"] for r in kept).values()) <= 20
    for r in kept:
        assert 1200 <= len(r["output"]) <= 4096
        ex = read_one(r)
        assert not any(check_example(ex).values()), r["output"][:80]
    summary = [x for x in proc.stderr.splitlines() if x.startswith("read ")][-1]
    assert f"read {len(records)} · kept {len(kept)} · dropped {len(records) - len(kept)}" in summary
    for reason in ("fails response_chars >= 1200", "rule first_person", "not in the top 20 per category"):
        assert reason in summary

    # No length window, only two rules, 3 per category ranked by tokens: exactly 3 from each of Dolly's
    # 8 categories, the longest in tokens among the rows that pass, computed here from the score table.
    out2, table_path = tmp_path / "out2.json", tmp_path / "scores.parquet"
    cli(
        *("select", data, "--method", "lima", "--per-category", "3", "--min-chars", "0", "--rank-by"),
        *("response_tokens", "--rules", "refusal,residue", "--save-scores", table_path, "--with-scores", "-q"),
        *("-o", out2),
    )
    kept2 = json.loads(out2.read_text())
    t = pq.read_table(table_path).to_pylist()
    ds = read(data)
    dups = select(ds, pq.read_table(table_path), Dedup()).selection.reasons
    passing = defaultdict(list)
    for i, (r, rec) in enumerate(zip(t, records, strict=True)):
        foreign = r["lang"] not in (None, "en") and r["lang_prob"] >= 0.9
        if not (r["rule_refusal"] or r["rule_residue"] or foreign or r["response_chars"] > 4096 or dups[i]):
            passing[rec["category"]].append(i)
    expected = sorted(i for rows in passing.values() for i in sorted(rows, key=lambda i: -t[i]["response_tokens"])[:3])
    assert [records.index({k: r[k] for k in records[0]}) for r in kept2] == expected
    assert Counter(r["category"] for r in kept2) == dict.fromkeys(passing, 3) and len(passing) == 8
    assert sorted(r["rank"] for r in kept2) == sorted([1, 2, 3] * 8)
    assert any(r["rule_first_person"] for r in kept2)  # that rule was switched off


@pytest.mark.slow
def test_lima_rank_by_ifd_adds_the_ifd_scorer(shared_data, tmp_path):
    """`--rank-by ifd`: IFD from the embedded model, IFD > 1 dropped, the highest IFD of each category."""
    records = json.loads((shared_data / "dolly" / "dolly_3k.json").read_text())
    subset = [
        r for c in sorted({r["category"] for r in records}) for r in [x for x in records if x["category"] == c][:4]
    ]
    data = tmp_path / "dolly_32.json"
    data.write_text(json.dumps(subset))
    out, table_path = tmp_path / "out.json", tmp_path / "scores.parquet"
    cli(
        *("select", data, "--method", "lima", "--per-category", "1", "--min-chars", "0", "--rank-by", "ifd"),
        *("--save-scores", table_path, "-q", "-o", out),
    )
    t = pq.read_table(table_path)
    dups = select(read(data), t, Dedup()).selection.reasons
    rows = t.to_pylist()
    best: dict[str, int] = {}
    for i, (r, rec) in enumerate(zip(rows, subset, strict=True)):
        if r["rule_flags"] or dups[i] or r["ifd"] is None or r["ifd"] > 1 or r["response_chars"] > 4096:
            continue
        if (r["lang"] or "en") != "en" and r["lang_prob"] >= 0.9:
            continue
        c = rec["category"]
        if c not in best or r["ifd"] > rows[best[c]]["ifd"]:
            best[c] = i
    kept = json.loads(out.read_text())
    assert [subset.index(r) for r in kept] == sorted(best.values()) and len(best) >= 6


@pytest.fixture(scope="module")
def dolly_40(shared_data, tmp_path_factory) -> tuple[Path, list[dict]]:
    """Five rows of each of Dolly's 8 categories."""
    records = json.loads((shared_data / "dolly" / "dolly_3k.json").read_text())
    subset = [
        r for c in sorted({r["category"] for r in records}) for r in [x for x in records if x["category"] == c][:5]
    ]
    path = tmp_path_factory.mktemp("dolly40") / "dolly_40.json"
    path.write_text(json.dumps(subset))
    return path, subset


def test_lima_top_spread_over_categories_and_clusters(dolly_40, tmp_path):
    """`--top K` with a category field (or K-Means clusters) spreads K over the strata, best first."""
    data, subset = dolly_40
    out, table_path = tmp_path / "out.json", tmp_path / "scores.parquet"
    base = ("select", data, "--method", "lima", "--min-chars", "0", "--rules", "none", "--languages", "en")
    cli(*base, "--category-field", "category", "--top", "12", "--save-scores", table_path, "-q", "-o", out)
    kept = json.loads(out.read_text())
    t = pq.read_table(table_path).to_pylist()
    dups = select(read(data), pq.read_table(table_path), Dedup()).selection.reasons
    ok = [
        i
        for i, r in enumerate(t)
        if not dups[i] and r["response_chars"] <= 4096 and not (r["lang"] not in (None, "en") and r["lang_prob"] >= 0.9)
    ]
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i in ok:
        by_cat[subset[i]["category"]].append(i)
    firsts = [max(m, key=lambda i: (t[i]["response_chars"], -i)) for m in by_cat.values()]
    assert len(kept) == 12 and set(firsts) <= {subset.index(r) for r in kept}  # every category's best is in
    assert len({r["category"] for r in kept}) == 8

    out2 = tmp_path / "out2.json"
    proc = cli(*base, "--clusters", "4", "--top", "8", "--save-scores", table_path, "--overwrite", "-o", out2)
    kept2 = json.loads(out2.read_text())
    assert len(kept2) == 8 and "embedding" in pq.read_table(table_path).column_names
    assert "spread evenly by K-Means cluster" in proc.stderr


@pytest.mark.slow
def test_lima_rank_by_judge_adds_the_judge(dolly_40, tmp_path):
    """`--rank-by judge`: the local AlpaGasus judge rates the rows; the best rated of each category is kept."""
    data, subset = dolly_40
    out, table_path = tmp_path / "out.json", tmp_path / "scores.parquet"
    cli(
        *("select", data, "--method", "lima", "--per-category", "1", "--min-chars", "0", "--rank-by", "judge"),
        *("--rules", "none", "--save-scores", table_path, "-q", "-o", out),
    )
    t = pq.read_table(table_path).to_pylist()
    assert all((r["judge"] is None) == (r["judge_reason"] is not None) for r in t)  # missing says why
    assert sum(r["judge"] is not None and 0 <= r["judge"] <= 5 for r in t) >= 30
    kept = json.loads(out.read_text())
    assert len(kept) >= 6
    for r in kept:
        same = [i for i, x in enumerate(subset) if x["category"] == r["category"]]
        rated = [t[i]["judge"] for i in same if t[i]["judge"] is not None and t[i]["response_chars"] <= 4096]
        assert t[subset.index(r)]["judge"] == max(rated)


def read_one(record: dict) -> Example:
    from instructsift.data.records import parse_alpaca

    return Example("x", tuple(parse_alpaca(record)), row=0, record=record)
