"""Split-conformal prediction intervals, per horizon step, scaled by each window's scale."""

from __future__ import annotations

import math

import numpy as np

from contract import intervals
from contract.card import Conformal

# Levels stored in the artifact; the server interpolates between them.
LEVEL_GRID = [round(0.01 * i, 2) for i in range(1, 100)] + [0.995]


def calibrate(actuals: np.ndarray, forecasts: np.ndarray, scales: np.ndarray, inputs: np.ndarray) -> Conformal:
    """Quantiles of |y - f| / unit per step (inputs (N, H), (N, H), (N,), and the windows (N, T)), with the
    (n+1) correction; the unit is the graph's scale floored at a ratio of the window's spread learned here
    (contract.intervals)."""
    spreads = intervals.spread(inputs)
    floor = intervals.learn_floor(actuals - forecasts, spreads)
    scores = np.abs(actuals - forecasts) / intervals.unit(scales, spreads, floor)[:, None]  # (N, H)
    scores.sort(axis=0)
    n = scores.shape[0]
    rows = []
    for level in LEVEL_GRID:
        rank = min(math.ceil((n + 1) * level), n)  # 1-based rank of the finite-sample quantile
        rows.append([float(v) for v in scores[rank - 1]])
    return Conformal(levels=LEVEL_GRID, quantiles=rows, calibration_windows=n, scale_floor=floor)


def interval(
    forecasts: np.ndarray, scales: np.ndarray, inputs: np.ndarray, conformal: Conformal, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds (N, H) at coverage `level` in (0, 1), for windows `inputs` (N, T)."""
    unit = intervals.unit(scales, intervals.spread(inputs), conformal.scale_floor)
    width = np.asarray(conformal.half_width_factors(level))[None, :] * unit[:, None]
    return forecasts - width, forecasts + width


def coverage(actuals: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    return float(np.mean((actuals >= lower) & (actuals <= upper)))
