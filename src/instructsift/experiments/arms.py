"""A comparison's arms: each method's pick of the budget (a count of rows or of trained answer tokens) through
its own recipe, and the random picks of the same budget."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..selection.budget import fill_tokens, rows_needed
from ..selection.sample import random_order, random_subset
from .compare_spec import ALL, CompareSpec, data_input, local_path


@dataclass
class Budget:
    """A comparison's budget: `rows` examples each, or `tokens` trained answer tokens each (`each[i]`: row
    i's trained answer tokens, `train.finetune.training_costs`). With tokens, `rows` is the most examples
    any pick can need (the shortest first), which is what a method is asked to rank."""

    each: list[int]
    rows: int
    tokens: int | None = None
    given: int | float | None = None

    @classmethod
    def of(cls, spec: CompareSpec, each: list[int]) -> Budget:
        amount = spec.amount()
        if amount.unit == "rows":
            return cls(each, amount.resolve(len(each)), None, amount.value)
        b = amount.resolve(sum(each))
        return cls(each, rows_needed(each, b), b, amount.value)

    def take(self, order: Sequence[int]) -> tuple[list[int], bool]:
        """A method's pick from its rank order, and whether the order ran out before the budget."""
        if self.tokens is None:
            return list(order[: self.rows]), len(order) < self.rows
        rows = fill_tokens(order, self.each, self.tokens)
        return rows, len(rows) == len(order) and sum(self.each[i] for i in rows) < self.tokens

    def random(self, seed: int) -> list[int]:
        """The random pick of `seed`: the first `rows` examples of `random_order(n, seed)`, or with a token
        budget its rows in that order until they fill it (as `select --method random` ranks them)."""
        if self.tokens is None:
            return random_subset(len(self.each), self.rows, seed)
        return fill_tokens(random_order(len(self.each), seed), self.each, self.tokens)

    def describe(self) -> str:
        n, total = len(self.each), sum(self.each)
        if self.tokens is None:
            return f"{self.rows:,} of {n:,} examples"
        return f"{self.tokens:,} of {total:,} trained answer tokens ({100 * self.tokens / max(total, 1):.1f}%)"

    def as_dict(self) -> dict[str, Any]:
        return {"given": self.given, "examples": None if self.tokens else self.rows, "tokens": self.tokens,
                "of": len(self.each), "of_tokens": sum(self.each)}  # fmt: skip


def arm(name: str) -> tuple[str, str]:
    """An entry of `methods`: (its label, the method). `LABEL=METHOD` is an arm of METHOD named LABEL (e.g.
    `rds-white=rds`, with `options: {rds-white: {whiten: true}}`); a plain name is its own label."""
    from .. import registry

    label, eq, method = name.partition("=")
    label, method = label.strip(), (method if eq else label).strip()
    if eq:
        if not label.replace("-", "_").isidentifier():
            raise UsageError(f"method {name!r}: a label is a plain name like rds-white (letters, digits, - and _)")
        if (
            label in registry.names("method")
            or label in registry.aliases("method")
            or label == "full"
            or label.startswith("random-")
        ):
            raise UsageError(f"method {name!r}: the label {label!r} is a method's or an arm's name: choose another")
    registry.get("method", method)  # an unknown method fails here
    return label, method


def method_options(spec: CompareSpec, method: str, size: int) -> dict[str, Any]:
    """The arm's options: those under `*` that its method takes, its method's, the arm label's (`LABEL=METHOD`),
    the targets (`target`) when the method takes them, and `top` = the budget."""
    from .. import registry

    label, method = arm(method)
    takes = registry.get("method", method).params.model_fields
    name = registry.get("method", method).name
    opts = {k: v for k, v in spec.options.get(ALL, {}).items() if k in takes}
    for key in dict.fromkeys((method, name, label)):
        opts.update(spec.options.get(key, {}))
    sized = [k for k in ("ratio", "top", "budget_tokens", "base", "train_max_length", "train_template") if k in opts]
    if sized:
        raise UsageError(f"method {label!r}: --budget sets the size, not {sized[0]}")
    if spec.target is not None and "target" in takes:
        given = [k for k in ("target", "target_task_field") if k in opts]
        if given:
            raise UsageError(f"method {label!r}: --target gives the targets to every method that takes them, "
                             f"not --set {given[0]}")  # fmt: skip
        opts["target"] = spec.target
        if spec.target_task_field is not None:
            opts["target_task_field"] = spec.target_task_field
    return {**opts, "top": size}


def takes_targets(method: str) -> bool:
    """Whether a method (or `LABEL=METHOD` arm) selects for `--target` examples."""
    from .. import registry

    return "target" in registry.get("method", arm(method)[1]).params.model_fields


@dataclass
class Selected:
    method: str
    positions: list[int]  # the rows the method kept, in its rank order
    seconds: float
    steps: list[dict[str, Any]] = field(default_factory=list)
    run: Any = field(default=None, repr=False)  # the pipeline's result (its score table), for the report
    picked: list[int] = field(default_factory=list)  # the budget's pick of `positions`, in row order


def select_with(spec: CompareSpec, base_dir: Path, method: str, size: int, dataset: Any, *, progress: bool,
                log: Callable[[str], None]) -> Selected:  # fmt: skip
    """Run `method`'s recipe on the data for `size` examples; the kept positions."""
    from ..pipeline import run
    from ..recipe import from_method

    label, name = arm(method)
    recipe = from_method(
        name,
        method_options(spec, method, size),
        input=str(data_input(base_dir, spec.data)),
        split=spec.split,
        subset=spec.subset,
        revision=spec.revision,
        format=spec.format,
        on_error=spec.on_error,
        cache_dir=str(local_path(base_dir, spec.cache_dir)) if spec.cache_dir else None,
        base=base_dir,
    )
    t0 = time.monotonic()
    result = run(recipe, progress=progress, log=lambda m: log(f"{label}: {m}"))
    picked = result.picked
    if [ex.content_hash for ex in picked.dataset.examples] != [ex.content_hash for ex in dataset.examples]:
        raise AssertionError(f"{label}: the pipeline read another data set than the comparison")
    steps = [s.as_dict() for s in recipe.steps]
    return Selected(label, picked.selection.ranked(), time.monotonic() - t0, steps, run=result)


def warn_target_overlap(path: Path | str, spec: CompareSpec, sets: Sequence[Any], log: Callable[[str], None]) -> None:
    """A warning for each held-out set that shares instructions with the targets: selecting for its own
    questions is not a held-out test. The target file is read as the `targets` step reads it."""
    from ..data.targets import read_targets

    targets = read_targets(path, task_field=spec.target_task_field)
    asked = {_instruction(ex) for ex in targets.examples}
    for held in sets:
        shared = sum(1 for ex in held.examples if _instruction(ex) in asked)
        if shared:
            log(f"warning: {shared} instructions of {held.path} are also targets ({path}): the targets should be "
                "examples of the tasks, not the held-out questions")  # fmt: skip


def _instruction(example: Any) -> tuple[str, ...]:
    """The user turns of an example (what a target without answers holds)."""
    return tuple(m.text.strip() for m in example.messages if m.role == "user")
