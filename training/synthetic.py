"""Synthetic series for the base model's corpus: what real collections have too little of, at the frequencies users
send (15 minutes to yearly), seeded. More: docs/design.md#trainingsynthetic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from scipy.signal import lfilter

if TYPE_CHECKING:
    from training.corpus import Series

# frequency -> its seasonal periods (the first is the main one)
PERIODS = {
    "15min": (96, 672, 48),
    "h": (24, 168, 12),
    "D": (7, 30, 365),
    "W": (52, 4, 13),
    "MS": (12, 6, 3),
    "QS": (4, 2, 8),
    "YS": (1, 5, 11),
}
FREQS = tuple(PERIODS)
FREQ_WEIGHTS = np.array([0.2, 0.3, 0.2, 0.12, 0.1, 0.04, 0.04])


def _length(rng: np.random.Generator, freq: str) -> int:
    longest = {"15min": 6000, "h": 6000, "D": 3000, "W": 800, "MS": 400, "QS": 200, "YS": 120}[freq]
    return int(np.exp(rng.uniform(np.log(48), np.log(longest))))


def _period(rng: np.random.Generator, freq: str) -> int:
    periods = PERIODS[freq]
    return int(periods[0] if rng.random() < 0.6 else rng.choice(periods))


def kernel_synth(rng: np.random.Generator, freq: str, n: int) -> np.ndarray:
    n = min(n, 1024)  # the Cholesky of an n x n kernel: 1024 keeps the corpus build within a minute
    t = np.arange(n, dtype=np.float64)[:, None]
    d = t - t.T

    def kernel() -> np.ndarray:
        kind = rng.choice(["periodic", "periodic", "linear", "rbf", "rq", "white", "const"])
        if kind == "periodic":
            p = max(_period(rng, freq), 2) if rng.random() < 0.8 else rng.integers(4, 200)
            ell = rng.uniform(0.3, 2.0)
            return np.exp(-2 * np.sin(np.pi * np.abs(d) / p) ** 2 / ell**2)
        if kind == "linear":
            c = rng.uniform(-0.5, 1.5)
            return (t / n - c) @ (t / n - c).T
        if kind == "rbf":
            ell = n * rng.uniform(0.02, 0.5)
            return np.exp(-(d**2) / (2 * ell**2))
        if kind == "rq":
            ell, a = n * rng.uniform(0.02, 0.3), rng.uniform(0.2, 3)
            return (1 + d**2 / (2 * a * ell**2)) ** -a
        if kind == "white":
            return np.eye(n) * rng.uniform(0.01, 0.3)
        return np.ones((n, n)) * rng.uniform(0.1, 1)

    k = kernel()
    for _ in range(rng.integers(0, 4)):
        k = k + kernel() if rng.random() < 0.6 else k * kernel()
    k = k + np.eye(n) * 1e-6 * max(float(np.abs(np.diag(k)).max()), 1e-9)
    try:
        chol = np.linalg.cholesky(k)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(k)
        chol = v * np.sqrt(np.clip(w, 0, None))
    return chol @ rng.normal(size=n)


def ets(rng: np.random.Generator, freq: str, n: int) -> np.ndarray:
    m = _period(rng, freq)
    alpha, beta, gamma = rng.uniform(0.05, 0.6), rng.uniform(0, 0.15) * (rng.random() < 0.5), rng.uniform(0, 0.3)
    level, trend = rng.normal(0, 1), rng.normal(0, 0.05) * (rng.random() < 0.6)
    season = rng.normal(0, 1, m) * (rng.random() < 0.75) if m > 1 else np.zeros(1)
    sigma = rng.uniform(0.05, 0.6)
    out = np.empty(n)
    for i in range(n):
        s = season[i % m]
        e = rng.normal(0, sigma)
        out[i] = level + trend + s + e
        level, trend = level + trend + alpha * e, trend * 0.995 + beta * e
        season[i % m] = s + gamma * e
    return out


def arima(rng: np.random.Generator, freq: str, n: int) -> np.ndarray:
    p, q = rng.integers(0, 4), rng.integers(0, 3)
    roots = rng.uniform(1.1, 4, p) * rng.choice([-1, 1], p)
    ar = np.poly(1 / roots)[1:] * -1 if p else np.zeros(0)  # a stationary AR polynomial
    ma = rng.normal(0, 0.5, q)
    e = rng.normal(0, 1, n + 50)
    x = lfilter(np.r_[1.0, ma], np.r_[1.0, -ar], e)[50:]
    d = rng.choice([0, 1, 1, 2], p=[0.45, 0.25, 0.25, 0.05])
    for _ in range(d):
        x = np.cumsum(x) * (0.3 if d == 2 else 1)
    return x + rng.normal(0, 0.3) * np.arange(n) * (rng.random() < 0.2) / max(n, 1)


def sensor(rng: np.random.Generator, freq: str, n: int) -> np.ndarray:
    freq = freq if freq in ("15min", "h") else "h"
    day = 96 if freq == "15min" else 24
    t = np.arange(n)
    phase = rng.uniform(0, 2 * np.pi)
    shape = np.sin(2 * np.pi * t / day + phase) + rng.uniform(0, 0.6) * np.sin(4 * np.pi * t / day + phase)
    weekly = rng.uniform(0, 0.8) * ((t // day) % 7 >= 5) * rng.choice([-1, 1])
    phi, sd = rng.uniform(0.8, 0.999), rng.uniform(0.05, 0.4)
    ar = lfilter([1.0], [1.0, -phi], rng.normal(0, sd, n))
    amp = 1 + rng.uniform(0, 0.5) * np.sin(2 * np.pi * t / rng.uniform(day * 20, day * 200))
    return rng.uniform(0.3, 3) * shape * amp + weekly + ar * rng.uniform(0.5, 3)


def _profile(rng: np.random.Generator, period: int) -> np.ndarray:
    """One cycle of a season that is not a sine: random harmonics with decaying amplitudes, and sometimes bumps
    (a morning and an evening peak) or a flat night, scaled to unit spread."""
    phase = np.arange(period) / period
    k = np.arange(1, min(8, max(period // 2, 1)) + 1)[:, None]
    amp = rng.normal(0, 1, (len(k), 1)) / k ** rng.uniform(0.8, 2.0)
    shape = (amp * np.sin(2 * np.pi * k * phase + rng.uniform(0, 2 * np.pi, (len(k), 1)))).sum(axis=0)
    for _ in range(rng.poisson(1.0)):
        centre, width = rng.uniform(0, 1), rng.uniform(0.02, 0.15)
        gap = np.minimum(np.abs(phase - centre), 1 - np.abs(phase - centre))
        shape = shape + rng.normal(0, 2) * np.exp(-0.5 * (gap / width) ** 2)
    if rng.random() < 0.3:
        shape = np.maximum(shape, np.quantile(shape, rng.uniform(0.2, 0.6)))
    return (shape - shape.mean()) / (shape.std() + 1e-9)


def multi_seasonal(rng: np.random.Generator, freq: str, n: int) -> np.ndarray:
    """Demand, load and traffic: a daily profile (for 15 minutes and hours) or a weekly one (days) times
    day-of-week factors, drifting slowly between two profiles, on a level with a trend, additive or multiplicative,
    with AR(1) noise and rare outliers."""
    if freq not in ("15min", "h", "D"):
        freq = str(rng.choice(["15min", "h", "D"]))
    cycle = {"15min": 96, "h": 24, "D": 7}[freq]
    t = np.arange(n)
    a, b = _profile(rng, cycle), _profile(rng, cycle)
    drift = 0.5 + 0.5 * np.sin(2 * np.pi * t / rng.uniform(4, 60) / cycle + rng.uniform(0, 2 * np.pi))
    mix = rng.uniform(0, 0.6) * drift
    season = (1 - mix) * a[t % cycle] + mix * b[t % cycle]
    if freq == "D":
        season = season + rng.uniform(0, 1.5) * np.sin(2 * np.pi * t / 365.25 + rng.uniform(0, 2 * np.pi))
    else:
        week = 1 + rng.uniform(0, 0.5) * rng.normal(0, 1, 7) * (rng.random() < 0.7)
        week[5:] *= rng.uniform(0.3, 1.2) if rng.random() < 0.6 else 1.0
        season = season * week[(t // cycle) % 7]
    level = 10 + np.cumsum(rng.normal(0, rng.uniform(0, 0.05), n)) + rng.normal(0, 3) * t / n * (rng.random() < 0.6)
    noise = lfilter([1.0], [1.0, -rng.uniform(0.2, 0.95)], rng.normal(0, rng.uniform(0.02, 0.4), n))
    amp = rng.uniform(0.5, 4)
    if rng.random() < 0.5:
        out = level * (1 + 0.1 * amp * season) + noise * level.std() + noise
    else:
        out = level + amp * season + noise * amp
    spots = rng.random(n) < rng.uniform(0, 0.003)
    out[spots] += rng.normal(0, 5 * amp, spots.sum())
    return out


def random_walk(rng: np.random.Generator, freq: str, n: int) -> np.ndarray:
    drift = np.clip(np.cumsum(rng.normal(0, 0.05, n)), -2, 2)  # log volatility that wanders, bounded
    vol = np.minimum(np.exp(drift + rng.normal(-4, 1)), 0.05)  # per step, so a 6,000-step path stays finite
    steps = rng.standard_t(rng.uniform(3, 30), n) * vol + rng.normal(0, 2e-4)
    return np.exp(np.cumsum(steps)) * rng.uniform(0.5, 200) if rng.random() < 0.5 else np.cumsum(steps) * 100


def trend_shifts(rng: np.random.Generator, freq: str, n: int) -> np.ndarray:
    t = np.arange(n)
    knots = np.sort(rng.integers(0, n, rng.integers(0, 4)))
    slope = np.zeros(n)
    s = rng.normal(0, 1)
    last = 0
    for k in [*knots, n]:
        slope[last:k] = s
        s = s + rng.normal(0, 0.7)
        last = k
    level = np.cumsum(slope) / n * rng.uniform(1, 10)
    shifts = np.zeros(n)
    for k in rng.integers(0, n, rng.poisson(0.8)):
        shifts[k:] += rng.normal(0, 2)
    m = _period(rng, freq)
    season = np.sin(2 * np.pi * t / max(m, 2)) * rng.uniform(0, 1.5) * (m > 1)
    spikes = np.zeros(n)
    spots = rng.random(n) < rng.uniform(0, 0.01)
    spikes[spots] = rng.normal(0, 5, spots.sum())
    return level + shifts + season + spikes + rng.normal(0, rng.uniform(0.05, 0.5), n)


def intermittent(rng: np.random.Generator, freq: str, n: int) -> np.ndarray:
    p = rng.uniform(0.05, 0.6)
    m = _period(rng, freq)
    seasonal = 1 + 0.8 * np.sin(2 * np.pi * np.arange(n) / max(m, 2)) * (rng.random() < 0.5)
    occurs = rng.random(n) < np.clip(p * seasonal, 0, 1)
    return occurs * np.round(rng.gamma(rng.uniform(0.5, 3), rng.uniform(1, 20), n))


GENERATORS: dict[str, str] = {
    "kernel_synth": "Gaussian processes over random kernel compositions (KernelSynth, as in Chronos)",
    "ets": "ETS simulations: level, damped trend, additive season, at each frequency's periods",
    "arima": "ARIMA(p, d, q) simulations, p <= 3, q <= 2, d <= 2",
    "sensor": "15-minute and hourly sensors: daily shape, weekends, AR(1) noise, slow amplitude changes",
    "multi_seasonal": "demand and traffic: non-sinusoidal daily or weekly profiles that drift, day-of-week factors, "
    "trends, additive or multiplicative, AR(1) noise, outliers",
    "random_walk": "random walks with drifting volatility and heavy tails, in levels and in logs (prices)",
    "trend_shifts": "piecewise trends with level shifts, spikes and a season",
    "intermittent": "intermittent demand: Bernoulli occurrences of gamma sizes, sometimes seasonal",
}
_FUNCS: dict[str, Callable[[np.random.Generator, str, int], np.ndarray]] = {
    "kernel_synth": kernel_synth,
    "ets": ets,
    "arima": arima,
    "sensor": sensor,
    "multi_seasonal": multi_seasonal,
    "random_walk": random_walk,
    "trend_shifts": trend_shifts,
    "intermittent": intermittent,
}
SHARES = {
    "kernel_synth": 0.2,
    "ets": 0.12,
    "arima": 0.1,
    "sensor": 0.12,
    "multi_seasonal": 0.22,
    "random_walk": 0.1,
    "trend_shifts": 0.09,
    "intermittent": 0.05,
}


def generate(count: int, seed: int) -> list[Series]:
    """`count` series in SHARES, each from its own generator seeded by (seed, index): the same for a seed."""
    from training.corpus import Series

    out = []
    kinds = list(SHARES)
    shares = np.array([SHARES[k] for k in kinds])
    choose = np.random.default_rng(seed)
    picks = choose.choice(len(kinds), size=count, p=shares / shares.sum())
    for i, k in enumerate(picks):
        rng = np.random.default_rng([seed, i])
        freq = str(rng.choice(FREQS, p=FREQ_WEIGHTS / FREQ_WEIGHTS.sum()))
        values = _FUNCS[kinds[k]](rng, freq, _length(rng, freq))
        values = values * 10 ** rng.uniform(-1, 3) + rng.normal(0, 1) * 10 ** rng.uniform(-1, 3) * (rng.random() < 0.5)
        out.append(Series(f"synthetic/{kinds[k]}", freq, values.astype(np.float32)))
    return out
