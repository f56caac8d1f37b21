"""The HTML report: built from a real run on the sample, rendered in Debian's chromium (headless, through
Playwright), with every section, plot and table drawn, a map tooltip, and no network request; its size
bounded on a 200k-row table; bad inputs refused with exit 2."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import cli

from instructsift.data import read

pytest.importorskip("plotly", reason="the report needs plotly: pip install 'instructsift[report]'")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample_alpaca.json"
CHROMIUM = os.environ.get("INSTRUCTSIFT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SECTIONS = ("counts", "scores", "correlations", "overlap", "map", "compare", "mining")


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def mine_folder(d: Path) -> Path:
    """A real InstructMining run (`experiments.mining.mine`) on the sample: 12 subsets whose losses follow a known
    rule of three indicators, then BlendSearch and a sweep over the subset size; its output folder."""
    from instructsift.experiments.mining import mine

    design = d / "design"
    design.mkdir()
    (design / "pool.json").write_text(SAMPLE.read_text())
    rng = np.random.default_rng(1)
    subsets = [sorted(rng.choice(32, 8, replace=False).tolist()) for _ in range(12)]
    (design / "design.json").write_text(json.dumps({"pool": "pool.json", "subsets": [{"rows": s} for s in subsets]}))
    out = d / "mining"

    def loss_of(rows):
        t = pq.read_table(out / "pool.scores.parquet").to_pylist()
        mean = {c: np.mean([t[r][c] for r in rows]) for c in ("output_tokens", "input_tokens", "mtld")}
        log_l = 0.9 + 0.002 * mean["output_tokens"] - 0.004 * mean["input_tokens"] - 0.01 * mean["mtld"]
        return float(np.exp(log_l + 0.01 * np.sin(len(rows)) + 0.3 * (np.log(len(rows)) - np.log(12)) ** 2))

    mine(design / "design.json", loss_of, out, indicators=["output_tokens", "input_tokens", "mtld"], low=2,
         high=32, budget=6, sweep_points=5, cache_dir=d / "cache", log=lambda _m: None)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    """A real run on the sample: superfiltering with the embedded model (scores, dropped rows, the pick),
    a wider pick from the same scores and a LIMA pick to overlap, and compare / InstructMining results in
    the formats those commands write."""
    d = tmp_path_factory.mktemp("report")
    out = {k: d / f"{k}.json" for k in ("picked", "wide", "lima")}
    out.update(scores=d / "scores.parquet", dropped=d / "dropped.jsonl", page=d / "report.html")
    cli("select", SAMPLE, "-m", "superfiltering", "--ratio", "0.25", "--save-scores", out["scores"],
        "--dropped", out["dropped"], "-o", out["picked"], "-q")  # fmt: skip
    cli("select", SAMPLE, "-m", "superfiltering", "--ratio", "0.5", "--scores", out["scores"], "-o", out["wide"], "-q")
    cli("select", SAMPLE, "-m", "lima", "--top", "10", "--min-chars", "100", "-o", out["lima"], "-q")
    compare = d / "compare"
    compare.mkdir()
    trials = [
        {"name": "superfiltering", "n": 8, "tokens": 812, "eval_loss": 2.41, "seconds": 31.5},
        {"name": "random", "seed": 1, "n": 8, "tokens": 790, "eval_loss": 2.52, "seconds": 30.1},
        {"name": "random", "seed": 2, "n": 8, "tokens": 805, "eval_loss": 2.47, "seconds": 29.8},
        {"name": "full", "n": 32, "tokens": 3120, "eval_loss": 2.38, "seconds": 95.0},
        {"name": "lima", "n": 8, "eval_loss": None},  # a trial without a loss: a blank, not an error
    ]
    write_json(compare / "results.json", {"trials": trials, "settings": {"base": "embedded"}, "extra": [1]})
    out["compare"] = compare
    out["mining"] = mine_folder(d)
    proc = cli(
        "report", out["scores"], "--data", SAMPLE, "--dropped", out["dropped"], "--selection", out["picked"],
        "--selection", out["wide"], "--selection", out["lima"], "--compare", compare, "--mining", out["mining"],
        "--bookkeeping", "-o", out["page"],
    )  # fmt: skip
    assert f"report of 32 rows → {out['page']}" in proc.stderr
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Debian's chromium, headless, with a fresh profile, driven by Playwright; or skip saying why."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: make install")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}: `make install` installs Debian's chromium (apt-get install chromium)")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True, args=args,
            viewport={"width": 1300, "height": 900},
        )  # fmt: skip
        yield context
        context.close()


def open_page(context, path: Path):
    """The page loaded from disk; every request that is not for a file: URL is recorded and refused."""
    page = context.new_page()
    network: list[str] = []
    errors: list[str] = []

    def route(r):
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            network.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length > 0")
    page.wait_for_timeout(500)
    return page, network, errors


def marks(page, fig_id: str) -> dict[str, int]:
    """What a plotly figure drew: bars, points, heat-map images, shapes (cut-off lines), annotation texts."""
    return page.evaluate(
        """id => { const d = document.getElementById(id); const n = s => d.querySelectorAll(s).length;
        const svg = d.querySelector('.main-svg').getBoundingClientRect();
        return {svg: n('.main-svg'), width: Math.round(svg.width), height: Math.round(svg.height),
                bars: n('.bars .point path'), points: n('.scatterlayer .point'), heat: n('.hm image'),
                shapes: n('.shapelayer path'), annotations: n('.annotation')}; }""",
        fig_id,
    )


def test_report_renders_every_section_drawn_offline_with_a_map_tooltip(run, browser, tmp_path):
    page, network, errors = open_page(browser, run["page"])
    ds = read(SAMPLE)
    for sid in SECTIONS:
        assert page.locator(f"section#{sid}").is_visible(), sid

    # Counts: the run's own numbers (32 read, 8 kept, 24 dropped: 23 outside the top 8, 1 not scored).
    counts = {
        r[0] or r[1]: r[2]
        for r in page.evaluate(
            "[...document.querySelectorAll('table[data-table=counts] tbody tr')]"
            ".map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent.trim()))"
        )
    }
    assert (counts["read"], counts["kept"], counts["dropped"], counts["rejected"]) == ("32", "8", "24", "0")
    assert counts["not in the top 8 by ifd_ppl (step top)"] == "23"

    # Every figure is drawn: an SVG with marks of its kind.
    figs = page.evaluate("[...document.querySelectorAll('.plotly-graph-div')].map(d => d.id)")
    columns = [c for c in ("ifd_ppl", "ifd", "loss_cond", "loss_direct", "prompt_tokens", "answer_tokens")]
    assert len([f for f in figs if f.startswith("fig-hist-")]) >= len(columns)
    for fid in figs:
        m = marks(page, fid)
        assert m["svg"] >= 1 and m["width"] > 200 and m["height"] > 100, (fid, m)
        drawn = m["bars"] + m["points"] + m["heat"]
        assert drawn > 0, (fid, m)
    for fid in ("fig-counts", "fig-coefficients"):
        assert marks(page, fid)["bars"] >= 3
    for fid in ("fig-corr", "fig-jaccard"):
        assert marks(page, fid)["heat"] == 1
    assert marks(page, "fig-upset")["bars"] >= 2 and marks(page, "fig-upset")["points"] >= 6
    assert marks(page, "fig-compare")["points"] == 4  # the trial without a loss is not drawn
    journal = [json.loads(x) for x in (run["mining"] / "search.jsonl").read_text().splitlines()[1:]]
    assert marks(page, "fig-curve")["points"] == len(journal) >= 8  # every trial: 6 searched, 5 swept
    assert marks(page, "fig-map")["points"] == 32

    # The selecting column comes first, with both of superfiltering's cuts drawn on it.
    first = page.locator("#score-0")
    assert first.locator("h3").inner_text() == "ifd_ppl"
    labels = first.locator(".annotation").evaluate_all("els => els.map(e => e.textContent)")
    assert any(t.startswith("top 8 by ifd_ppl: ") for t in labels), labels  # the lowest kept value
    assert marks(page, "fig-hist-0")["shapes"] >= 1

    # Examples: top, bottom and around the cut-off for every column, with texts behind <details>.
    tables = page.locator("#scores table[data-table^=examples-]")
    assert tables.count() == len(figs) - len([f for f in figs if not f.startswith("fig-hist-")])
    rows = tables.first.locator("tbody tr")
    assert rows.count() == 9
    assert [rows.nth(i).locator("td").first.inner_text() for i in (0, 3)] == ["top", "bottom"]
    texts = {ex.instruction.split()[0] for ex in ds.examples}
    assert rows.first.locator("td").nth(4).inner_text().split()[0] in texts
    details = page.locator("#scores details")
    assert details.count() > 0
    details.first.locator("summary").click()
    assert details.first.locator(".full").is_visible()

    # Tables of the other sections.
    assert page.locator("table[data-table=selections] tbody tr").count() == 4  # kept (--dropped) + 3 files
    assert page.locator("table[data-table=compare] tbody tr").count() == 5
    assert page.locator("table[data-table=coefficients] tbody tr").count() == 4  # 3 indicators, the intercept
    rule = json.loads((run["mining"] / "rule.json").read_text())
    intro = page.locator("#mining .intro").inner_text()
    assert f"R² {rule['rsquared']:.3f}" in intro and f"leave-one-out R² {rule['loo_rsquared']:.3f}" in intro
    assert "32 of 32 rows (all)" in page.locator("#map .intro").inner_text()

    # Hovering a map point shows its tooltip: the row's id, its instruction and its scores.
    page.locator("#fig-map").scroll_into_view_if_needed()
    box = page.locator("#fig-map .scatterlayer .point").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#fig-map .hoverlayer .hovertext", timeout=5000)
    tip = page.locator("#fig-map .hoverlayer .hovertext").text_content()
    by_id = {ex.id: ex for ex in ds.examples}
    shown = [i for i in by_id if i in tip]
    assert len(shown) == 1, tip
    squash = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
    assert squash(by_id[shown[0]].instruction)[:30] in squash(tip)
    assert "ifd_ppl:" in tip and ("kept" in tip or "dropped" in tip)

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    assert errors == []
    assert network == [], f"the page asked the network for {network}"
    page.close()


def test_a_mine_folder_shows_its_coefficients_fit_and_curve(run, tmp_path):
    """`--mining DIR` reads what `mine()` wrote: rule.json's coefficients (with standard errors and p-values),
    R² and leave-one-out R², search.jsonl's every trial as the curve, summary.json's best k; `--rule` and
    `--curve` read the same files one by one."""
    from instructsift.report import build, from_files

    folder = run["mining"]
    rule = json.loads((folder / "rule.json").read_text())
    summary = json.loads((folder / "summary.json").read_text())
    journal = [json.loads(x) for x in (folder / "search.jsonl").read_text().splitlines()[1:]]
    data = from_files(run["scores"], mining=folder)
    got = {c["name"]: (c["coef"], c["std_err"], c["p_value"]) for c in data.rule.coefficients}
    assert got == {n: (rule["coef"][n], rule["bse"][n], rule["pvalues"][n]) for n in rule["indicators"]}
    assert (data.rule.r2, data.rule.loo_r2, data.rule.intercept) == (
        rule["rsquared"], rule["loo_rsquared"], rule["intercept"]
    )  # fmt: skip
    assert data.rule.n_subsets == 12 and len(data.experiments) == 12
    assert sorted((p["k"], p["eval_loss"], p["kind"]) for p in data.curve.points) == sorted(
        (t["k"], t["loss"], t["how"]) for t in journal
    )  # fmt: skip
    assert {p["kind"] for p in data.curve.points} == {"search", "sweep"} and data.curve.best_k == summary["best_k"]
    html = build(data)
    assert '<section id="mining"' in html and 'id="fig-curve"' in html and 'id="fig-coefficients"' in html
    for name in rule["indicators"]:
        assert f"<td>{name}</td>" in html and f"<td>{rule['coef'][name]:.4g}</td>" in html
    assert f"R² {rule['rsquared']:.3f}" in html and f"leave-one-out R² {rule['loo_rsquared']:.3f}" in html
    assert f"best k = {summary['best_k']}" in html

    page = tmp_path / "m.html"
    cli("report", run["scores"], "--rule", folder / "rule.json", "--curve", folder / "search.jsonl", "-o", page)
    assert f"<td>{rule['coef'][rule['indicators'][0]]:.4g}</td>" in page.read_text(encoding="utf-8")


def test_select_and_run_write_a_report_of_the_run(run, tmp_path):
    page = tmp_path / "select.html"
    proc = cli("select", SAMPLE, "-m", "superfiltering", "--ratio", "0.25", "--scores", run["scores"],
               "-o", tmp_path / "p.json", "--report", page)  # fmt: skip
    assert f"(report: {page})" in proc.stderr
    html = page.read_text(encoding="utf-8")
    for sid in ("counts", "scores", "correlations", "overlap", "map"):
        assert f'<section id="{sid}"' in html
    assert "keep ifd_ppl &lt; 1" in html and "top 8 by ifd_ppl" in html
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs() in html  # inlined, once
    own = html.replace(get_plotlyjs(), "")
    assert "<script src" not in own and "<link" not in own and "@import" not in own

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"input: {SAMPLE}\noutput: out.json\nfrom_scores: {run['scores']}\nreport: page.html\n"
        "steps:\n  - method: superfiltering\n    with: {ratio: 0.5}\n",
        encoding="utf-8",
    )
    proc = cli("run", recipe)
    assert (tmp_path / "page.html").is_file() and "(report: " in proc.stderr
    other = tmp_path / "other.html"
    cli("run", recipe, "--report", other, "--overwrite")
    assert "kept" in other.read_text(encoding="utf-8")
    refused = cli("run", recipe, "--report", tmp_path / "page.txt", "--overwrite", check=False)
    assert refused.returncode == 2 and "page.txt" in refused.stderr and ".html" in refused.stderr


def test_a_200k_row_table_makes_a_page_of_a_few_megabytes(tmp_path):
    from plotly.offline import get_plotlyjs

    from instructsift.report import build, from_files

    n = 200_000
    rng = np.random.default_rng(0)
    a = rng.normal(size=n)
    table = pa.table(
        {
            "row": pa.array(np.arange(n)),
            "id": pa.array([f"r{i}" for i in range(n)]),
            "ifd": pa.array(np.where(rng.random(n) < 0.01, np.nan, np.exp(a / 3)), from_pandas=True),
            "judge": pa.array(rng.integers(0, 6, n)),
            "loss_cond": pa.array(a + rng.normal(size=n)),
            "embedding": pa.array(rng.normal(size=(n, 8)).astype(np.float32).tolist(), pa.list_(pa.float32(), 8)),
        }
    )
    pq.write_table(table, tmp_path / "scores.parquet")
    dropped = [
        {"row": i, "id": f"r{i}", "step": "top", "code": "not in the top 20000 by ifd", "detail": None}
        for i in np.argsort(-np.nan_to_num(table.column("ifd").to_numpy(zero_copy_only=False), nan=-1))[
            20_000:
        ].tolist()
    ]
    (tmp_path / "dropped.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dropped), encoding="utf-8")
    html = build(from_files(tmp_path / "scores.parquet", dropped=tmp_path / "dropped.jsonl"))
    size, js = len(html.encode("utf-8")), len(get_plotlyjs().encode("utf-8"))
    assert size < js + 1_500_000, f"{size:,} bytes, of which plotly.js {js:,}"
    assert "2,000 of 200,000 rows (a random sample" in html
    assert "top 20000 by ifd" in html


@pytest.mark.parametrize(
    ("make", "args", "expect"),
    [
        (None, ["missing.parquet"], "missing.parquet: no such file"),
        (lambda d: (d / "bad.parquet").write_text("not parquet"), ["bad.parquet"], "bad.parquet: not a readable"),
        (lambda d: pq.write_table(pa.table({"x": [1]}), d / "norow.parquet"), ["norow.parquet"], "no `row` column"),
        (lambda d: (d / "d.jsonl").write_text('{"row": 0, "code": "x"}\n{oops\n'),
         ["SCORES", "--dropped", "d.jsonl"], "d.jsonl, line 2: not valid JSON"),
        (lambda d: (d / "cmp").mkdir(), ["SCORES", "--compare", "cmp"], "cmp: no results.json"),
        (lambda d: write_json(d / "r.json", {"trials": [{"n": 3}]}), ["SCORES", "--compare", "r.json"],
         "r.json: trial 1 has no `name`"),
        (lambda d: write_json(d / "rule.json", {"r2": 1}), ["SCORES", "--rule", "rule.json"], "no coefficients found"),
        (lambda d: (d / "m").mkdir(), ["SCORES", "--mining", "m"], "m: neither rule.json nor search.jsonl"),
        (lambda d: write_json(d / "other.json", [{"instruction": "a", "output": "b"}]),
         ["SCORES", "--selection", "other.json"], "other.json, line 1: the record"),
        (None, ["SCORES", "--color-by", "nope"], "--color-by nope: no such score column"),
    ],
)  # fmt: skip
def test_report_refuses_bad_inputs_naming_the_file(run, tmp_path, make, args, expect):
    if make:
        make(tmp_path)
    args = [str(run["scores"]) if a == "SCORES" else str(tmp_path / a) if a.endswith(("json", "jsonl", "parquet"))
            or a in ("cmp", "m") else a for a in args]  # fmt: skip
    proc = cli("report", *args, "-o", tmp_path / "r.html", check=False)
    assert proc.returncode == 2, proc.stderr
    assert expect in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "r.html").exists()


def test_compare_results_are_read_tolerantly_and_shown_alone(tmp_path):
    from instructsift.report import build, from_compare

    trials = [
        {"method": "superfiltering", "size": 8, "loss": 2.4, "unknown": {"x": 1}},  # other names for the fields
        {"name": "random-1", "n": 8, "eval_loss": "2.5", "seconds": 3},  # a number as text
        {"name": "random-2", "n": 8, "eval_loss": 2.6},
        {"name": "full", "n": 32, "eval_loss": float("nan")},  # NaN: a blank, never a number
    ]
    (tmp_path / "results.json").write_text(json.dumps(trials), encoding="utf-8")  # a bare list of trials
    data = from_compare(tmp_path)
    assert [(t.name, t.n, t.eval_loss) for t in data.compare.trials] == [
        ("superfiltering", 8, 2.4), ("random-1", 8, 2.5), ("random-2", 8, 2.6), ("full", 32, None)
    ]  # fmt: skip
    assert data.compare.random_losses() == [2.5, 2.6] and data.compare.full_loss() is None
    html = build(data)
    assert '<section id="compare"' in html and '<section id="counts"' not in html
    assert "<td>-0.1500</td>" in html  # superfiltering vs the mean random trial (2.55)


def test_compare_picks_join_the_overlap_when_they_are_this_tables_rows(run, tmp_path):
    """results.json's `selections` (the ids each method picked) become selections of the page; a pick of
    another data set is named in the page's sources, not drawn."""
    from instructsift.report import from_files

    picked = [ex.id for ex in read(run["picked"]).examples]
    trials = [{"name": "superfiltering", "n": len(picked), "eval_loss": 2.4}]
    selections = {"superfiltering": {"kept": len(picked), "ids": picked}, "other": {"ids": ["not-a-row"]}}
    write_json(tmp_path / "results.json", {"trials": trials, "selections": selections})
    data = from_files(run["scores"], compare=tmp_path)
    mask = data.selections["superfiltering (compare)"]
    ids = data.table.column("id").to_pylist()
    assert sorted(ids[i] for i in np.flatnonzero(mask)) == sorted(picked) and "other (compare)" not in data.selections
    assert "not in the overlap" in data.sources["compare other"]
