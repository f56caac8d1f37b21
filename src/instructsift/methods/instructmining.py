"""InstructMining: rate examples with a linear rule over quality indicators fitted on fine-tuning experiments.

Cao et al., 2023, "Instruction Mining: Instruction Data Selection for Tuning Large Language Models"
(arXiv:2307.06290). Each indicator is a scorer's column (`scoring/indicators.py`, `scoring/reward.py`),
`ppl` is exp(loss_cond) of the IFD scorer, `knn6` the mean distance to the 6 nearest neighbours in
embedding space; the rule (`--rule`: `paper`, or a JSON fitted by `InstructMiningRule`, see
`train/instructmining.py`) predicts each example's log eval loss and the lowest are kept.

The paper's reward model (OpenAssistant's Pythia 1.4B reward model) is any `--reward-model` (hub id or
folder). Offline, `--reward-model standin:PREFERENCE_FILE` scores with an OFFLINE STAND-IN, not the paper's
model: a Bradley-Terry head on all-MiniLM-L6-v2 embeddings that instructsift trains on the preference
pairs in that file (`scoring/reward_standin.py`), under its own column `reward_standin`: a rule that uses
it names `reward_standin`, never `reward`, and the paper's rule refuses it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from ..data.errors import OptionError, Placeholder
from ..registry import OptionalModelRef, method, step
from ..selection.instructmining import is_knn
from .base import LM, Encoder, Size, embed_options, given, lm_options

LENGTHS = ("input_tokens", "output_tokens", "input_chars", "output_chars")
STANDIN = "standin:"
UNIEVAL = ("naturalness", "coherence", "understandability")  # scoring/unieval.py
SCORE_ALL = ("output_tokens", "input_tokens", "mtld", "ppl", "knn6")  # scored without a rule (score-only)
PAPER_REWARD_MODEL = "OpenAssistant/oasst-rm-2.1-pythia-1.4b-epoch-2.5"  # the paper's; it reads the oasst format
EMBED_OPTIONS = ("encoder", "embed_text", "embed_batch_size")


class Params(Size, LM, Encoder):
    rule: OptionalModelRef = Field(None, description="paper (the published LLaMA-2-7B rule) or a fitted rule JSON")
    reward_model: OptionalModelRef = Field(
        None,
        description="a sequence-classification reward model (hub id or folder), or standin:PREFERENCE_FILE "
        "(an offline stand-in, not the paper's model)",
    )
    reward_format: str | None = Field(None, description="pair, oasst or chat [pair]")
    unieval: str | None = Field(
        None,
        description="a UniEval evaluator (MingZhong/unieval-dialog: hub id or folder; not installable offline) for "
        "naturalness, coherence and understandability",
    )

    size_optional: ClassVar[bool] = True  # with a rule and no size: rank every row, drop none


def indicators_for(p: Params) -> list[str]:
    """The indicators the run needs: the rule's, or (scoring alone) every one the options allow."""
    if p.rule is not None:
        from ..selection.instructmining import load_rule

        return list(load_rule(p.rule).indicators_)
    names = list(SCORE_ALL)
    if p.reward_model:
        names.append("reward_standin" if p.reward_model.startswith(STANDIN) else "reward")
    if p.unieval:
        names += UNIEVAL
    return names


@method(
    paper="Cao et al., 2023, Instruction Mining (arXiv:2307.06290)",
    summary="a linear rule over quality indicators (reward, lengths, perplexity, MTLD, KNN-6) predicts "
    "log eval loss; keep the lowest",
    defaults={
        "rule": "paper: log L = 1.0694 - 0.1498 reward + 8.257e-5 output_tokens - 0.9350 knn6 (LLaMA-2-7B; "
        "the paper's indicator models only)",
        "knn6": "mean Euclidean distance to 6 nearest neighbours, L2-normalised all-MiniLM-L6-v2 vectors",
        "ppl": "exp(loss_cond), IFD scorer (alpaca template)",
        "reward_model": "none; standin:FILE = an offline Bradley-Terry head on MiniLM (not the paper's model)",
    },
)
def steps(p: Params) -> list[dict[str, Any]]:
    if p.rule is None and (p.ratio is not None or p.top is not None):
        raise OptionError("selecting needs {rule}: paper, or a rule JSON that `instructsift` fitted", "rule")
    names = indicators_for(p)
    unused(names, p, "the rule's indicators" if p.rule is not None else "the indicators")
    standin = bool(p.reward_model and p.reward_model.startswith(STANDIN))  # refused below, with its own reason
    if p.rule == "paper" and "reward" in names and p.reward_model and not standin and p.reward_format is None:
        if p.reward_model != PAPER_REWARD_MODEL:
            raise OptionError(
                "{rule} with {reward_model}: give {reward_format} (pair, oasst or chat) for this model; the "
                f"paper's {PAPER_REWARD_MODEL} reads the oasst format",
                "reward_format",
                rule="paper",
                reward_model=p.reward_model,
            )
        p = p.model_copy(update={"reward_format": "oasst"})
    out = scoring_steps(names, p)
    derived = [n for n in names if n == "ppl" or is_knn(n)]
    if derived:  # as named columns, in a score-only run too
        out.append(step("select", "indicators", names=derived))
    if p.rule is not None:
        out.append(step("select", "instructmining", rule=p.rule, ratio=p.ratio, k=p.top, of="all"))
    return out


def unused(names: list[str], p: Params, what: str = "the indicators") -> None:
    """Refuse an option that none of the indicators `names` needs (an option not taken is an error, never
    ignored): the reward model and its format, the UniEval evaluator, the encoder options."""
    needs = {
        "reward_model": "reward" in names or "reward_standin" in names,
        "reward_format": "reward" in names,
        "unieval": any(n in UNIEVAL for n in names),
        **{k: any(is_knn(n) for n in names) for k in EMBED_OPTIONS},
    }
    extra = [k for k, needed in needs.items() if not needed and k in p.model_fields_set]
    if extra:
        raise ValueError(
            f"{', '.join(extra)}: not used by {what} ({', '.join(names)}); leave "
            f"{'it' if len(extra) == 1 else 'them'} out"
        )


def scoring_steps(names: list[str], p: Params) -> list[dict[str, Any]]:
    """The scorer steps that make the indicators `names`."""
    out: list[dict[str, Any]] = []
    standin = bool(p.reward_model and p.reward_model.startswith(STANDIN))
    if "reward" in names:
        if not p.reward_model or standin:
            raise OptionError(
                "the rule uses `reward`: give {reward_model} (a sequence-classification reward model, hub id or "
                "folder); the offline stand-in (standin:FILE) serves only a rule fitted on `reward_standin`",
                "reward_model",
            )
        fmt = {"format": p.reward_format} if p.reward_format else {}
        out.append(step("score", "reward", model=p.reward_model, **fmt, **given(p, ("dtype", "device"))))
    if "reward_standin" in names:
        if not standin:
            raise OptionError(
                "the rule uses `reward_standin`: give {reward_model}",
                reward_model=Placeholder("standin:PREFERENCE_FILE"),
            )
        out.append(step("score", "reward_standin", preference=p.reward_model[len(STANDIN) :]))
    asked = [n for n in UNIEVAL if n in names]
    if asked:
        if not p.unieval:
            raise OptionError(
                f"the rule uses {', '.join(asked)}: give {{unieval}} (option `unieval`: a UniEval evaluator such "
                "as MingZhong/unieval-dialog, hub id or folder; it does not install offline)",
                unieval=Placeholder("MODEL"),
            )
        out.append(step("score", "unieval", model=p.unieval, dimensions=asked, **given(p, ("dtype", "device"))))
    if any(n in LENGTHS for n in names):
        out.append(step("score", "lengths", model=p.model, **given(p, ("trust_remote_code",))))
    if "mtld" in names:
        out.append(step("score", "mtld"))
    if "ppl" in names:
        out.append(step("score", "ifd", method="cherry", **lm_options(p)))
    if any(is_knn(n) for n in names):
        out.append(step("score", "embed", **embed_options(p, text="whole")))
    known = {"reward", "reward_standin", "mtld", "ppl", *LENGTHS, *UNIEVAL}
    unknown = [n for n in names if n not in known and not is_knn(n)]
    if unknown:
        raise ValueError(f"no scorer of this method makes the indicators {', '.join(unknown)}")
    return out
