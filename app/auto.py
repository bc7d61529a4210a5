"""Model "auto": per series, the candidate with the lowest error on the series' own last windows answers. More:
docs/design.md#appauto.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from app import forecasting, frequency
from app.errors import InvalidInput, NotFound
from app.forecast_jobs import Choice, ForecastJob, ForecastResult, SeriesInput, WindowJob
from app.levels import check_levels, check_quantiles
from app.registry import ModelRepository
from app.service import ModelService
from app.timeaxis import future_index
from contract.card import BASE_MODEL

AUTO = "auto"
MAX_WINDOWS = 3
NAIVE_WINDOWS = 10  # naive against seasonal naive costs no model run: ranked on more windows, less by chance
MAX_MODEL_CANDIDATES = 4  # the base model and at most three served models of the series' frequency
NAIVE, SEASONAL = "naive", "seasonal_naive"
# A model answers alone only where its backtest MASE is this much below the naive forecast's, and where it is below
# by less, the two forecasts' mean answers (blend_partner): of the margins 0 ... 0.3 and the rules of NAIVE_RULES in
# bench/zeroshot.py, this lost least to the better naive forecast on GIFT-Eval's validation windows and the exchange
# rates' (fewest configurations behind it, then the smallest worst ratio); re-chosen for each new base model
# (`python -m bench.zeroshot --choose-auto-margin`, docs/benchmarks/auto.json).
MARGIN = 0.2


@dataclass
class Series:
    """One series as "auto" backtests it."""

    index: int
    s: SeriesInput
    values: np.ndarray
    freq: str | None
    season: int
    origins: np.ndarray  # backtest origins, ascending
    scale: float  # in-sample seasonal naive MAE before the first origin


async def forecast(repository: ModelRepository, job: ForecastJob) -> ForecastResult:
    if job.horizon is None:
        raise InvalidInput("model 'auto' needs `horizon` (the steps to forecast): each candidate is backtested on it")
    horizon = int(job.horizon)
    levels = check_levels(job.levels)
    check_quantiles(job.quantiles)
    if not job.series:
        raise InvalidInput("no series were sent; send at least one")
    base = _base(repository)
    base.check_series(job.series)
    items = [prepare_series(i, s, horizon) for i, s in enumerate(job.series)]
    candidates = _candidates(repository, base, items, horizon)
    errors: list[dict[str, float]] = [{} for _ in items]
    for service in candidates:
        await _backtest_model(service, items, horizon, errors)
    for item, err in zip(items, errors, strict=True):
        if len(item.origins):
            err[NAIVE] = naive_mase(item, horizon, 1)
            if item.season > 1 and item.origins[0] > item.season:
                err[SEASONAL] = naive_mase(item, horizon, item.season)
    choices = [_choose(item, err, base, naive_pick(item, horizon)) for item, err in zip(items, errors, strict=True)]
    return await _answer(repository, job, items, choices, horizon, levels)


def _base(repository: ModelRepository) -> ModelService:
    try:
        return repository.get(BASE_MODEL)
    except NotFound:
        return repository.resolve(None)


def prepare_series(i: int, s: SeriesInput, horizon: int) -> Series:
    values = np.asarray(s.values, dtype=np.float64)
    freq = frequency.series_freq(s)
    season = frequency.season_of(freq)
    n = len(values)
    origins = np.asarray([n - k * horizon for k in range(MAX_WINDOWS, 0, -1)], dtype=np.int64)
    origins = origins[origins >= max(8, 2 * min(season, n // 4) if season > 1 else 8)]
    scale = 1.0
    if len(origins):
        history = values[: int(origins[0])]
        lag = season if season > 1 and len(history) > season else 1
        diffs = np.abs(history[lag:] - history[:-lag]) if len(history) > lag else np.zeros(0)
        scale = float(np.nanmean(diffs)) if len(diffs) and np.isfinite(diffs).any() else 1.0
        scale = scale if scale > 0 and math.isfinite(scale) else 1.0
    return Series(i, s, values, freq, season, origins, scale)


def _candidates(
    repository: ModelRepository, base: ModelService, items: list[Series], horizon: int
) -> list[ModelService]:
    found = [base] if base.card.horizon >= horizon else []
    freqs = {item.freq for item in items if item.freq}
    for name in sorted(repository.models):
        if len(found) >= MAX_MODEL_CANDIDATES:
            break
        service = repository.get(name)
        card = service.card
        if service is base or card.any_freq or not card.covariates.empty or card.horizon < horizon:
            continue
        if any(frequency.same_freq(f, card.freq) for f in freqs):
            found.append(service)
    return found


async def _backtest_model(
    service: ModelService, items: list[Series], horizon: int, errors: list[dict[str, float]]
) -> None:
    """One window job of every series' origins that this model can read (its freq matches, its window fits)."""
    card = service.card
    usable = [
        item
        for item in items
        if len(item.origins)
        and (card.any_freq or (item.freq is not None and frequency.same_freq(item.freq, card.freq)))
        and int(item.origins[0]) >= card.min_window
        and not (card.positive_only and bool((item.values[: int(item.origins[-1])] <= 0).any()))
    ]
    if not usable:
        return
    series = [SeriesInput(item.s.id, item.values) for item in usable]
    windows = await forecasting.windows(service, WindowJob(series, [item.origins for item in usable], horizon))
    mean = windows.result.mean
    for row, (owner, cutoff) in enumerate(zip(windows.series, windows.cutoffs, strict=True)):
        item = usable[int(owner)]
        actual = item.values[int(cutoff) : int(cutoff) + horizon]
        err = float(np.abs(mean[row, : len(actual)] - actual).mean()) / item.scale
        got = errors[item.index]
        got[service.name] = got.get(service.name, 0.0) + err / len(item.origins)


def naive_mase(item: Series, horizon: int, lag: int) -> float:
    total = 0.0
    for origin in item.origins.tolist():
        actual = item.values[origin : origin + horizon]
        forecast = _naive(item.values[:origin], len(actual), lag)
        total += float(np.abs(forecast - actual).mean()) / item.scale
    return total / len(item.origins)


def _naive(history: np.ndarray, horizon: int, lag: int) -> np.ndarray:
    """The last value (lag 1) or the last season repeated (lag = the season)."""
    if lag <= 1 or len(history) < lag:
        return np.full(horizon, history[-1])
    last = history[-lag:]
    return np.asarray([last[h % lag] for h in range(horizon)], dtype=np.float64)


def _choose(item: Series, err: dict[str, float], base: ModelService, naive: str | None) -> Choice:
    finite = {k: round(v, 6) for k, v in err.items() if math.isfinite(v)}
    if not finite:  # too short to backtest
        return Choice(base.name, base.version, 0, {}, item.season)
    pick = choose(finite, naive=naive)
    partner = blend_partner(finite, pick)
    if partner is not None:
        return Choice(partner, None, len(item.origins), finite, item.season, blended_with=pick)
    return Choice(pick, None, len(item.origins), finite, item.season)


def naive_pick(item: Series, horizon: int, rule: str = "backtest") -> str | None:
    """Naive or seasonal naive (None when the series is too short for one backtest window). `rule`: "backtest",
    whichever erred less over up to NAIVE_WINDOWS windows at the series' end; "acf", seasonal naive where the
    series is seasonal by the classic autocorrelation test (`is_seasonal`); "both", seasonal naive only where the
    test and the backtest agree."""
    n, least = len(item.values), max(8, 2 * min(item.season, len(item.values) // 4) if item.season > 1 else 8)
    origins = [n - k * horizon for k in range(NAIVE_WINDOWS, 0, -1) if n - k * horizon >= least]
    if not origins:
        return None
    if item.season <= 1 or origins[0] <= item.season:
        return NAIVE
    if rule != "backtest" and not is_seasonal(item.values, item.season):
        return NAIVE
    if rule == "acf":
        return SEASONAL
    errors = {}
    for name, lag in ((NAIVE, 1), (SEASONAL, item.season)):
        errors[name] = sum(
            float(
                np.abs(
                    _naive(item.values[:o], len(item.values[o : o + horizon]), lag) - item.values[o : o + horizon]
                ).mean()
            )
            for o in origins
        )
    return min(errors, key=errors.__getitem__)


SEASONAL_TEST_VALUES = 4096  # the test reads at most the last this many values


def is_seasonal(values: np.ndarray, season: int) -> bool:
    """The autocorrelation of the first differences at the season beyond its 90% limit under no seasonality,
    |r_m| > 1.645 sqrt((1 + 2 sum r_k^2, k < m) / n) (the M4 Theta benchmark's test, on differences so that a random
    walk or a trend, whose levels correlate at every lag, is not called seasonal)."""
    x = np.diff(np.asarray(values[-SEASONAL_TEST_VALUES:], dtype=np.float64))
    x = x[np.isfinite(x)]
    n = len(x)
    if season <= 1 or n < 3 * season:
        return False
    x = x - x.mean()
    denominator = float(x @ x)
    if denominator <= 0:
        return False
    r = np.asarray([float(x[k:] @ x[:-k]) for k in range(1, season + 1)]) / denominator
    limit = 1.645 * math.sqrt((1 + 2 * float(np.sum(r[:-1] ** 2))) / n)
    return bool(abs(r[-1]) > limit)


def choose(mase: dict[str, float], margin: float = MARGIN, naive: str | None = None) -> str:
    """The best model when it beats the naive forecast (`naive`, else the better of the two on this backtest) by
    `margin` on the backtest, else that naive forecast."""
    naive_scores = {k: v for k, v in mase.items() if k in (NAIVE, SEASONAL)}
    models = {k: v for k, v in mase.items() if k not in (NAIVE, SEASONAL)}
    best_model = min(models, key=models.__getitem__) if models else None
    best_naive = (
        naive if naive in naive_scores else (min(naive_scores, key=naive_scores.__getitem__) if naive_scores else None)
    )
    if best_naive is None:
        return str(best_model)
    if best_model is None or not models[best_model] < (1 - margin) * naive_scores[best_naive]:
        return best_naive
    return best_model


def blend_partner(mase: dict[str, float], pick: str) -> str | None:
    """Where a naive forecast was picked but the best model beat it on the backtest (by less than the margin), that
    model, whose forecast is averaged with the naive one. None where the model was picked, or lost to the naive
    forecast."""
    models = {k: v for k, v in mase.items() if k not in (NAIVE, SEASONAL)}
    if pick not in (NAIVE, SEASONAL) or pick not in mase or not models:
        return None
    best = min(models, key=models.__getitem__)
    return best if models[best] < mase[pick] else None


async def _answer(
    repository: ModelRepository,
    job: ForecastJob,
    items: list[Series],
    choices: list[Choice],
    horizon: int,
    levels: list[float],
) -> ForecastResult:
    b = len(items)
    mean = np.zeros((b, horizon))
    intervals = {level: (np.zeros((b, horizon)), np.zeros((b, horizon))) for level in levels}
    quantiles = {float(q): np.zeros((b, horizon)) for q in sorted(job.quantiles)}
    unit = np.ones(b)
    timestamps: list[pd.DatetimeIndex | None] = [None] * b
    by_model: dict[str, list[int]] = {}
    for i, choice in enumerate(choices):
        by_model.setdefault(choice.model, []).append(i)
    warnings: list[str] = []
    for model, rows in by_model.items():
        if model in (NAIVE, SEASONAL):
            for i in rows:
                _fill_naive(items[i], choices[i], horizon, levels, i, mean, intervals, quantiles)
                timestamps[i] = _future(items[i], horizon)
            continue
        service = repository.get(model)
        sub = ForecastJob([items[i].s for i in rows], horizon, levels, job.quantiles, job.calibration)
        result = await forecasting.forecast(service, sub)
        warnings += result.warnings
        for k, i in enumerate(rows):
            mean[i] = result.mean[k]
            unit[i] = result.scale[k]
            for level in levels:
                lo, hi = result.intervals[level]
                intervals[level][0][i], intervals[level][1][i] = lo[k], hi[k]
            for q in quantiles:
                quantiles[q][i] = result.quantiles[q][k]
            timestamps[i] = result.timestamps[k] if result.timestamps else None
            choices[i] = dataclasses.replace(choices[i], version=service.version)
            if choices[i].blended_with:
                _blend_naive(items[i], choices[i], horizon, i, mean, intervals, quantiles)
    return ForecastResult(
        AUTO,
        "",
        horizon,
        levels,
        [item.s.id for item in items],
        mean,
        unit,
        intervals,
        timestamps,
        quantiles,
        warnings=warnings,
        choices=choices,
    )


def _fill_naive(
    item: Series,
    choice: Choice,
    horizon: int,
    levels: Sequence[float],
    i: int,
    mean: np.ndarray,
    intervals: dict[float, tuple[np.ndarray, np.ndarray]],
    quantiles: dict[float, np.ndarray],
) -> None:
    """Row i: the naive forecast `choice.model` with the intervals of its model."""
    mean[i], bounds, at = naive_answer(item, choice.model, horizon, levels, list(quantiles))
    for level, (lo, hi) in bounds.items():
        intervals[level][0][i], intervals[level][1][i] = lo, hi
    for q, values in at.items():
        quantiles[q][i] = values


def _blend_naive(
    item: Series,
    choice: Choice,
    horizon: int,
    i: int,
    mean: np.ndarray,
    intervals: dict[float, tuple[np.ndarray, np.ndarray]],
    quantiles: dict[float, np.ndarray],
) -> None:
    """Row i, filled from the model, averaged half and half with the naive forecast `choice.blended_with`: the
    means, each quantile and each bound (averaged quantiles are the quantiles of a mean of the two forecasts' spreads,
    a Vincentization)."""
    naive_mean, bounds, at = naive_answer(item, str(choice.blended_with), horizon, list(intervals), list(quantiles))
    mean[i] = 0.5 * (mean[i] + naive_mean)
    for level, (lo, hi) in bounds.items():
        intervals[level][0][i] = 0.5 * (intervals[level][0][i] + lo)
        intervals[level][1][i] = 0.5 * (intervals[level][1][i] + hi)
    for q, values in at.items():
        quantiles[q][i] = 0.5 * (quantiles[q][i] + values)


def naive_answer(
    item: Series, which: str, horizon: int, levels: Sequence[float], qs: Sequence[float]
) -> tuple[np.ndarray, dict[float, tuple[np.ndarray, np.ndarray]], dict[float, np.ndarray]]:
    """`which` ("naive" or "seasonal_naive") for one series: its mean, bounds per level and quantiles, the spread
    sigma of the one-step (or one-season) changes growing with the square root of the steps (or seasons) ahead."""
    mean, spread = naive_forecast(item.values, horizon, item.season if which == SEASONAL else 1)
    normal = NormalDist()
    bounds = {}
    for level in levels:
        z = normal.inv_cdf(0.5 + level / 200)
        bounds[level] = (mean - z * spread, mean + z * spread)
    return mean, bounds, {q: mean + normal.inv_cdf(q) * spread for q in qs}


def naive_forecast(values: np.ndarray, horizon: int, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """The last value (lag 1) or the last season repeated, and the standard deviation of its error per step: that of
    the lag's changes, growing with the square root of the steps (a random walk) or of the seasons ahead."""
    diffs = values[lag:] - values[:-lag]
    sigma = float(np.nanstd(diffs)) if len(diffs) > 1 else 0.0
    steps = np.arange(1, horizon + 1)
    return _naive(values, horizon, lag), sigma * np.sqrt(steps if lag == 1 else (steps - 1) // lag + 1)


def _future(item: Series, horizon: int) -> pd.DatetimeIndex | None:
    s = item.s
    return future_index(s.id, len(item.values), horizon, item.freq or "", s.timestamps, s.start, s.freq)
