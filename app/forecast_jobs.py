"""What a protocol hands the forecasting entry point (app.forecasting) and gets back: the series it decoded
(`SeriesInput`), a forecast after the last values (`ForecastJob`) or forecasts from past origins (`WindowJob`), and
the answers (`ForecastResult`, `Windows`). Plain data, so every module that builds or reads a job (the protocols,
cross-validation, calibration, streams) needs only this module, not the model service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SeriesInput:
    """One series as a route decoded it. Time information is optional and only places the forecast."""

    id: str
    values: np.ndarray | Sequence[float]  # raw observations, oldest first
    timestamps: Sequence[datetime] | pd.DatetimeIndex | None = None
    start: datetime | None = None
    freq: str | None = None
    covariates: Mapping[str, np.ndarray | Sequence[float]] | None = None  # name -> aligned with values
    future_covariates: Mapping[str, np.ndarray | Sequence[float]] | None = None  # name -> the steps ahead
    # Calendar channels computed by the client (len(values) + the model's horizon, 2 per feature), for protocols
    # without time information (OIP v2); JSON and CSV send time, and the service computes them.
    calendar: np.ndarray | None = None


@dataclass(frozen=True)
class ForecastJob:
    series: Sequence[SeriesInput]
    horizon: int | None = None  # None: the model's own
    levels: Sequence[float] = ()  # interval coverage in percent
    quantiles: Sequence[float] = ()  # probabilities strictly between 0 and 1
    # "model": the widths of the model's conformal table; "history": those widths rescaled on each series' own
    # past (app.calibration); "auto": "history" for the series whose past suffices, the model's for the rest
    calibration: str = "model"


@dataclass(frozen=True)
class WindowJob:
    """Forecasts of `horizon` steps from past origins of the series sent (cross-validation, anomaly scoring, stream
    appends): `cutoffs[i]` holds, ascending, how many values of series i each forecast knew (its origin; the
    forecast's first step is value `cutoff`). The windows are views of the series, never copies."""

    series: Sequence[SeriesInput]
    cutoffs: Sequence[np.ndarray]  # per series, int64
    horizon: int
    levels: Sequence[float] = ()


CalibrationMode = Literal["model", "history", "auto"]
CALIBRATIONS: tuple[str, ...] = get_args(CalibrationMode)


@dataclass(frozen=True)
class Calibration:
    """The factors that rescaled each series' interval widths, learned on its own history (app.calibration)."""

    checks: np.ndarray  # (B,) how many (past forecast, later value) pairs each series' factors rest on
    widening: dict[float, np.ndarray]  # level -> (B,) factor on the model's half-width


@dataclass
class ForecastResult:
    model: str
    version: str
    horizon: int
    levels: list[float]  # ascending
    ids: list[str]
    mean: np.ndarray  # (B, horizon) float64
    scale: np.ndarray  # (B,) float64, the unit of the intervals (the graph's scale, floored: contract.intervals)
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]  # level -> lower, upper (B, horizon)
    timestamps: list[pd.DatetimeIndex | None] = field(default_factory=list)
    quantiles: dict[float, np.ndarray] = field(default_factory=dict)  # probability -> (B, horizon), ascending
    calibration: Calibration | None = None  # when the job asked for "history", or "auto" with levels
    warnings: list[str] = field(default_factory=list)  # e.g. the series' frequency is not the model's (app.frequency)
    choices: list[Choice] | None = None  # model "auto": per series, what answered and why (app.auto)


@dataclass(frozen=True)
class Choice:
    """What model "auto" chose for one series, and the backtest on the series' last windows it chose on."""

    model: str  # a model's name, "naive" or "seasonal_naive"
    version: str | None
    windows: int  # backtest windows (0: the history was too short to backtest: the base model answered)
    mase: dict[str, float]  # candidate -> MASE over those windows (scaled by the in-sample seasonal naive error)
    season: int
    blended_with: str | None = None  # "naive" or "seasonal_naive", averaged half and half with `model`

    @property
    def label(self) -> str:
        return f"{self.model}+{self.blended_with}" if self.blended_with else self.model


@dataclass(frozen=True)
class Windows:
    """The answer to a WindowJob: which series each window came from, its origin, and the forecasts."""

    series: np.ndarray  # (W,) index of the job's series
    cutoffs: np.ndarray  # (W,) values known at the origin
    result: ForecastResult  # mean and intervals (W, horizon); `ids` are the series' ids
    indexes: list[pd.DatetimeIndex | None]  # per series: its values' timestamps, when it came with time
