"""Adaptive interval widths for live feeds: a stream's intervals keep their coverage on data unlike the model's. More:
docs/design.md#appstreamsadaptive.
"""

from __future__ import annotations

import math

RATE = 0.03
# Multipliers stay within 1/10 and 10 times the model's width: a series the model's scale cannot see (constant,
# then moving) must not grow them without end, and 10x is far past any shift seen in the shared data.
BOUND = math.log(10.0)


def step(log_multiplier: float, level: float, misses: int, checks: int, rate: float = RATE) -> float:
    """The log multiplier of the level-% interval after one reading that `checks` forecasts predicted and
    `misses` of them did not cover."""
    if not checks:
        return log_multiplier
    moved = log_multiplier + rate * (misses / checks - (1.0 - level / 100.0))
    return min(BOUND, max(-BOUND, moved))
