"""The unit of a forecast's conformal widths, computed alike by training (calibration) and serving. More:
docs/design.md#contractintervals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The floor is the ratio |error| / spread that this share of the calibration windows stay under.
FLOOR_QUANTILE = 0.05


def spread(windows: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """(N,) mean |y - mean(y)| of each window (the values the model read; windows may differ in length)."""
    if not isinstance(windows, np.ndarray) and len(windows) == 1:
        windows = np.asarray(windows[0])[None]  # one window: a view, not a stacked copy
    elif not isinstance(windows, np.ndarray) and len(windows) > 1 and len({len(w) for w in windows}) == 1:
        windows = np.stack(windows)  # one length (the usual batch): one vectorised pass
    if isinstance(windows, np.ndarray) and windows.ndim == 2:
        x = windows.astype(np.float64, copy=False)
        out: np.ndarray = np.abs(x - x.mean(axis=1, keepdims=True)).mean(axis=1)
        return out
    return np.asarray([float(np.abs(w - w.mean()).mean()) for w in (np.asarray(w, np.float64) for w in windows)])


def unit(scales: np.ndarray, spreads: np.ndarray, scale_floor: float) -> np.ndarray:
    """(N,) the interval unit: the graph's scale, at least `scale_floor` x the window's spread."""
    if not scale_floor:
        return np.asarray(scales, dtype=np.float64)
    return np.maximum(np.asarray(scales, dtype=np.float64), scale_floor * spreads)


def learn_floor(errors: np.ndarray, spreads: np.ndarray) -> float:
    """From the calibration residuals: the ratio of a window's mean |error| to its spread that FLOOR_QUANTILE of
    the calibration windows stay under (0 without any that moves). A window whose own volatility says less than
    that is given that much: what the model's errors were on windows of its spread."""
    moving = spreads > 0
    if not moving.any():
        return 0.0
    return float(np.quantile(np.abs(errors[moving]).mean(axis=1) / spreads[moving], FLOOR_QUANTILE))
