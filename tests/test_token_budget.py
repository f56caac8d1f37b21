"""`select --budget-tokens` (one method's pick fills a budget of trained answer tokens, as `compare` fills
it) and the length diagnostic of `select --with-scores`, on real Alpaca rows and the tiny BPE Llama."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import cli

from instructsift.selection.size import share

ALPACA = "alpaca/alpaca_random_9k.json"
MAX_LENGTH = 256  # the cut matters: some of these answers are longer (in the tiny BPE tokenizer)


@pytest.fixture(scope="module")
def pool(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 real Alpaca rows (the first 40 of the file: short and long answers)."""
    rows = json.loads((shared_data / ALPACA).read_text())[:40]
    path = tmp_path_factory.mktemp("pool") / "pool.json"
    path.write_text(json.dumps(rows))
    return path


def _costs(pool: Path, model: Path, max_length: int = MAX_LENGTH, template: str = "alpaca") -> list[int]:
    """Each row's trained answer tokens as `compare` counts them (`training_costs`)."""
    from instructsift.api import read
    from instructsift.train.finetune import FinetuneConfig, training_costs

    config = FinetuneConfig(max_length=max_length, template=template)
    return [c.tokens for c in training_costs(read(pool).examples, str(model), config)]


@pytest.mark.parametrize("method", ["longest", "superfiltering", "random"])
def test_select_fills_the_token_budget_as_compare_does(method: str, pool: Path, tiny_bpe_llama: Path, tmp_path: Path):
    """The pick's trained tokens (after the max-length cut) are within half an example of the budget, and
    its rows are compare's fill for the same method (its random arm of that seed, for random)."""
    from instructsift.api import read
    from instructsift.experiments.arms import Budget, select_with
    from instructsift.experiments.compare_spec import CompareSpec
    from instructsift.pipeline import run
    from instructsift.recipe import from_method

    model = str(tiny_bpe_llama)
    opts = {} if method == "random" else {"model": model}
    if method == "random":
        opts["seed"] = 3
    budget_opts = {"budget_tokens": 0.25, "base": model, "train_max_length": MAX_LENGTH}
    recipe = from_method(method, {**opts, **budget_opts}, input=str(pool), output=str(tmp_path / "out.json"))
    result = run(recipe, progress=False, log=lambda m: None)
    kept = sorted(result.picked.selection.kept.tolist())

    each = _costs(pool, tiny_bpe_llama)
    assert result.table.column("trained_tokens").to_pylist() == each  # the trainer's own count, cut included
    assert each != _costs(pool, tiny_bpe_llama, 4096)  # the cut bites on this pool
    budget = share(0.25, sum(each))  # the one rounding rule: half up (834.5 -> 835)
    filled = sum(each[i] for i in kept)
    assert abs(filled - budget) <= max(each[i] for i in kept) / 2  # within half an example
    assert len(json.loads((tmp_path / "out.json").read_text())) == len(kept)

    spec = CompareSpec(data=str(pool), eval=str(pool), methods=[method], budget_tokens=0.25, base=model,
                       options={method: opts}, finetune={"max_length": MAX_LENGTH}, random_seeds=0)  # fmt: skip
    b = Budget.of(spec, each)
    assert b.tokens == budget
    # compare's arm of the method: its ranking of b.rows, filled in rank order
    ranked = select_with(spec, Path.cwd(), method, b.rows, read(pool), progress=False, log=lambda m: None)
    assert kept == sorted(b.take(ranked.positions)[0])
    if method == "random":  # and compare's random arm of seed 3: the rows of permutation(n) until the budget
        assert kept == sorted(b.random(3))
    text = "; ".join(result.summary()["shares"])
    assert f"token budget {budget:,} of {sum(each):,} trained answer tokens" in text
    assert f"filled {filled:,} with {len(kept)} rows" in text


def test_select_budget_tokens_on_the_command_line_with_the_length_diagnostic(
    pool: Path, tiny_bpe_llama: Path, tmp_path: Path
) -> None:
    """The summary line gives the budget, the tokens filled and n; --with-scores adds Spearman's ρ (checked
    against scipy) and the mean tokens of the pick and the pool; the saved recipe runs to the same pick."""
    import pyarrow.parquet as pq
    from scipy.stats import spearmanr

    from instructsift.pipeline import run

    out, scores, recipe = tmp_path / "out.json", tmp_path / "scores.parquet", tmp_path / "budget.yaml"
    model = str(tiny_bpe_llama)
    proc = cli("select", pool, "--method", "superfiltering", "--model", model, "--budget-tokens", "300", "--base", model,
               "--train-max-length", MAX_LENGTH, "--with-scores", "--save-scores", scores, "--save-recipe", recipe,
               "-o", out)  # fmt: skip
    picked = json.loads(out.read_text())
    table = pq.read_table(scores)
    tokens, ifd = table.column("trained_tokens").to_pylist(), table.column("ifd_ppl").to_pylist()
    assert tokens == _costs(pool, tiny_bpe_llama)
    filled = sum(r["trained_tokens"] for r in picked)
    m = re.search(
        r"token budget 300 of ([\d,]+) trained answer tokens \([\d.]+%\): filled ([\d,]+) with (\d+) rows", proc.stderr
    )
    assert m, proc.stderr
    assert (
        int(m[1].replace(",", "")) == sum(tokens) and int(m[2].replace(",", "")) == filled and int(m[3]) == len(picked)
    )
    assert f"kept {len(picked)} " in proc.stderr
    # the diagnostic: superfiltering ranks by ifd_ppl, highest first, over the rows that have one
    ok = [i for i, v in enumerate(ifd) if v is not None]
    rho = spearmanr([ifd[i] for i in ok], [tokens[i] for i in ok]).statistic
    m = re.search(r"Spearman ρ = (-?[\d.]+) between ifd_ppl and answer tokens over (\d+) rows; "
                  r"the pick's mean ([\d.]+) vs the pool's ([\d.]+)", proc.stderr)  # fmt: skip
    assert m, proc.stderr
    assert float(m[1]) == pytest.approx(rho, abs=5e-4) and int(m[2]) == len(ok)
    assert float(m[3]) == pytest.approx(filled / len(picked), abs=0.05)
    assert float(m[4]) == pytest.approx(sum(tokens) / len(tokens), abs=0.05)
    assert ("mostly a length filter" in proc.stderr) == (rho > 0.8)
    again = run(recipe, progress=False, log=lambda m: None, overwrite=True)  # the recipe: the same pick
    assert json.loads(out.read_text()) == picked and len(again.picked.selection.kept) == len(picked)


def test_longest_is_called_a_length_filter(pool: Path, tiny_bpe_llama: Path, tmp_path: Path) -> None:
    """longest by characters, no budget: ρ against trained tokens (compare's count) says length filter."""
    from scipy.stats import spearmanr

    proc = cli("select", pool, "--method", "longest", "--top", "5", "--with-scores", "--base", tiny_bpe_llama,
               "--train-max-length", MAX_LENGTH, "-o", tmp_path / "out.json")  # fmt: skip
    rows = json.loads(pool.read_text())
    tokens = _costs(pool, tiny_bpe_llama)
    rho = spearmanr([len(r["output"]) for r in rows], tokens).statistic
    m = re.search(r"Spearman ρ = (-?[\d.]+) between output_chars", proc.stderr)
    assert m and float(m[1]) == pytest.approx(rho, abs=5e-4), proc.stderr
    assert rho > 0.8 and "mostly a length filter on this data" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--budget-tokens", "300", "--top", "3"],
            "needs exactly one of --top or --budget-tokens, not both",
        ),
        (["--budget-tokens", "0.1", "--ratio", "0.2"], "needs exactly one of --ratio or --budget-tokens, not both"),
        (["--top", "3", "--base", "embedded"], "give --budget-tokens or --with-scores"),
        (["--budget-tokens", "0.05,0.1"], "'--budget-tokens': one number, not a list"),
        (["--budget-tokens", "1.5"], "--budget-tokens 1.5 is not a share between 0 and 1"),
        (["--budget-tokens", "10000000", "--base", "TINY"], "is more than the"),
    ],
)
def test_budget_usage_errors_exit_2(
    args: list[str], message: str, pool: Path, tiny_bpe_llama: Path, tmp_path: Path
) -> None:
    args = [str(tiny_bpe_llama) if a == "TINY" else a for a in args]
    proc = cli("select", pool, "--method", "random", *args, "-o", tmp_path / "out.json", check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out.json").exists()


def test_a_recipe_method_step_takes_a_token_budget(pool: Path, tiny_bpe_llama: Path, tmp_path: Path) -> None:
    """`method: random` with `budget_tokens` in a hand-written recipe: compare's random arm of that seed."""
    from instructsift.experiments.arms import Budget
    from instructsift.experiments.compare_spec import CompareSpec
    from instructsift.pipeline import run

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"input: {pool}\noutput: {tmp_path / 'out.json'}\nsteps:\n  - method: random\n"
        f"    with: {{budget_tokens: 0.25, base: {tiny_bpe_llama}, train_max_length: {MAX_LENGTH}, seed: 3}}\n"
    )
    result = run(recipe, progress=False, log=lambda m: None)
    spec = CompareSpec(data=str(pool), eval=str(pool), budget_tokens=0.25, base=str(tiny_bpe_llama),
                       finetune={"max_length": MAX_LENGTH})  # fmt: skip
    assert sorted(result.picked.selection.kept.tolist()) == sorted(
        Budget.of(spec, _costs(pool, tiny_bpe_llama)).random(3)
    )
    assert [st.name for st in result.recipe.steps] == ["trained_tokens", "random", "token_budget"]


def test_a_token_budget_reads_a_column_a_step_before_it_writes(tmp_path: Path) -> None:
    """`token_budget`'s `column` is a `registry.ColumnRef`: a recipe checks it before any work, so a method's
    `budget_tokens` (the trained_tokens scorer first) loads, and a hand-written budget over a column no step
    writes is an error naming its line."""
    from instructsift import recipe as recipes
    from instructsift import registry

    assert registry.option_kinds(registry.get("select", "token_budget").params) == {"column": registry.Kind.column}
    r = recipes.from_dict({"input": "d.json", "steps": [{"method": "longest", "with": {"budget_tokens": 1000}}]})
    assert [st.name for st in r.steps][-1] == "token_budget"
    path = tmp_path / "r.yaml"
    path.write_text(
        "input: d.json\nsteps:\n  - score: trained_tokens\n    as: t\n"
        "  - select: token_budget\n    with: {tokens: 100, column: trained_token}\n"
    )
    with pytest.raises(recipes.RecipeError, match=r"line 5, .* reads the column 'trained_token'.*t\.trained_tokens"):
        recipes.load(path)


def test_train_template_counts_as_that_template_trains(pool: Path, tiny_bpe_llama: Path, tmp_path: Path) -> None:
    """--train-template: the tokens are counted with the fine-tune's template (here `none`, whose prompts are
    shorter than alpaca's, so the cut takes less of the answers), not with alpaca's."""
    from instructsift.pipeline import run
    from instructsift.recipe import from_method

    model = str(tiny_bpe_llama)
    opts = {"budget_tokens": 0.25, "base": model, "train_max_length": 64, "train_template": "none"}
    result = run(from_method("longest", opts, input=str(pool), output=str(tmp_path / "o.json")), progress=False,
                 log=lambda m: None)  # fmt: skip
    counted = result.table.column("trained_tokens").to_pylist()
    assert counted == _costs(pool, tiny_bpe_llama, 64, "none") != _costs(pool, tiny_bpe_llama, 64)
    proc = cli("select", pool, "-m", "longest", "--top", 3, "--train-template", "none", "-o", tmp_path / "x.json",
               check=False)  # fmt: skip
    assert proc.returncode == 2 and "give --budget-tokens or --with-scores" in proc.stderr


def test_the_base_model_default_is_the_trained_tokens_scorers_own(pool: Path, tmp_path: Path) -> None:
    """Without --base, the method writes no model into its `trained_tokens` step: the scorer fills its own
    defaults (embedded, 512, alpaca), and the length diagnostic reads them back from the scorer. The loader
    functions below it take a required model."""
    import inspect

    from instructsift.experiments.length import trained_tokens
    from instructsift.models import load_causal_lm
    from instructsift.models.embedded import EMBEDDED, encoder_path, gguf_path
    from instructsift.pipeline import run
    from instructsift.recipe import from_method

    for fn, arg in ((load_causal_lm, "spec"), (gguf_path, "name"), (encoder_path, "name")):
        assert inspect.signature(fn).parameters[arg].default is inspect.Parameter.empty, fn.__name__
    recipe = from_method("longest", {"budget_tokens": 0.25}, input=str(pool), output=str(tmp_path / "o.json"))
    count = next(st for st in recipe.steps if st.name == "trained_tokens")
    assert "model" not in count.options
    result = run(recipe, progress=False, log=lambda m: None)
    tokens, counted = trained_tokens(result)
    assert counted == f"trained answer tokens of {EMBEDDED} at max length 512"
    assert tokens == result.table.column("trained_tokens").to_pylist() and sum(tokens) > 0
