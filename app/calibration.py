"""Intervals calibrated on the series' own history (`"calibration": "history"`), for series unlike the model's. More:
docs/design.md#appcalibration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from app.errors import InvalidInput, PayloadTooLarge, shown
from app.forecast_jobs import Calibration

READINGS = 1024  # the last values scored: more cost model runs and say less about the present
HORIZONS = 6  # ... or this many horizons' worth, when longer (readings)


def readings(horizon: int) -> int:
    """How many of the last values sent are scored: READINGS, or HORIZONS horizons when that is longer. Far
    steps miss in slow episodes, of which READINGS values hold few when the horizon is long: with 1024 values
    the 95% intervals of ETTm1's long-horizon models fell short on its validation split, with about six
    horizons they held (`python -m bench.choices`, docs/benchmarks/choices.md)."""
    return max(READINGS, HORIZONS * horizon)


def cutoffs(n: int, min_window: int, horizon: int) -> np.ndarray:
    """Origins of the forecasts scored in a history of n values: each one with a window before it and at least
    one value after it, among the last readings(horizon) values."""
    return np.arange(max(min_window, n - readings(horizon)), n, dtype=np.int64)


def checks_for(values: int, horizon: int) -> int:
    """(forecast, value) pairs scored when `values` values follow the first origin: value j (from 1) is
    predicted by the min(j, horizon) forecasts made before it."""
    full = max(0, values - horizon)
    part = min(values, horizon)
    return part * (part + 1) // 2 + full * horizon


def needed_checks(level: float) -> int:
    """The fewest ratios whose level-% conformal quantile is finite: ceil((n + 1) level / 100) <= n."""
    return math.ceil(level / (100.0 - level) - 1e-9)


def origins(
    ids: Sequence[str],
    lengths: Sequence[int],
    min_window: int,
    horizon: int,
    levels: Sequence[float],
    *,
    required: bool,
    max_windows: int,
) -> list[np.ndarray] | None:
    """The past origins each series is calibrated on, from counts alone (nothing is built before the job's cost
    is admitted); None when nothing is calibrated.

    `required` ("history"): a history too short, or too many past forecasts for one request, is refused by name.
    Otherwise ("auto", the TimeGPT route's default): nothing without levels; a series whose history is too short
    keeps the model's widths (factor 1 on 0 checks); and a request scores at most as many past forecasts as it
    may run (GATECAST_MAX_WINDOWS_PER_REQUEST), fewer values per series when many series come."""
    if not levels:
        if not required:
            return None
        raise InvalidInput(
            'calibration "history" rescales intervals: ask for `level` (e.g. [80, 95]) or `quantiles` as well'
        )
    need, scored = needed_checks(max(levels)), readings(horizon)
    if required and checks_for(scored, horizon) < need:
        raise InvalidInput(
            f"the {max(levels):g}% interval cannot be calibrated on a history: it needs {need} scored forecast "
            f"steps and the last {scored} values of a series give at most {checks_for(scored, horizon)} at "
            f'horizon {horizon}; ask for a lower level, or use calibration "model"'
        )
    room = max(0, max_windows - len(ids))  # the forecasts themselves are windows too
    budget = scored if required else min(scored, room // len(ids))
    chosen = []
    for series_id, n in zip(ids, lengths, strict=True):
        cut = cutoffs(n, min_window, horizon)
        cut = cut[max(0, len(cut) - budget) :]
        got = checks_for(len(cut), horizon)
        if got < need and required:
            more = next(r for r in range(1, scored + 1) if checks_for(r, horizon) >= need) - len(cut)
            raise InvalidInput(
                f"series {shown(series_id)}: calibrating the {max(levels):g}% interval on its history needs {need} "
                f"scored forecast steps and its {n} values give {got} (the first {min_window} are the first "
                f'window): send at least {more} more values, or use calibration "model"'
            )
        chosen.append(cut if got >= need else cut[:0])
    total = sum(len(c) for c in chosen) + len(ids)
    if total > max_windows:  # only when required: "auto" kept within the limit above
        raise PayloadTooLarge(
            f'calibration "history" forecasts from {total - len(ids)} past origins here (up to {scored} per '
            f"series), and the forecasts themselves: {total} windows; the limit is {max_windows} forecast windows "
            "a request (GATECAST_MAX_WINDOWS_PER_REQUEST): send fewer series a request, or shorter histories"
        )
    return chosen


def factors(
    values: Sequence[np.ndarray],
    cutoffs_of: Sequence[np.ndarray],
    mean: Sequence[np.ndarray],
    half: Sequence[dict[float, np.ndarray]],
    levels: Sequence[float],
) -> Calibration:
    """Per series b: the level-% conformal quantile of |actual - forecast| / half-width over its past forecasts
    (`mean[b]` (R, H) from `cutoffs_of[b]`, `half[b][level]` (R, H)), at rank ceil((n + 1) level)."""
    b_count = len(values)
    checks = np.zeros(b_count, dtype=np.int64)
    widening = {level: np.ones(b_count) for level in levels}
    for b in range(b_count):
        cut = cutoffs_of[b]
        if not len(cut):
            continue
        horizon = mean[b].shape[1]
        positions = cut[:, None] + np.arange(horizon)[None, :]
        known = positions < len(values[b])
        actual = values[b][np.minimum(positions, len(values[b]) - 1)]
        error = np.abs(actual - mean[b])[known]
        checks[b] = error.size
        for level in levels:
            # A zero width (a constant window) still counts: any miss is then a very large ratio.
            width = np.maximum(half[b][level], 1e-12 * np.maximum(1.0, np.abs(mean[b])))
            ratios = error / width[known]
            rank = min(ratios.size, math.ceil((ratios.size + 1) * level / 100.0 - 1e-9))  # 1-based
            widening[level][b] = float(np.partition(ratios, rank - 1)[rank - 1])
    return Calibration(checks, widening)
