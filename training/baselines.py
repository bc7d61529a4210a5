"""Baselines evaluated on the same windows as the networks: naive, seasonal naive, and a statsforecast model."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from training.metrics import naive_forecast, seasonal_naive_forecast


def naive(inputs: np.ndarray, horizon: int) -> np.ndarray:
    """Last value, for each window (N, T) -> (N, H)."""
    return np.stack([naive_forecast(x, horizon) for x in inputs])


def seasonal_naive(inputs: np.ndarray, horizon: int, season: int) -> np.ndarray:
    return np.stack([seasonal_naive_forecast(x, horizon, season) for x in inputs])


def statistical(inputs: list[np.ndarray], horizon: int, season: int, model: str = "AutoETS") -> np.ndarray:
    """statsforecast `model` (AutoETS, AutoTheta, ...) fitted on each input separately -> (N, H)."""
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    from statsforecast import StatsForecast
    from statsforecast import models as sf_models

    if not hasattr(sf_models, model):
        raise ValueError(f"stat_model {model!r} is not a statsforecast model")
    frames = [
        pd.DataFrame({"unique_id": i, "ds": np.arange(len(x)), "y": x.astype(np.float64)}) for i, x in enumerate(inputs)
    ]
    frame = pd.concat(frames, ignore_index=True)
    forecaster = StatsForecast(models=[getattr(sf_models, model)(season_length=season)], freq=1, n_jobs=1)
    out = forecaster.forecast(df=frame, h=horizon)
    values = out.sort_values(["unique_id", "ds"])[model].to_numpy()
    return values.reshape(len(inputs), horizon)
