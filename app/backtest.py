"""Forecasts from past origins of a history the client sent: cross-validation (rolling-origin windows scored
against what happened) and anomaly scoring (each point against the interval of the forecast made before it).

Both cut each series into windows, one per forecast origin ("cutoff": the number of values known when the
forecast was made), and send all the windows of a request as ONE `ForecastJob` to the model's service. So
they pass the same checks, memory admission, batching and metrics as /forecast, and onnxruntime runs them
in batches, never one call per window. Window ids are `<series id>@<cutoff>`: a refusal names the window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from app.errors import InvalidInput, PayloadTooLarge
from app.jobs import ForecastJob, ForecastResult, SeriesInput
from app.timeaxis import value_index

if TYPE_CHECKING:  # the service calls this module (calibration on history): its type only, no import cycle
    from app.service import ModelService


@dataclass(frozen=True)
class Windows:
    """The windows of a request: which series each came from, where it starts, and the service's answer."""

    series: np.ndarray  # (W,) index of the request's series
    cutoffs: np.ndarray  # (W,) values known at the origin; the forecast's first step is value `cutoff`
    result: ForecastResult  # mean and intervals (W, horizon)
    indexes: list[pd.DatetimeIndex | None]  # per series: its values' timestamps, when it came with time


@dataclass(frozen=True)
class Scores:
    """Accuracy of forecasts against actuals: mean absolute error, MASE and interval coverage."""

    mae: float
    mase: float | None  # None where the history's seasonal-naive error is 0 (a constant history)
    coverage: dict[float, float]  # level -> share of actuals inside the interval


async def run_windows(
    service: ModelService,
    series: Sequence[SeriesInput],
    cutoffs: Sequence[Sequence[int]],
    horizon: int,
    levels: Sequence[float],
) -> Windows:
    """Forecasts of `horizon` steps from each cutoff of each series, in one job."""
    total = sum(len(c) for c in cutoffs)
    limit = service.limits.max_series_per_request
    if total > limit:
        raise PayloadTooLarge(
            f"{total} forecast windows in one request; the limit is {limit} (GATECAST_MAX_SERIES_PER_REQUEST): "
            "ask for fewer windows or points, or split the series across requests"
        )
    card = service.card
    timed, future_names = bool(card.covariates.calendar), card.covariates.future
    inputs: list[SeriesInput] = []
    indexes = []
    for s, origins in zip(series, cutoffs, strict=True):
        index = value_index(s.id, len(s.values), card.freq, s.timestamps, s.start, s.freq)
        indexes.append(index)
        inputs.extend(_as_of(s, int(c), index, card.horizon, timed, future_names) for c in origins)
    result = await service.forecast(ForecastJob(inputs, horizon, levels))
    owner = np.repeat(np.arange(len(series)), [len(c) for c in cutoffs])
    flat = np.asarray([c for origins in cutoffs for c in origins], dtype=np.int64)
    return Windows(owner, flat, result, indexes)


def _as_of(
    s: SeriesInput,
    cutoff: int,
    index: pd.DatetimeIndex | None,
    ahead: int,
    timed: bool,
    future_names: Sequence[str],
) -> SeriesInput:
    """The series as it was known at `cutoff`: values and covariates up to it, the model's future covariates
    for its `ahead` steps from the series' own later values (and the future values sent after them), and time
    only when the model reads calendar features (the answer's timestamps come from `index`, once). Anything
    the model does not read is passed on as sent, for the service to refuse by name."""
    values = np.asarray(s.values)[:cutoff]
    observed = dict(s.covariates or {})
    sent_ahead = dict(s.future_covariates or {})
    covariates = {name: np.asarray(column)[:cutoff] for name, column in observed.items()}
    future = {name: column for name, column in sent_ahead.items() if name not in future_names}
    for name in future_names:
        if name in observed:
            known = np.concatenate([np.asarray(observed[name]), np.asarray(sent_ahead.get(name, ()))])
            future[name] = _ahead(s.id, name, known, cutoff, ahead)
    start = freq = None
    if timed and index is not None:
        start, freq = index[0].to_pydatetime(), index.freqstr
    return SeriesInput(f"{s.id}@{cutoff}", values, None, start, freq, covariates or None, future or None)


def _ahead(series_id: str, name: str, known: np.ndarray, cutoff: int, ahead: int) -> np.ndarray:
    if cutoff + ahead > len(known):
        raise InvalidInput(
            f"series {series_id!r}: the forecast from value {cutoff} reads future covariate {name!r} for {ahead} "
            f"steps, past the {len(known)} values sent: send its future_covariates for the steps after the last "
            "value, or ask for fewer windows"
        )
    return known[cutoff : cutoff + ahead]


def rolling_cutoffs(series: SeriesInput, n: int, horizon: int, n_windows: int, step: int, min_window: int) -> list[int]:
    """Origins of `n_windows` forecasts of `horizon` steps, `step` apart, the last one ending at the last value."""
    cutoffs = [n - horizon - (n_windows - 1 - k) * step for k in range(n_windows)]
    if cutoffs[0] < min_window:
        need = min_window + horizon + (n_windows - 1) * step
        raise InvalidInput(
            f"series {series.id!r} has {n} values: {n_windows} windows of {horizon} steps, {step} apart, need "
            f"{need} ({min_window} before the first forecast); send a longer history or ask for fewer windows"
        )
    return cutoffs


def detection_cutoffs(series: SeriesInput, n: int, detect: int | None, step: int, min_window: int) -> list[int]:
    """Origins that forecast each of the last `detect` values (all that have a full window before them when
    None) from `step` values before it at most: every `step` values, from the first value scored."""
    available = n - min_window
    if detect is None and available < 1:
        raise InvalidInput(
            f"series {series.id!r} has {n} values; a value is scored against the forecast from the {min_window} "
            f"values before it: send at least {min_window + 1} values"
        )
    if detect is None:
        detect = available
    if available < 1 or detect > available:
        raise InvalidInput(
            f"series {series.id!r} has {n} values; scoring the last {detect} needs {min_window} values before "
            f"the first one: send at least {min_window + max(detect, 1)} values or score fewer"
        )
    return list(range(n - detect, n, step))


def actuals(values: np.ndarray, cutoffs: np.ndarray, horizon: int) -> np.ndarray:
    """(W, horizon) the values that followed each cutoff (NaN past the end of the series)."""
    out = np.full((len(cutoffs), horizon), np.nan)
    for w, c in enumerate(cutoffs):
        part = values[c : c + horizon]
        out[w, : len(part)] = part
    return out


def mase_scale(history: np.ndarray, season: int) -> float:
    """Mean absolute error of the seasonal naive forecast in the history (naive when it is too short)."""
    m = season if len(history) > season else 1
    if len(history) <= m:
        return math.nan
    return float(np.mean(np.abs(history[m:] - history[:-m])))


def score(
    actual: np.ndarray,
    mean: np.ndarray,
    intervals: dict[float, tuple[np.ndarray, np.ndarray]],
    scale: np.ndarray,
) -> Scores:
    """Scores over the points of `actual` (any shape; NaN points are left out); `scale`: MASE's per window."""
    known = ~np.isnan(actual)
    errors = np.abs(actual - mean)
    mae = float(errors[known].mean())
    per_window = np.asarray(
        [errors[w][known[w]].mean() / scale[w] for w in range(len(scale)) if scale[w] > 0 and known[w].any()]
    )
    mase = float(per_window.mean()) if len(per_window) and len(per_window) == len(scale) else None
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
