"""Forecasts from past origins of a history the client sent: cross-validation (rolling-origin windows scored against
what happened) and anomaly scoring (each point against the interval of the forecast made before it). More:
docs/design.md#appbacktest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.errors import InvalidInput, shown
from app.forecast_jobs import SeriesInput, Windows
from contract.words import count


@dataclass(frozen=True)
class Scores:
    """Accuracy of forecasts against actuals: mean absolute error, MASE and interval coverage."""

    mae: float
    mase: float | None  # None where the history's seasonal-naive error is 0 (a constant history)
    coverage: dict[float, float]  # level -> share of actuals inside the interval


def rolling_cutoffs(
    series: SeriesInput, n: int, horizon: int, n_windows: int, step: int, min_window: int
) -> np.ndarray:
    """Origins of `n_windows` forecasts of `horizon` steps, `step` apart, the last one ending at the last value."""
    need = min_window + horizon + (n_windows - 1) * step
    if n < need:
        raise InvalidInput(
            f"series {shown(series.id)} has {count(n, 'value')}: {count(n_windows, 'window')} of "
            f"{count(horizon, 'step')}, {step} apart, need "
            f"{need} ({min_window} before the first forecast); send a longer history or ask for fewer windows"
        )
    last = n - horizon
    return np.arange(last - (n_windows - 1) * step, last + 1, step, dtype=np.int64)


def history_cutoffs(n: int, horizon: int, min_window: int) -> np.ndarray:
    """Origins of in-sample forecasts over as much of the history as possible, `horizon` apart, the last one
    ending at the last value (TimeGPT's add_history)."""
    return np.arange(n - horizon, min_window - 1, -horizon, dtype=np.int64)[::-1].copy()


def detection_cutoffs(series: SeriesInput, n: int, detect: int | None, step: int, min_window: int) -> np.ndarray:
    """Origins that forecast each of the last `detect` values (all that have a full window before them when
    None) from `step` values before it at most: every `step` values, from the first value scored."""
    available = n - min_window
    if detect is None and available < 1:
        raise InvalidInput(
            f"series {shown(series.id)} has {count(n, 'value')}; a value is scored against the forecast from the "
            f"{min_window} values before it: send at least {min_window + 1} values"
        )
    if detect is None:
        detect = available
    if available < 1 or detect > available:
        raise InvalidInput(
            f"series {shown(series.id)} has {count(n, 'value')}; scoring the last {detect} needs "
            f"{count(min_window, 'value')} "
            f"before the first one: send at least {min_window + max(detect, 1)} values or score fewer"
        )
    return np.arange(n - detect, n, step, dtype=np.int64)


def actuals(values: np.ndarray, cutoffs: np.ndarray, horizon: int) -> np.ndarray:
    """(W, horizon) the values that followed each cutoff (NaN past the end of the series)."""
    positions = np.asarray(cutoffs, dtype=np.int64)[:, None] + np.arange(horizon)[None, :]
    inside = positions < len(values)
    out = np.full(positions.shape, np.nan)
    out[inside] = values[positions[inside]]
    return out


def mase_scale(history: np.ndarray, season: int) -> float:
    """Mean absolute error of the seasonal naive forecast in the history (naive when it is too short)."""
    m = season if len(history) > season else 1
    if len(history) <= m:
        return float("nan")
    return float(np.mean(np.abs(history[m:] - history[:-m])))


def mase_scales(values: np.ndarray, cutoffs: np.ndarray, season: int) -> np.ndarray:
    """mase_scale(values[:c], season) for every cutoff c, from running sums: O(n + W), not O(n W)."""
    cutoffs = np.asarray(cutoffs, dtype=np.int64)
    out = np.full(len(cutoffs), np.nan)

    def running(m: int) -> np.ndarray:  # sums of |x[t] - x[t - m]| for t < m + k, k = 0..n-m
        return np.concatenate([[0.0], np.cumsum(np.abs(values[m:] - values[:-m]))]) if len(values) > m else np.zeros(1)

    seasonal, naive = running(season), running(1)
    uses_season = cutoffs > season
    for sums, m, rows in ((seasonal, season, uses_season), (naive, 1, ~uses_season)):
        c = cutoffs[rows]
        ok = c > m
        pairs = c[ok] - m
        scaled = np.full(len(c), np.nan)
        scaled[ok] = sums[np.minimum(pairs, len(sums) - 1)] / pairs
        out[rows] = scaled
    return out


def window_scores(
    actual: np.ndarray, mean: np.ndarray, intervals: dict[float, tuple[np.ndarray, np.ndarray]], scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[float, np.ndarray]]:
    """Per window (rows): MAE, MASE (NaN where the scale is 0 or unknown) and coverage per level."""
    known = ~np.isnan(actual)
    counts = known.sum(axis=1)
    errors = np.where(known, np.abs(actual - mean), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = errors.sum(axis=1) / counts
        mase = np.where(scale > 0, mae / scale, np.nan)
        coverage = {
            level: (((actual >= lo) & (actual <= hi)) & known).sum(axis=1) / counts
            for level, (lo, hi) in intervals.items()
        }
    return mae, mase, coverage


def score(
    actual: np.ndarray,
    mean: np.ndarray,
    intervals: dict[float, tuple[np.ndarray, np.ndarray]],
    scale: np.ndarray,
) -> Scores:
    """Scores over the points of `actual` (W, H) (NaN points are left out); `scale`: MASE's per window. MASE is
    the mean of the windows' MASE, None unless every window has one."""
    known = ~np.isnan(actual)
    mae = float(np.abs(actual - mean)[known].mean())
    _, per_window, _ = window_scores(actual, mean, {}, scale)
    whole = len(per_window) and known.any(axis=1).all() and np.isfinite(per_window).all()
    mase = float(per_window.mean()) if whole else None
    coverage = {level: float(((actual >= lo) & (actual <= hi))[known].mean()) for level, (lo, hi) in intervals.items()}
    return Scores(mae, mase, coverage)


@dataclass(frozen=True)
class PointScores:
    """Each scored value of one series against the forecast made before it (the latest origin not after it)."""

    index: np.ndarray  # (P,) positions of the scored values in the series
    actual: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    score: np.ndarray  # (actual - mean) / the interval's half-width: beyond +-1 is outside the interval
    anomaly: np.ndarray  # bool: outside the interval


def score_points(values: np.ndarray, windows: Windows, series: int, level: float) -> PointScores:
    """Scores of the values from series `series`' first cutoff to its end (cutoffs ascending, each window's
    horizon at least the distance to the next cutoff, as `detection_cutoffs` makes them)."""
    rows = np.flatnonzero(windows.series == series)
    if not len(rows):
        empty = np.zeros(0)
        return PointScores(np.zeros(0, np.int64), empty, empty, empty, empty, empty, empty > 0)
    cutoffs = windows.cutoffs[rows]
    t = np.arange(int(cutoffs[0]), len(values))
    k = np.searchsorted(cutoffs, t, side="right") - 1  # the latest origin at or before each value
    step = t - cutoffs[k]
    lo_all, hi_all = windows.result.intervals[level]
    mean = windows.result.mean[rows[k], step]
    lo, hi = lo_all[rows[k], step], hi_all[rows[k], step]
    actual = np.asarray(values, dtype=np.float64)[t]
    # A zero-width interval (a constant window) still scores: any departure is far outside it.
    half = np.maximum(hi - mean, 1e-12 * np.maximum(1.0, np.abs(mean)))
    score = (actual - mean) / half
    return PointScores(t, actual, mean, lo, hi, score, (actual < lo) | (actual > hi))
