"""What a ratio means: one rounding rule for every ratio a user gives, and what each method's ratio is a
share of (said by `methods` and by the summary line)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from helpers import cli

from instructsift.selection import Selection
from instructsift.selection.size import Amount, share
from instructsift.selection.top import Top


def test_one_rounding_rule_for_every_ratio():
    """`select --ratio 0.05` over 50 rows kept 3 (floor(r n + 0.5)) while `compare --budget 0.05` picked 2
    (Python's round, half to even): both are `share` now, half up."""
    assert share(0.05, 50) == 3 and share(0.25, 10) == 3 and share(0.001, 10) == 1 and share(0.5, 0) == 0
    for n in (1, 2, 3, 10, 50, 99, 291, 400):
        for ratio in (0.001, 0.01, 0.05, 0.1, 0.25, 0.3, 0.5, 0.75, 1.0):
            want = share(ratio, n)
            assert Amount(ratio).resolve(n) == Amount(ratio, "tokens").resolve(n) == want, (ratio, n)
            sel = Selection.all(n)
            Top("x", ratio=ratio).apply(pa.table({"x": np.arange(n, dtype=float)}), sel)
            assert len(sel.kept) == want, (ratio, n)
    assert Amount(0.05, "rows", "budget").resolve(50) == 3  # was 2


def _ifd_table(n: int = 400, above: int = 109) -> pa.Table:
    """`n` rows of which `above` have ifd > 1."""
    rng = np.random.default_rng(0)
    ifd = np.concatenate([rng.uniform(0.1, 1.0, n - above), rng.uniform(1.01, 2.0, above)])
    return pa.table({"ifd": rng.permutation(ifd)})


def test_each_method_says_what_its_ratio_is_a_share_of():
    """cherry's ratio is a share of the rows left after `ifd <= 1` (Cherry LLM's data_by_IFD.py), and
    superfiltering's a share of all rows: each keeps its paper's meaning, and the run says which."""
    from instructsift import registry
    from instructsift.selection.threshold import Threshold

    table = _ifd_table()
    cherry = Selection.all(400)
    for s in (Threshold(where="ifd <= 1"), Top("ifd", ratio=0.25, of="kept")):
        s.apply(table, cherry)
    assert len(cherry.kept) == 73 and cherry.shares == ["top 25% of the 291 rows with ifd <= 1"]
    sf = Selection.all(400)
    for s in (Threshold(where="ifd < 1"), Top("ifd", ratio=0.25, of="all")):
        s.apply(table, sf)
    assert len(sf.kept) == 100 and sf.shares == ["top 25% of all 400 rows"]
    k = Selection.all(400)
    Top("ifd", k=10).apply(table, k)
    assert k.shares == []  # a count is not a share

    said = {
        m.name: m.ratio_of for m in (e.target for e in registry.entries("method")) if "ratio" in m.Params.model_fields
    }
    assert said["cherry"].startswith("the rows with ifd <= 1") and said["superfiltering"].startswith("all rows")
    assert all(said.values())


def test_the_summary_line_says_what_the_ratio_was_a_share_of(tmp_path):
    import json
    from pathlib import Path

    steps = [
        {"score": "rules", "with": {"tokenizer": None}},
        {"select": "threshold", "with": {"where": "response_chars <= 400"}},
        {"select": "top", "with": {"column": "response_chars", "ratio": 0.25, "of": "kept"}},
    ]
    sample = Path(__file__).resolve().parents[1] / "examples" / "sample_alpaca.json"
    chars = sorted(len(r["output"]) for r in json.loads(sample.read_text()))
    n = sum(c <= 400 for c in chars)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"input": str(sample), "output": str(tmp_path / "o.json"), "steps": steps}))
    res = cli("run", recipe)
    assert f"kept {share(0.25, n)} (top 25% of the {n} rows with response_chars <= 400)" in res.output, res.output


def test_methods_reads_well_at_80_columns(monkeypatch):
    from instructsift import registry

    with monkeypatch.context() as m:
        m.setenv("COLUMNS", "80")
        res = cli("methods")
        one = cli("methods", "superfiltering", check=False)
    lines = res.stdout.splitlines()
    assert max(map(len, lines)) <= 80, max(lines, key=len)
    starts = [line.split(" ")[0] for line in lines if line and not line.startswith(" ")]
    assert starts == registry.names("method")  # a block per method, its name first
    assert "  --ratio: a share of the rows with ifd <= 1" in res.stdout and "NAACL 2024" in res.stdout
    assert one.returncode == 0 and one.stdout.startswith("superfiltering\n") and "cherry" not in one.stdout
    assert "--ratio: a share of all rows" in one.stdout
    alias = cli("methods", "ifd", check=False)
    assert alias.returncode == 0 and alias.stdout.startswith("cherry (alias: ifd)")
    bad = cli("methods", "nosuch", check=False)
    assert bad.returncode == 2 and "unknown method 'nosuch'" in bad.output and "superfiltering" in bad.output
