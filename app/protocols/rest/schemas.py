"""Request and response bodies of the JSON API, with examples that work when pasted into /docs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, Strict

from app.calibration import HORIZONS, READINGS
from app.forecast_jobs import CalibrationMode

# Strict: "1.5" (a string) is refused instead of converted; allow_inf_nan=False refuses NaN and Infinity.
FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
FLOAT32_MAX = 3.4028234663852886e38

EXAMPLE_VALUES: list[Any] = [round(30.5 + 2.0 * ((i % 24) / 24), 3) for i in range(168)]


class SeriesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(..., min_length=1, max_length=256, description="your identifier, echoed back")
    values: list[FiniteFloat] = Field(..., min_length=1, description="observations, oldest first")
    timestamps: list[datetime] | None = Field(
        None, description="one per value, ascending; the answer then carries future timestamps"
    )
    start: datetime | None = Field(None, description="timestamp of the first value (with `freq`)")
    freq: str | None = Field(
        None, max_length=32, description="pandas offset alias (h, D, B, 15min, ...); the model's when absent"
    )
    covariates: dict[str, list[FiniteFloat]] | None = Field(
        None,
        description="name -> one value per value: the model's past and future covariates up to the forecast "
        "origin (GET /models/{name} lists them)",
    )
    future_covariates: dict[str, list[FiniteFloat]] | None = Field(
        None, description="name -> one value per step the model forecasts: its future covariates ahead"
    )


class ForecastRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "model": "etth1-lstm",
                    "horizon": 24,
                    "level": [80, 95],
                    "series": [
                        {"id": "transformer-1", "values": EXAMPLE_VALUES, "start": "2018-02-13T00:00:00", "freq": "h"}
                    ],
                }
            ]
        },
    )

    model: str | None = Field(None, max_length=300, description="`name` or `name@version`; the default model if absent")
    horizon: int | None = Field(
        None,
        validation_alias=AliasChoices("horizon", "h"),
        strict=True,
        description="steps ahead (alias `h`); default and maximum: the model's horizon",
    )
    level: list[Annotated[float, Strict()]] = Field(
        default_factory=list, max_length=20, description="interval coverage levels in percent, e.g. [80, 95]"
    )
    quantiles: list[Annotated[float, Strict()]] = Field(
        default_factory=list,
        max_length=20,
        description="probabilities strictly between 0 and 1, e.g. [0.1, 0.5, 0.9]: bounds of the same conformal "
        "intervals (quantile q is the upper bound at level 2q - 1 above 0.5, the lower one at 1 - 2q below it)",
    )
    calibration: CalibrationMode = Field(
        "model",
        description='interval widths: "model", the model\'s conformal table (calibrated on its validation split); '
        f'"history", those widths rescaled per series on forecasts of its own past (the last {READINGS} values sent, '
        f"or {HORIZONS} horizons' worth when longer), "
        "for series unlike the model's training data. Costs one forecast per past value scored. "
        '"auto": "history" for each series whose history is long enough for the levels asked, the model\'s widths '
        "for the others (checks 0), never refused for a short history",
    )
    series: list[SeriesIn] = Field(..., min_length=1)


class Interval(BaseModel):
    lo: list[float]
    hi: list[float]


class SeriesCalibration(BaseModel):
    checks: int = Field(
        ...,
        description='past (forecast, value) pairs the factors rest on; 0: the model\'s widths ("auto" with too '
        "little history)",
    )
    widening: dict[str, float] = Field(
        ..., description="by level, e.g. '80': the factor on the model's interval half-width"
    )


class SeriesChoice(BaseModel):
    name: str = Field(..., description='the model that answered: a model\'s name, "naive" or "seasonal_naive"')
    version: str | None = None
    backtest_windows: int = Field(..., description="windows of the series' own end it was chosen on (0: too short)")
    backtest_mase: dict[str, float] = Field(..., description="each candidate's MASE on those windows")
    season: int = Field(..., description="the season of the series' frequency (seasonal naive's lag)")
    blended_with: str | None = Field(
        None,
        description='"naive" or "seasonal_naive" where the answer is the mean of the model\'s forecast and that one\'s '
        "(quantiles and bounds averaged too): the model beat it on the backtest, by less than the margin",
    )


class SeriesForecast(BaseModel):
    id: str
    mean: list[float] = Field(..., description="point forecast, one value per step")
    intervals: dict[str, Interval] = Field(default_factory=dict, description="by level, e.g. '80'")
    quantiles: dict[str, list[float]] | None = Field(
        None, description="by probability, e.g. '0.9', one value per step; only when the request asked for quantiles"
    )
    # Not `datetime`: OpenAPI's date-time needs a UTC offset, and a series sent without one (local sensor
    # time, as in ETT) is answered without one too.
    timestamps: list[str] | None = Field(
        None, description="ISO 8601 timestamps of the forecast steps, in the time zone (or none) of the input"
    )
    calibration: SeriesCalibration | None = Field(
        None, description='only with calibration "history" or "auto": what the widths learned from the series\' past'
    )
    model: SeriesChoice | None = Field(None, description='only with model "auto": what answered this series, and why')


class ForecastResponse(BaseModel):
    model: str
    version: str
    horizon: int
    level: list[float]
    quantiles: list[float] | None = Field(None, description="the quantiles asked for, when any were")
    forecasts: list[SeriesForecast]
    warnings: list[str] | None = Field(
        None, description="what the answer may get wrong, e.g. a series whose frequency is not the model's"
    )


class ErrorBody(BaseModel):
    error: str = Field(..., description="machine-readable reason, e.g. invalid_input")
    message: str = Field(..., description="what is wrong and how to fix it")


class ModelVersionInfo(BaseModel):
    version: str
    cell: str
    input_window: dict[str, int]
    horizon: int
    freq: str
    season: int
    target: str
    dataset: dict[str, Any]
    provider: str
    cpu_fallback_nodes: list[str]
    interval_levels: list[float] = Field(..., description="the conformal grid, in percent")
    covariates: dict[str, list[str]] = Field(
        ..., description="the inputs beside the values, by role: past, future and calendar (computed from time)"
    )
    metrics: dict[str, Any]
    validation: dict[str, Any] | None = Field(
        None,
        description="the model against naive and seasonal naive on its validation split (MASE) and the verdict; "
        "null for artifacts trained before it was recorded",
    )
    transform: str = Field(
        "none", description="log: the model forecasts the logarithm of the series and refuses values <= 0"
    )
    members: list[dict[str, Any]] = Field(
        default_factory=list,
        description="an ensemble's members (cell, input window, hidden size): one graph answers their median, "
        "blended with naive by metrics.ensemble.naive_weight; empty for a single model",
    )
    trained_at: str
    sha256: str


class ModelInfo(BaseModel):
    name: str
    default_version: str
    versions: list[ModelVersionInfo]


_BACKTEST_EXAMPLE: dict[str, Any] = {
    "model": "etth1-lstm",
    "series": [{"id": "transformer-1", "values": EXAMPLE_VALUES * 2}],
}


class CrossValidationRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [{**_BACKTEST_EXAMPLE, "n_windows": 3, "step_size": 24, "level": [80, 95]}]},
    )

    model: str | None = Field(None, max_length=300, description="`name` or `name@version`; the default model if absent")
    horizon: int | None = Field(
        None, validation_alias=AliasChoices("horizon", "h"), strict=True, description="steps per window (alias `h`)"
    )
    n_windows: int = Field(1, ge=1, strict=True, description="forecasts from this many past origins")
    step_size: int | None = Field(None, ge=1, strict=True, description="values between origins; the horizon if absent")
    level: list[Annotated[float, Strict()]] = Field(default_factory=list, max_length=20)
    series: list[SeriesIn] = Field(..., min_length=1)


class Scores(BaseModel):
    mae: float = Field(..., description="mean absolute error over the points")
    mase: float | None = Field(
        ..., description="MAE over the seasonal-naive MAE of the history before each origin; null if that is 0"
    )
    coverage: dict[str, float] = Field(..., description="by level: the share of actuals inside the interval")


class BacktestWindow(Scores):
    cutoff: int = Field(..., description="position of the last value the forecast knew")
    cutoff_timestamp: str | None = None
    timestamps: list[str] | None = Field(None, description="of the forecast steps, when the series had time")
    actual: list[float]
    mean: list[float]
    intervals: dict[str, Interval] = Field(default_factory=dict)


class SeriesBacktest(Scores):
    id: str
    windows: list[BacktestWindow]


class CrossValidationResponse(BaseModel):
    model: str
    version: str
    horizon: int
    n_windows: int
    step_size: int
    level: list[float]
    series: list[SeriesBacktest]
    overall: Scores
    warnings: list[str] | None = Field(None, description="e.g. a series whose frequency is not the model's")


class AnomaliesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{**_BACKTEST_EXAMPLE, "level": 99}]})

    model: str | None = Field(None, max_length=300, description="`name` or `name@version`; the default model if absent")
    level: Annotated[float, Strict()] = Field(99, description="interval level in percent; outside it is an anomaly")
    detection_size: int | None = Field(
        None, ge=1, strict=True, description="score the last N values; all with a full window before them if absent"
    )
    series: list[SeriesIn] = Field(..., min_length=1)


class SeriesAnomalies(BaseModel):
    id: str
    index: list[int] = Field(..., description="positions of the scored values in the series")
    timestamps: list[str] | None = None
    actual: list[float]
    mean: list[float] = Field(..., description="the one-step forecast made from the values before each one")
    lo: list[float]
    hi: list[float]
    score: list[float] = Field(..., description="(actual - mean) / the interval's half-width: beyond +-1 is outside")
    anomaly: list[bool]
    anomalies: list[int] = Field(..., description="positions of the values outside the interval")


class AnomaliesResponse(BaseModel):
    model: str
    version: str
    level: float
    anomalies: int = Field(..., description="values outside the interval, over all series")
    scored: int
    series: list[SeriesAnomalies]


# --- live feeds (app.streams) -----------------------------------------------------------------------------


class StreamSettings(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"model": "etth1-lstm", "level": [80, 95], "anomaly_level": 99, "start": "2018-02-13T00:00:00"}
            ]
        },
    )

    model: str | None = Field(None, max_length=300, description="`name` or `name@version`; the default model if absent")
    level: list[Annotated[float, Strict()]] = Field(
        default_factory=list, max_length=20, description="interval levels of the answers, in percent"
    )
    anomaly_level: Annotated[float, Strict()] = Field(
        99, description="a reading outside the interval at this level of the forecast made before it is an anomaly"
    )
    horizon: int | None = Field(
        None,
        validation_alias=AliasChoices("horizon", "h"),
        strict=True,
        description="steps of the answers' forecasts (alias `h`); the model's when absent",
    )
    freq: str | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="pandas offset alias of the readings (h, 15min, D); the model's when absent",
    )
    start: Annotated[datetime, Strict()] | None = Field(
        None, description="time of the first reading (ISO 8601): readings then carry time without `timestamps`"
    )
    adaptive: Annotated[bool, Strict()] = Field(
        False,
        description="intervals that adapt: each level's width is widened or narrowed as the readings show how "
        "often it covers, so coverage holds on data unlike the model's (anomaly flags keep the model's widths)",
    )


class StreamReadings(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"values": [31.2]}]})

    values: list[FiniteFloat] = Field(..., min_length=1, description="new readings, oldest first")
    timestamps: list[Annotated[datetime, Strict()]] | None = Field(
        None, description="one per value (ISO 8601): each one step of the stream's freq after the previous reading"
    )
    covariates: dict[str, list[FiniteFloat]] | None = Field(
        None, description="name -> one value per reading: the model's past and future covariates"
    )
    future_covariates: dict[str, list[FiniteFloat]] | None = Field(
        None, description="name -> one value per step of the model's horizon, for the forecast after these readings"
    )
    backfill: bool = Field(
        False,
        description="history to start from: one forecast, after the last reading, and no anomaly flags or quality "
        "scores for these readings (the model runs once instead of once per reading)",
    )


class StreamForecast(BaseModel):
    model: str
    version: str
    mean: list[float]
    intervals: dict[str, Interval] = Field(default_factory=dict)
    timestamps: list[str] | None = None


class StreamAnomaly(BaseModel):
    index: int = Field(..., description="position of the reading in the stream (0: its first reading ever)")
    timestamp: str | None = None
    value: float
    mean: float = Field(..., description="the one-step forecast made before the reading arrived")
    lo: float
    hi: float
    score: float = Field(..., description="(value - mean) / the interval's half-width: beyond +-1 is outside")


class StreamAppended(BaseModel):
    id: str
    points: int = Field(..., description="readings received, ever")
    forecast: StreamForecast | None = Field(
        ..., description="after the last reading; null until the stream holds the model's minimum window"
    )
    needs: int = Field(..., description="readings still needed before the first forecast (0 once there is one)")
    anomalies: list[StreamAnomaly] = Field(
        ..., description="readings of this append outside the anomaly interval of the forecast made before them"
    )


class StreamInfo(BaseModel):
    id: str
    model: str
    level: list[float]
    anomaly_level: float
    adaptive: bool
    widening: dict[str, float] = Field(
        ..., description="level -> factor on the model's interval width (1 unless `adaptive`)"
    )
    horizon: int | None
    freq: str | None = Field(
        ..., description="of the readings: the one set, else the model's (null while the model is not loaded)"
    )
    points: int
    last_timestamp: str | None
    recent: list[float] = Field(..., description="the last readings, as many as the model reads, oldest first")
    created: str
    forecast: StreamForecast | None = Field(..., description="the last forecast, null before the first")


class StreamPage(BaseModel):
    streams: list[str] = Field(..., description="stream ids in ascending order")
    next: str | None = Field(..., description="pass as `after` for the next page; null on the last")
    total: int = Field(..., description="streams in the store")
