"""One budget type: `Amount` (rows or tokens, a count or a share) parsed, checked, rounded and said one way,
whichever option gave it (a selector's ratio / k, a method's ratio / top / budget_tokens, compare's budget)."""

from __future__ import annotations

import pytest

import instructsift as isf
from instructsift import registry
from instructsift.cli.core import cli_message
from instructsift.data.errors import OptionError, UserError
from instructsift.experiments.arms import Budget
from instructsift.experiments.compare_spec import spec_from
from instructsift.selection.size import Amount, number, one_of, parse_budget, rows, share


def test_parse_reads_a_count_or_a_share():
    assert Amount.parse("450") == Amount(450) and Amount.parse(" 0.05 ").value == 0.05
    assert Amount.parse(200000, "tokens") == Amount(200000, "tokens")
    assert not Amount.parse("450").is_share and Amount.parse("0.05").is_share
    assert parse_budget("4,8") == [4, 8] and parse_budget("0.05, 0.1") == [0.05, 0.1]
    assert parse_budget("300", "budget_tokens", "tokens") == 300
    assert number("12") == 12 and isinstance(number("1.0"), float)
    with pytest.raises(OptionError) as e:
        Amount.parse("five")
    assert str(e.value) == "budget='five' is not a number: a count (450) or a share of the data set (0.05)"
    assert cli_message(e.value).startswith("--budget 'five' is not a number")


@pytest.mark.parametrize(
    ("make", "python", "cli"),
    [
        (
            lambda: Amount(5.0, "rows", "ratio", count="top"),
            "ratio=5 is not a share between 0 and 1 (0.05 for 5%); use top= for a count",
            "--ratio 5 is not a share between 0 and 1 (0.05 for 5%); use --top for a count",
        ),
        (
            lambda: Amount(1.5, "tokens", "budget_tokens"),
            "budget_tokens=1.5 is not a share between 0 and 1 (0.05 for 5%); a count is a whole number: 200000",
            "--budget-tokens 1.5 is not a share between 0 and 1 (0.05 for 5%); a count is a whole number: 200000",
        ),
        (
            lambda: Amount(0.0),
            "budget=0 is not a share between 0 and 1 (0.05 for 5%); a count is a whole number: 450",
            "--budget 0 is not a share between 0 and 1 (0.05 for 5%); a count is a whole number: 450",
        ),
        (
            lambda: Amount(0, "tokens", "budget_tokens"),
            "budget_tokens=0 is too small: a count of tokens is at least 1",
            "--budget-tokens 0 is too small: a count of tokens is at least 1",
        ),  # fmt: skip
        (
            lambda: rows(None, -1),
            "k=-1 is too small: a count of rows is at least 0",
            "--k -1 is too small: a count of rows is at least 0",
        ),  # fmt: skip
        (
            lambda: Amount(True),
            "budget=True is not a count of rows or a share in (0, 1]",
            "--budget True is not a count of rows or a share in (0, 1]",
        ),  # fmt: skip
        (
            lambda: Amount("7", "tokens", "the token budget"),
            "the token budget '7' is not a count of tokens or a share in (0, 1]",
            "the token budget '7' is not a count of tokens or a share in (0, 1]",
        ),  # fmt: skip
        (
            lambda: rows(0.1, 3, count="top"),
            "needs exactly one of ratio= or top=, not both",
            "needs exactly one of --ratio or --top, not both",
        ),  # fmt: skip
        (
            lambda: one_of({"ratio": None, "top": None, "budget_tokens": None}),
            "needs exactly one of ratio= or top= (or budget_tokens=)",
            "needs exactly one of --ratio or --top (or --budget-tokens)",
        ),  # fmt: skip
    ],
)
def test_one_validation_names_the_option_each_way(make, python, cli):
    with pytest.raises(OptionError) as e:
        make()
    assert (str(e.value), cli_message(e.value)) == (python, cli)


def test_resolve_rounds_a_share_by_the_one_rule_for_rows_and_tokens():
    for unit in ("rows", "tokens"):
        assert Amount(0.05, unit).resolve(50) == share(0.05, 50) == 3  # half up, not Python's half to even
        assert Amount(0.25, unit).resolve(3338) == 835  # 834.5: the token fill once rounded it to 834
        assert Amount(0.001, unit).resolve(10) == 1 and Amount(1.0, unit).resolve(7) == 7
        assert Amount(12, unit).resolve(40) == 12
    assert Amount(12).resolve(5, clamp=True) == 5  # a selector keeps what is left
    with pytest.raises(OptionError) as e:
        Amount(30).resolve(24)
    assert str(e.value) == "budget=30 is more than the 24 examples of the data set"
    with pytest.raises(OptionError) as e:
        Amount(10**7, "tokens", "budget_tokens").resolve(1234)
    assert (
        cli_message(e.value)
        == "--budget-tokens 10,000,000 is more than the 1,234 trained answer tokens of the data set"
    )


def test_describe_says_a_count_or_a_share_of_what():
    assert Amount(8).describe() == "8" and Amount(0.1).describe("kept") == "0.1 of kept"
    assert Amount(200000, "tokens").describe() == "200,000 tokens"
    assert Amount(0.05, "tokens").describe() == "0.05 of all tokens"


def test_every_front_end_checks_through_the_one_type():
    """A selector, a method, the token budget and compare refuse a share above 1 with the same words."""
    same = "is not a share between 0 and 1 (0.05 for 5%)"
    for build in (
        lambda: registry.get("select", "top").build({"column": "x", "ratio": 2}),
        lambda: registry.get("select", "kcenter").build({"ratio": 1.5}),
        lambda: registry.get("select", "stratified").build({"by": "c", "ratio": 1.5}),
        lambda: isf.get_method("superfiltering").expand({"ratio": 5}),
        lambda: isf.get_method("cherry").expand({"budget_tokens": 1.5}),
        lambda: registry.get("select", "token_budget").build({"tokens": 1.5}),
        lambda: spec_from({"data": "d.json", "eval": "e.json", "budget": 1.5}),
        lambda: spec_from({"data": "d.json", "eval": "e.json", "budget_tokens": [0.1, 2.0]}),
    ):
        with pytest.raises(UserError, match=r"(?s)" + same.replace("(", r"\(").replace(")", r"\)")):
            build()
    with pytest.raises(UserError) as e:
        spec_from({"data": "d.json", "eval": "e.json"})
    assert str(e.value) == "compare: needs exactly one of budget= or budget_tokens="


def test_every_sized_selector_declares_its_size():
    """A selector with a `ratio` / `k` declares its size as `amount` (one `Amount` of rows, whatever the
    options are called); `token_budget` declares tokens; a filter declares none. `pipeline` reads the
    declaration, not an option name."""
    sized = [e for e in registry.entries("select") if {"ratio", "k"} <= set(e.params.model_fields)]
    assert {e.name for e in sized} >= {"top", "kcenter", "random", "facility_location", "rds", "diverse_top",
                                       "instructmining", "stratified"}  # fmt: skip
    needs = {
        "top": {"column": "x"},
        "diverse_top": {"score": "x"},
        "stratified": {"by": "c"},
        "rds": {"targets": "t.npz"},
    }
    for e in sized:
        assert e.build({**needs.get(e.name, {}), "k": 7}).amount == Amount(7), e.name
        assert e.build({**needs.get(e.name, {}), "ratio": 0.25}).amount == Amount(0.25), e.name
    assert registry.get("select", "token_budget").build({"tokens": 500}).amount == Amount(500, "tokens")
    assert getattr(registry.get("select", "threshold").build({"where": "x > 1"}), "amount", None) is None


def test_compare_resolves_its_budget_as_a_selector_would():
    spec = spec_from({"data": "d.json", "eval": "e.json", "budget": 0.05})
    assert spec.amount() == Amount(0.05) and Budget.of(spec, [1] * 50).rows == 3
    tokens = spec_from({"data": "d.json", "eval": "e.json", "budget_tokens": 0.25})
    b = Budget.of(tokens, [10, 20, 30, 40])
    assert tokens.amount().unit == "tokens" and b.tokens == 25 and b.given == 0.25
