"""Small synthetic series for tests that must not need the real datasets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # training imports torch: the series alone are for server tests too
    from training.config import RunConfig
    from training.data import Dataset


def seasonal_series(n: int = 1200, season: int = 24, seed: int = 0, level: float = 50.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return level + 10 * np.sin(2 * np.pi * t / season) + 0.01 * t + rng.normal(0, 0.5, n)


def seasonal_dataset(n: int = 1200, series: int = 1) -> Dataset:
    from training.data import Dataset, Series

    items = [
        Series(
            f"s{i}",
            seasonal_series(n, seed=i, level=50.0 + 20 * i),
            int(n * 0.7),
            int(n * 0.85),
            n,
            start=pd.Timestamp("2024-01-01"),
        )
        for i in range(series)
    ]
    return Dataset("synthetic", "y", "h", 24, items, "synthetic daily-seasonal series")


def tiny_config(name: str = "tiny", cell: str = "gru", version: str = "1", epochs: int = 2) -> RunConfig:
    from training.config import RunConfig

    return RunConfig.from_dict(
        {
            "name": name,
            "dataset": "synthetic",
            "version": version,
            "seed": 0,
            "model": {
                "cell": cell,
                "hidden_size": 8,
                "num_layers": 1,
                "dropout": 0.0,
                "input_window": 48,
                "min_window": 30,
                "horizon": 12,
                "interval_lag": 24,
            },
            "train": {"epochs": epochs, "batch_size": 64, "train_stride": 4, "patience": 2},
            "evaluate": {"stride": 6, "stat_model": ""},
        }
    )


@dataclass
class CovariateSeries:
    """The synthetic covariate series as plain arrays (the attributes of training.data.Series that tests read),
    for server tests that run without the train extra."""

    values: np.ndarray
    timestamps: pd.DatetimeIndex
    covariates: dict[str, np.ndarray]
    train_end: int
    val_end: int


def covariate_series(n: int = 1200) -> CovariateSeries:
    """Hourly series driven by its covariates: a `load` channel it follows one step later (known up to the
    origin), a planned `plan` step known ahead, and the hour of the day."""
    rng = np.random.default_rng(7)
    stamps = pd.date_range("2024-01-01", periods=n, freq="h")
    load = 10 + np.cumsum(rng.normal(size=n)) * 0.5
    plan = (rng.uniform(size=n) < 0.1).astype(float) * 5  # occasional planned steps
    hour = np.sin(2 * np.pi * np.asarray(stamps.hour) / 24)
    y = 40 + 3 * hour + 0.8 * np.roll(load, 1) + 2 * plan + rng.normal(scale=0.2, size=n)
    return CovariateSeries(y, stamps, {"load": load, "plan": plan}, int(n * 0.7), int(n * 0.85))


def covariate_dataset(n: int = 1200) -> Dataset:
    """covariate_series as a training data set."""
    from training.data import Dataset, Series

    s = covariate_series(n)
    series = Series(
        "s0",
        s.values,
        s.train_end,
        s.val_end,
        n,
        start=s.timestamps[0],
        timestamps=s.timestamps,
        covariates=s.covariates,
    )
    return Dataset("synthetic-cov", "y", "h", 24, [series], "synthetic series with covariates")


def covariate_config(name: str = "tinycov", epochs: int = 2) -> RunConfig:

    config = tiny_config(name, epochs=epochs)
    config.model = type(config.model)(
        **{
            **config.model.to_dict(),
            "past_covariates": ["load"],
            "future_covariates": ["plan"],
            "calendar": ["hour_of_day", "day_of_week"],
        }
    )
    return config
