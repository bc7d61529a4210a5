"""Quantile levels: what a model with a quantile head declares, and how the server answers between them. More:
docs/design.md#contractquantiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# 80%, 90% and 95% intervals straight from the head's levels, and the deciles GIFT-Eval scores.
DEFAULT_LEVELS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975)


class QuantileLevelError(ValueError):
    """A probability lies outside the levels a model declares; the message names it and the range."""


def check_levels(levels: Sequence[float]) -> None:
    """Raise ValueError unless `levels` are ascending probabilities in (0, 1) that include the median."""
    if not levels or list(levels) != sorted(set(levels)) or not all(0 < q < 1 for q in levels):
        raise ValueError(f"quantile levels {list(levels)} must be distinct ascending probabilities in (0, 1)")
    if 0.5 not in levels:
        raise ValueError(f"quantile levels {list(levels)} must include 0.5 (the forecast is the median)")


def interval_bounds(level: float) -> tuple[float, float]:
    """The probabilities of a central interval at `level` percent: 80 -> (0.1, 0.9)."""
    half = level / 200.0
    return round(0.5 - half, 12), round(0.5 + half, 12)


def covers(levels: Sequence[float], q: float) -> bool:
    return levels[0] - 1e-9 <= q <= levels[-1] + 1e-9


def at(levels: Sequence[float], quantiles: np.ndarray, q: float) -> np.ndarray:
    """The quantile q from the head's output (..., Q): a declared level as it is, linear between two around it.

    Raises QuantileLevelError when q lies outside the declared levels."""
    if not covers(levels, q):
        raise QuantileLevelError(
            f"quantile {q} lies outside the levels this model forecasts ({levels[0]} to {levels[-1]}); "
            f"ask for probabilities in that range"
        )
    q = min(max(q, levels[0]), levels[-1])
    hi = int(np.searchsorted(np.asarray(levels), q - 1e-12))
    if abs(levels[hi] - q) < 1e-9:
        return np.asarray(quantiles[..., hi])
    lo = hi - 1
    t = (q - levels[lo]) / (levels[hi] - levels[lo])
    return np.asarray(quantiles[..., lo] + t * (quantiles[..., hi] - quantiles[..., lo]))
