"""Baselines evaluated on the same test origins as the networks: naive, seasonal naive, and a statsforecast model
fitted on each series' history."""

from __future__ import annotations

import os

import numpy as np

from training.metrics import naive_forecast, seasonal_naive_forecast


def naive(inputs: np.ndarray, horizon: int) -> np.ndarray:
    """Last value, for each window (N, T) -> (N, H)."""
    return np.stack([naive_forecast(x, horizon) for x in inputs])


def seasonal_naive(inputs: np.ndarray, horizon: int, season: int) -> np.ndarray:
    return np.stack([seasonal_naive_forecast(x, horizon, season) for x in inputs])


def statistical_on_history(
    history: np.ndarray, fit_end: int, origins: np.ndarray, horizon: int, season: int, model: str = "AutoETS"
) -> np.ndarray:
    """One series: `model` fitted once on history[:fit_end] (everything before the test split), then applied
    with those parameters at each origin to the points before it -> (len(origins), H).

    Refitting at every origin would cost seconds each on long histories; applying the fitted model
    (statsforecast's `forward`) costs milliseconds. It is applied to a long recent stretch (`forward_start`),
    enough for its states to settle: AutoTheta's forward re-runs a seasonality test whose cost is quadratic
    in the length it is given."""
    fitted = _model(model, season).fit(history[:fit_end].astype(np.float64))
    return np.stack(
        [fitted.forward(y=history[forward_start(o, season) : o].astype(np.float64), h=horizon)["mean"] for o in origins]
    )


def forward_start(origin: int, season: int) -> int:
    """Where the stretch a fitted model is applied to begins: about max(1000, 20 seasons) points before the
    origin, on a season boundary of the series. The fitted model's seasonal states start at the series' first
    point; a stretch starting elsewhere in the season would pair every value with the wrong seasonal state."""
    start = max(0, origin - max(1000, 20 * season))
    return start - start % season


def _model(name: str, season: int):  # type: ignore[no-untyped-def]
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    from statsforecast import models as sf_models

    if not hasattr(sf_models, name):
        raise ValueError(f"stat_model {name!r} is not a statsforecast model")
    return getattr(sf_models, name)(season_length=season)
