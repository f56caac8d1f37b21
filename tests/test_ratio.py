"""What a ratio means: one rounding rule for every ratio a user gives, and what each method's ratio is a
share of (said by `methods` and by the summary line)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from instructsift.compare import budget_size
from instructsift.selection import Selection
from instructsift.selection.top import Top, count_for, share


def test_one_rounding_rule_for_every_ratio():
    """`select --ratio 0.05` over 50 rows kept 3 (floor(r n + 0.5)) while `compare --budget 0.05` picked 2
    (Python's round, half to even): both are `share` now, half up."""
    assert share(0.05, 50) == 3 and share(0.25, 10) == 3 and share(0.001, 10) == 1 and share(0.5, 0) == 0
    for n in (1, 2, 3, 10, 50, 99, 291, 400):
        for ratio in (0.001, 0.01, 0.05, 0.1, 0.25, 0.3, 0.5, 0.75, 1.0):
            want = share(ratio, n)
            assert budget_size(ratio, n) == count_for(ratio, None, n) == want, (ratio, n)
            sel = Selection.all(n)
            Top("x", ratio=ratio).apply(pa.table({"x": np.arange(n, dtype=float)}), sel)
            assert len(sel.kept) == want, (ratio, n)
    assert budget_size(0.05, 50) == 3  # was 2
