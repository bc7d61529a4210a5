"""Forecast accuracy metrics, and the M4 benchmarks exactly as the M4 R code defines them.

Reference: Mcompetitions/M4-methods, `Benchmarks and Evaluation.R` (SeasonalityTest, Benchmarks,
smape_cal, mase_cal) and R's `stats::decompose` / `stats::acf`.
"""

from __future__ import annotations

import numpy as np


def mae(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(np.abs(y - f)))


def rmse(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - f) ** 2)))


def mse(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean((y - f) ** 2))


def smape(y: np.ndarray, f: np.ndarray) -> float:
    """M4 sMAPE in percent: mean of 200|y - f| / (|y| + |f|); a 0/0 term counts as 0."""
    den = np.abs(y) + np.abs(f)
    terms = np.divide(200.0 * np.abs(y - f), den, out=np.zeros_like(den, dtype=float), where=den != 0)
    return float(np.mean(terms))


def mase(y: np.ndarray, f: np.ndarray, scale: float) -> float:
    """Mean |y - f| divided by an in-sample seasonal-naive MAE (`scale`)."""
    return float(np.mean(np.abs(y - f)) / scale)


def seasonal_naive_scale(insample: np.ndarray, season: int) -> float:
    """mean_t |y_t - y_{t-m}| over the in-sample part (M4 `mase_cal`'s denominator)."""
    return float(np.mean(np.abs(insample[season:] - insample[:-season])))


# --- M4 benchmarks ---------------------------------------------------------------------------------------


def acf(x: np.ndarray, nlags: int) -> np.ndarray:
    """R's acf (biased, demeaned): lags 1..nlags."""
    x = np.asarray(x, dtype=float) - np.mean(x)
    denom = np.sum(x * x)
    return np.array([np.sum(x[k:] * x[:-k]) / denom for k in range(1, nlags + 1)])


def seasonality_test(x: np.ndarray, ppy: int) -> bool:
    """M4 `SeasonalityTest`: |acf at lag ppy| above the 90% limit (tcrit 1.645)."""
    n = len(x)
    if n < 3 * ppy:
        return False
    nlags = int(np.floor(10 * np.log10(n)))  # R's default lag.max
    if nlags < ppy:  # R's xacf[ppy] is NA there, which the M4 code turns into FALSE
        return False
    xacf = acf(x, nlags)
    clim = 1.645 / np.sqrt(n) * np.sqrt(np.cumsum(np.concatenate([[1.0], 2 * xacf**2])))
    value = abs(xacf[ppy - 1]) > clim[ppy - 1]
    return bool(value) if np.isfinite(xacf[ppy - 1]) else False


def seasonal_indices(x: np.ndarray, ppy: int) -> np.ndarray:
    """R `decompose(type="multiplicative")$seasonal` for a series starting at cycle position 1."""
    n = len(x)
    # R's default filter: a centred moving average (2 x m for even m)
    even = np.concatenate([[0.5], np.ones(ppy - 1), [0.5]]) / ppy
    weights = even if ppy % 2 == 0 else np.ones(ppy) / ppy
    half = len(weights) // 2
    trend = np.full(n, np.nan)
    trend[half : n - half] = np.convolve(x, weights[::-1], mode="valid")
    ratio = x / trend
    figure = np.array([np.nanmean(ratio[i::ppy]) for i in range(ppy)])
    figure = figure / figure.mean()
    return np.resize(figure, n)


def naive2_forecast(insample: np.ndarray, horizon: int, ppy: int) -> np.ndarray:
    """M4 Naive2: naive forecast of the seasonally adjusted series, re-seasonalised."""
    if ppy > 1 and seasonality_test(insample, ppy):
        seasonal = seasonal_indices(insample, ppy)
        adjusted = insample / seasonal
        out_indices = np.resize(seasonal[-ppy:], horizon)
    else:
        adjusted = insample
        out_indices = np.ones(horizon)
    return np.full(horizon, adjusted[-1]) * out_indices


def naive_forecast(insample: np.ndarray, horizon: int) -> np.ndarray:
    return np.full(horizon, insample[-1])


def seasonal_naive_forecast(insample: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """M4 `naive_seasonal`: repeat the last full season."""
    if len(insample) < season:
        return naive_forecast(insample, horizon)
    return np.resize(insample[-season:], horizon)


def m4_scores(insamples: list[np.ndarray], actuals: np.ndarray, forecasts: np.ndarray, season: int) -> dict[str, float]:
    """Subset-level M4 sMAPE and MASE: per-series scores averaged over the series."""
    smapes = [smape(a, f) for a, f in zip(actuals, forecasts, strict=True)]
    mases = [mase(a, f, seasonal_naive_scale(x, season)) for x, a, f in zip(insamples, actuals, forecasts, strict=True)]
    return {"smape": float(np.mean(smapes)), "mase": float(np.mean(mases))}


def owa(scores: dict[str, float], naive2: dict[str, float]) -> float:
    """M4 OWA, from subset-level averages (not per series)."""
    return 0.5 * (scores["smape"] / naive2["smape"] + scores["mase"] / naive2["mase"])
