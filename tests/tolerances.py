"""Tolerances for numbers that two code paths compute from the same float32 model, in one place.

Why a tolerance at all: a batched, padded or packed forward pass and a plain one-sequence-at-a-time pass
(or a saved and reloaded model, or a scorer and a reference written out in a test) take different CPU
kernels: MKL/oneDNN pick other blocking for other shapes, and other instructions on other CPUs (AVX-512 and
AMX on an Intel Xeon, AVX2 on an AMD EPYC), so their float32 sums round differently. Measured: a Gemma 3
270M loss differs by 7.6e-6 nats between the two paths on an Intel Xeon; the tiny test models by less.
`ATEN_CPU_CAPABILITY=default` (scalar kernels) reproduces such differences on any machine.

Why these shapes: the error is relative to the magnitude of what is summed, so each tolerance scales with
the quantity compared (an absolute tolerance on a perplexity of 16 is not the same statement as on one of
1.2; the failure in issue 20 was exactly that):

- a loss (a mean cross-entropy, in nats) is a log: an absolute error there is a relative error of the
  perplexity, so losses get `LOSS_ABS`;
- what is exponentiated or divided (a perplexity, `ifd_ppl = exp(cond - direct)`, `ifd = cond / direct`, a
  probability, a probability mass) gets the relative `REL`; `exp(a - b)` with each loss within `LOSS_ABS`
  moves by at most 2 * LOSS_ABS relatively, which `IFD_PPL_REL` allows;
- an expected score over digits (DEITA's 1..6, a judge's 0..5) moves by at most (top of the scale) x the
  relative error of the probabilities, so it gets `REL * top`, absolute;
- an unbounded model output that can sit near 0 (a ranker's or reward model's score, a hidden-state
  component) gets `REL` with an absolute floor `OUTPUT_ABS`, the size of float32 rounding of order-1 terms;
- a unit vector's components (an embedding) get `UNIT_ABS`, absolute: the scale is fixed at 1.

Each is still ten or more times tighter than any bug would move the number (a token off by one, a wrong
template, a missing start token moves a loss by 1e-2 or more), and ten or more times wider than the
measured kernel noise.
"""

from __future__ import annotations

import pytest

LOSS_ABS = 1e-4  # nats: a mean answer loss, batched vs one at a time (measured <= 1e-5)
REL = 1e-4  # relative: ratios, perplexities, probabilities, masses (measured <= 1e-5)
IFD_PPL_REL = 2 * LOSS_ABS  # exp(cond - direct): two losses' errors, relative
OUTPUT_ABS = 1e-5  # floor for unbounded fp32 model outputs near 0 (scores, logits)
UNIT_ABS = 1e-4  # components of a unit-norm float32 embedding, batched vs alone
# bfloat16 against float32: not kernel noise but bf16's 8-bit mantissa (2**-8 = 0.4% per rounding), summed over
# a sequence; a ratio in bf16 is expected within 5% of fp32 (a ranking check, not a value check).
BF16_REL = 0.05


def loss(value):
    """A loss in nats (log-space): absolute."""
    return pytest.approx(value, abs=LOSS_ABS)


def ratio(value):
    """A ratio, perplexity, probability or mass: relative."""
    return pytest.approx(value, rel=REL)


def expected_score(value, top: float):
    """An expectation over digit scores up to `top`: the digits' probabilities' relative error times `top`."""
    return pytest.approx(value, abs=REL * top)


def output(value):
    """An unbounded fp32 model output (a score, a logit): relative, with a floor near 0."""
    return pytest.approx(value, rel=REL, abs=OUTPUT_ABS)


IFD_KEYS = {
    "loss_cond": loss,
    "loss_direct": loss,
    "ifd": ratio,
    "ifd_ppl": lambda v: pytest.approx(v, rel=IFD_PPL_REL),
}


def ifd_field(key: str, value):
    """The tolerance of one of IFD's columns: losses absolute, their ratio and exp'd difference relative."""
    return IFD_KEYS[key](value)
