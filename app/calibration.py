"""Intervals calibrated on the series' own history (`"calibration": "history"`), for series unlike the model's.

A model's conformal table holds on data like its validation split. On another market or sensor its intervals
can be far too narrow (a model of VIX, which mean-reverts, on exchange rates, which wander) or too wide. A
stream corrects them online as readings arrive (app.adaptive); one request can correct them from the history it
sends. The service forecasts from every origin among the last readings(horizon) values, as it was known then
(the window before the origin, through app.backtest), and measures each miss against the model's half-width at
that step and level. The level-% quantile of those ratios is the factor that makes the model's widths cover that
share of the history's values; the answer's intervals are the model's widths times that factor.

It is split conformal prediction with the series' own past as the calibration set, at the finite-sample rank
ceil((n + 1) level) of the n ratios. It assumes the next values miss as the scored ones did. The choice of
pooled factors over the last READINGS values, against per-step factors and recency weights, was made on the
committed models' unseen data; the longer history for long horizons on ETTm1's validation split
(docs/benchmarks/choices.md; docs/benchmarks/accuracy.md states the coverage reached on test splits).

`"calibration": "auto"` (the default of the TimeGPT route, whose own intervals are conformal on the history the
client sends) calibrates what it can and never refuses for it: series with too little history keep the model's
widths, and the answer's `checks` say which.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from app import backtest
from app.errors import InvalidInput, PayloadTooLarge
from app.jobs import Calibration, SeriesInput

if TYPE_CHECKING:  # the service calls this module with itself
    from app.service import ModelService

READINGS = 1024  # the last values scored: more cost model runs and say less about the present
HORIZONS = 6  # ... or this many horizons' worth, when longer (readings)


def readings(horizon: int) -> int:
    """How many of the last values sent are scored: READINGS, or HORIZONS horizons when that is longer. Far
    steps miss in slow episodes, of which READINGS values hold few when the horizon is long: with 1024 values
    the 95% intervals of ETTm1's long-horizon models fell short on its validation split, with about six
    horizons they held (`python -m bench.choices`, docs/benchmarks/choices.md)."""
    return max(READINGS, HORIZONS * horizon)


def cutoffs(n: int, min_window: int, horizon: int) -> list[int]:
    """Origins of the forecasts scored in a history of n values: each one with a window before it and at least
    one value after it, among the last readings(horizon) values."""
    return list(range(max(min_window, n - readings(horizon)), n))


def checks_for(values: int, horizon: int) -> int:
    """(forecast, value) pairs scored when `values` values follow the first origin: value j (from 1) is
    predicted by the min(j, horizon) forecasts made before it."""
    return sum(min(j, horizon) for j in range(1, values + 1))


def needed_checks(level: float) -> int:
    """The fewest ratios whose level-% conformal quantile is finite: ceil((n + 1) level / 100) <= n."""
    return math.ceil(level / (100.0 - level) - 1e-9)


async def calibrate(
    service: ModelService,
    series: Sequence[SeriesInput],
    horizon: int,
    levels: Sequence[float],
    *,
    required: bool = True,
) -> Calibration | None:
    """Factors on the model's half-widths, per series and level, from forecasts of each series' own history.

    `required` ("history"): a history too short, or too many past forecasts for one request, is refused by name.
    Otherwise ("auto", the TimeGPT route's default): nothing without levels; a series whose history is too short
    keeps the model's widths (factor 1 on 0 checks); and a request scores at most as many past forecasts as it
    may hold, fewer values per series when many series come, so that the default costs at most one more request.
    """
    card = service.card
    if not levels:
        if not required:
            return None
        raise InvalidInput(
            'calibration "history" rescales intervals: ask for `level` (e.g. [80, 95]) or `quantiles` as well'
        )
    need, scored = needed_checks(max(levels)), readings(horizon)
    limit = service.limits.max_series_per_request
    if required and checks_for(scored, horizon) < need:
        raise InvalidInput(
            f"the {max(levels):g}% interval cannot be calibrated on a history: it needs {need} scored forecast "
            f"steps and the last {scored} values of a series give at most {checks_for(scored, horizon)} at "
            f'horizon {horizon}; ask for a lower level, or use calibration "model"'
        )
    budget = scored if required else min(scored, limit // len(series))
    origins = []
    for s in series:
        n = len(s.values)
        cut = cutoffs(n, card.min_window, horizon)
        cut = cut[max(0, len(cut) - budget) :]
        got = checks_for(len(cut), horizon)
        if got < need and required:
            more = next(r for r in range(1, scored + 1) if checks_for(r, horizon) >= need) - len(cut)
            raise InvalidInput(
                f"series {s.id!r}: calibrating the {max(levels):g}% interval on its history needs {need} scored "
                f"forecast steps and its {n} values give {got} (the first {card.min_window} are the first window): "
                f'send at least {more} more values, or use calibration "model"'
            )
        origins.append(cut if got >= need else [])
    total = sum(len(c) for c in origins)
    if total > limit:  # only when required: "auto" kept within the limit above
        raise PayloadTooLarge(
            f'calibration "history" forecasts from {total} past origins here (up to {scored} per series); the '
            f"limit is {limit} forecast windows a request (GATECAST_MAX_SERIES_PER_REQUEST): send fewer series a "
            "request, or shorter histories"
        )
    checks = np.zeros(len(series), dtype=np.int64)
    widening = {level: np.ones(len(series)) for level in levels}
    if not total:
        return Calibration(checks, widening)
    windows = await backtest.run_windows(service, series, origins, horizon, levels)
    result = windows.result
    for b, s in enumerate(series):
        rows = np.flatnonzero(windows.series == b)
        if not rows.size:
            continue
        actual = backtest.actuals(np.asarray(s.values, dtype=np.float64), windows.cutoffs[rows], horizon)
        known = ~np.isnan(actual)
        mean = result.mean[rows]
        error = np.abs(actual - mean)[known]
        checks[b] = error.size
        for level in levels:
            # A zero width (a constant window) still counts: any miss is then a very large ratio.
            half = np.maximum(result.intervals[level][1][rows] - mean, 1e-12 * np.maximum(1.0, np.abs(mean)))
            ratios = np.sort(error / half[known])
            rank = min(ratios.size, math.ceil((ratios.size + 1) * level / 100.0 - 1e-9))  # 1-based
            widening[level][b] = float(ratios[rank - 1])
    return Calibration(checks, widening)
