"""Adaptive interval widths for live feeds: a stream's intervals keep their coverage on data unlike the model's.

A model's conformal table holds on data like its calibration split; on another sensor or market the intervals
can be too narrow (a model of VIX, mean-reverting, on exchange rates, which wander) or too wide. A stream sees
the actual values arrive, so it can correct itself: one multiplier per interval level, tracked online on the
log scale,

    log m <- log m + RATE * (share of this reading's checks it missed - (1 - level)),

the "P" step of conformal PID control (Angelopoulos, Candès, Tibshirani 2023), the quantile-tracking form of
adaptive conformal inference (Gibbs, Candès 2021): each miss widens, each hit narrows, and in the long run the
share of misses goes to 1 - level whatever the data, as long as the widths can reach far enough (BOUND).

A reading is checked against every forecast of the current model version that predicted it (one per step of
the horizon), at the multiplier of the moment, so appending k readings at once moves the multipliers exactly as
k appends of one. RATE was chosen on the validation splits of committed models replaying VIX, ETTh1, ETTm1 and
the exchange rates (`python -m bench.accuracy` prints the sweep, docs/benchmarks/accuracy.md); the anomaly flags
keep the model's own widths (app.streams.feeds), so a drifting sensor is not learned away.
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
