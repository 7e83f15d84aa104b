"""Is a trained checkpoint's dev gain over the encoder a phase started from more than noise?

Both are scored on the same dev texts, so the test is paired: `paired_z` is the mean per-text
gain divided by its standard error. For 0/1 correctness (dev accuracy) it is McNemar's test in
its normal form, (c - b) / sqrt(b + c) with b texts lost and c gained, up to a factor
sqrt((n - 1) / (n - (c - b)^2 / (b + c))) that is close to 1. One-sided 5% is z >= 1.645.

Why phases need it: on 1,000 dev texts the standard error of an accuracy near 40% is about 1.5
points, and phase 1 was selected on dev gains of 0.6-1.7 points that became test losses of
1-2 points against the encoder it started from (benchmarks/RESULTS.md, "Phase 1's record").
"""

import math
from typing import Sequence

import numpy


def paired_z(before: Sequence[float], after: Sequence[float]) -> float:
    """Mean of `after - before` over its standard error (0 when nothing changed; +-inf when
    every text changed by the same amount)."""
    b = numpy.asarray(before, dtype=numpy.float64).ravel()
    a = numpy.asarray(after, dtype=numpy.float64).ravel()
    if len(a) != len(b):
        raise ValueError(f"paired_z: {len(b)} scores before, {len(a)} after")
    if len(a) < 2:
        return 0.0
    diff = a - b
    mean = float(diff.mean())
    if mean == 0.0:
        return 0.0
    sd = float(diff.std(ddof=1))
    if sd == 0.0:
        return math.copysign(math.inf, mean)
    return mean / (sd / math.sqrt(len(diff)))
