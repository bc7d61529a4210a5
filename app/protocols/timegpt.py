"""Nixtla's TimeGPT API, so that the unmodified `nixtla` client (`NixtlaClient(base_url=<gatecast>)`) forecasts,
cross-validates and detects anomalies with gatecast's models.

The shapes are the ones nixtla 0.9's client sends and parses (nixtla/_payloads.py): series arrive flattened
(`y` with the per-series `sizes`, `start_datetime`, covariates as positional columns `X` and `X_future`),
and answers are flat arrays in the same series order. Every call becomes a `ForecastJob` for the model's
service (directly, or through app.backtest's windows), so the limits, keys, errors and metrics are those of
/forecast. Errors are answered `{"detail": message}`, as TimeGPT does (app.problems).

`model` names a gatecast model (`name` or `name@version`); TimeGPT's model names (`timegpt-*`, `azureai`)
mean the default model. What gatecast cannot do (fine-tuning inside a request, multivariate or categorical
inputs, feature contributions) is refused by name with what to do instead. Forecast intervals are calibrated
on the history sent (`"calibration": "auto"` of /forecast, app.calibration), as TimeGPT's own are conformal on
the series' past, for which the client sends 3 input windows and a horizon with `level`; a series too short
keeps the model's table (calibrated on its validation split), and `model_parameters={"calibration": "model"}`
asks for that table alone. Covariates have no names in this protocol: the columns map by position to the
model's declared covariates (GET /models/{name}), future ones (in `X_df`) first, then past ones
(`hist_exog_list`), each in the model's order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, Strict

from app import backtest, forecasting
from app.deps import RepositoryDep
from app.errors import InvalidInput
from app.jobs import ForecastJob, SeriesInput, WindowJob
from app.registry import ModelRepository
from app.service import ModelService, check_levels, level_key
from contract.words import count


class TimeGPTError(BaseModel):
    detail: str = Field(..., description="what is wrong and how to fix it (the nixtla client shows it)")
    error: str = Field(..., description="machine-readable reason, e.g. invalid_input")


router = APIRouter(
    tags=["TimeGPT API (nixtla client)"],
    responses={code: {"model": TimeGPTError} for code in (400, 401, 404, 413, 415, 422, 431, 503)},
)

Number = Annotated[float, Strict()]
# The model_parameters forecast reads (each a string, passed to the model service, which checks its value);
# any other key, and any key on the other routes, is refused by name.
FORECAST_PARAMETERS = frozenset({"calibration"})


class TimeGPTSeries(BaseModel):
    model_config = ConfigDict(extra="forbid")

    y: list[Number | None] = Field(..., description="the series' values, one after another")
    sizes: list[Annotated[int, Strict(), Field(ge=0, le=2**31 - 1)]] = Field(
        ..., min_length=1, description="values per series"
    )
    X: list[list[Number | None]] | None = Field(None, description="covariate columns aligned with y")
    X_future: list[list[Number | None]] | None = Field(None, description="future covariate columns, h per series")
    start_datetime: list[str] | None = Field(None, description="ISO 8601 time of each series' first value")
    categorical_exog: list[int] | None = None


class TimeGPTRequest(BaseModel):
    """One body for the four POST routes; each reads its own options and refuses what it cannot use."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    series: TimeGPTSeries
    model: str = Field("timegpt-2.1", max_length=300)
    h: Annotated[int, Strict(), Field(ge=1)] | None = None
    freq: str | None = Field(None, max_length=32)
    level: list[Number] | Number | None = None
    clean_ex_first: bool = True
    finetune_steps: Annotated[int, Strict(), Field(ge=0)] = 0
    finetune_depth: int = 1
    finetune_loss: str = "default"
    finetuned_model_id: str | None = None
    feature_contributions: bool = False
    feature_contributions_type: str | None = None
    multivariate: bool = False
    model_parameters: dict[str, Any] | None = Field(
        None,
        description='forecast reads {"calibration": "auto"} (the default: intervals calibrated on the history sent '
        'where it is long enough, as on /forecast), "history" (refused when too short) or "model" (the model\'s own '
        "table); other keys, and any on the other routes, are refused",
    )
    n_windows: Annotated[int, Strict(), Field(ge=1)] | None = None
    step_size: Annotated[int, Strict(), Field(ge=1)] | None = None
    hist_exog: list[int] | None = None
    refit: bool = False  # re-fine-tune per window: only meaningful with finetune_steps, which is refused
    full_history: bool = False
    detection_size: Annotated[int, Strict(), Field(ge=1)] | None = None
    threshold_method: str | None = None


def _answer(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


def resolve(repository: ModelRepository, model: str | None) -> ModelService:
    """A gatecast model by name; TimeGPT's own model names mean the default model."""
    if model is None or model.lower().startswith("timegpt") or model.lower() == "azureai":
        return repository.resolve(None)
    return repository.resolve(model)


@router.get("/validate_api_key", summary="TimeGPT API: is the key accepted")
async def validate_api_key() -> Response:
    """Reached only with a key gatecast accepts (or with keys switched off): the key check runs before."""
    return _answer({"detail": "API key is valid"})


@router.get("/model_params", summary="TimeGPT API: a model's input size and horizon")
async def model_params(
    repository: RepositoryDep, model: str | None = Query(None, max_length=300), freq: str | None = None
) -> Response:
    service = resolve(repository, model)
    return _answer({"detail": {"input_size": service.card.trained_window, "horizon": service.card.horizon}})


@router.get("/v2/models", summary="TimeGPT API: the models")
async def list_models(repository: RepositoryDep) -> Response:
    return _answer({"models": [{"name": name} for name in sorted(repository.models)]})


@router.post("/v2/forecast", summary="TimeGPT API: forecast")
async def forecast(body: TimeGPTRequest, repository: RepositoryDep) -> Response:
    service = resolve(repository, body.model)
    calibration = _refuse_unsupported(body, FORECAST_PARAMETERS).get("calibration", "auto")
    h = service.horizon(body.h)
    levels, zero = _levels(body.level)
    series = _series(body, service, future_h=h)
    result = await forecasting.forecast(service, ForecastJob(series, h, levels, calibration=calibration))
    intervals = _flat_intervals(result.intervals, result.mean, zero)
    return _answer({"mean": result.mean.ravel(), "intervals": intervals, "weights_x": None})


@router.post("/v2/cross_validation", summary="TimeGPT API: cross-validation")
async def cross_validation(body: TimeGPTRequest, repository: RepositoryDep) -> Response:
    service = resolve(repository, body.model)
    _refuse_unsupported(body)
    card = service.card
    levels, zero = _levels(body.level)
    series = _series(body, service, future_h=None)
    if body.full_history:  # the client's add_history: in-sample forecasts over as much history as possible
        h = card.horizon
        cutoffs = [backtest.history_cutoffs(len(s.values), h, card.min_window) for s in series]
    else:
        h = service.horizon(body.h)
        step = body.step_size or h
        n_windows = body.n_windows or 1
        cutoffs = [backtest.rolling_cutoffs(s, len(s.values), h, n_windows, step, card.min_window) for s in series]
    windows = await forecasting.windows(service, WindowJob(series, cutoffs, h, levels))
    # Rows: each window's steps that lie inside its series (in-sample windows may overlap its end), in order.
    offsets = np.cumsum([0] + [len(s.values) for s in series])
    steps = windows.cutoffs[:, None] + np.arange(h)[None, :]  # (W, h) positions in each series
    inside = steps < np.asarray([len(series[i].values) for i in windows.series])[:, None]
    idxs = (steps + offsets[windows.series][:, None])[inside]
    sizes = np.bincount(windows.series, weights=inside.sum(axis=1), minlength=len(series)).astype(np.int64)
    result = windows.result
    mean = result.mean[inside]
    intervals = _flat_intervals({lv: (lo[inside], hi[inside]) for lv, (lo, hi) in result.intervals.items()}, mean, zero)
    return _answer({"idxs": idxs, "sizes": sizes, "mean": mean, "intervals": intervals, "weights_x": None})


@router.post("/v2/anomaly_detection", summary="TimeGPT API: anomalies in the history")
async def anomaly_detection(body: TimeGPTRequest, repository: RepositoryDep) -> Response:
    """Every value with a full input window before it, against the one-step forecast made before it."""
    service = resolve(repository, body.model)
    _refuse_unsupported(body)
    level = _one_level(body.level)
    series = _series(body, service, future_h=None)
    # A series too short to score a single value is refused by name, not left out of the answer.
    cutoffs = [backtest.detection_cutoffs(s, len(s.values), None, 1, service.card.min_window) for s in series]
    return _answer(await _scored(service, series, cutoffs, 1, level, online=False))


@router.post("/v2/online_anomaly_detection", summary="TimeGPT API: anomalies in the last values")
async def online_anomaly_detection(body: TimeGPTRequest, repository: RepositoryDep) -> Response:
    """The last `detection_size` values of each series, each against the latest forecast (of `h` steps, made
    every `step_size` values) made before it."""
    service = resolve(repository, body.model)
    _refuse_unsupported(body)
    if body.threshold_method not in (None, "univariate"):
        raise InvalidInput(
            f"threshold_method {body.threshold_method!r} is not available: gatecast scores each series on its "
            "own; use threshold_method='univariate'"
        )
    if body.detection_size is None:
        raise InvalidInput("detection_size is missing: how many of the last values to score")
    level = _one_level(body.level)
    h = service.horizon(body.h)
    step = body.step_size or h
    if step > h:
        raise InvalidInput(f"step_size {step} exceeds h {h}: values between forecasts would go unscored")
    series = _series(body, service, future_h=None)
    min_window = service.card.min_window
    cutoffs = [backtest.detection_cutoffs(s, len(s.values), body.detection_size, step, min_window) for s in series]
    return _answer(await _scored(service, series, cutoffs, h, level, online=True))


async def _scored(
    service: ModelService,
    series: list[SeriesInput],
    cutoffs: list[np.ndarray],
    h: int,
    level: float,
    online: bool,
) -> dict[str, Any]:
    windows = await forecasting.windows(service, WindowJob(series, cutoffs, h, [level]))
    offsets = np.cumsum([0] + [len(s.values) for s in series])
    parts: list[backtest.PointScores] = []
    for i, s in enumerate(series):
        parts.append(backtest.score_points(np.asarray(s.values, dtype=np.float64), windows, i, level))
    key = level_key(level)
    answer: dict[str, Any] = {
        "sizes": np.asarray([len(p.index) for p in parts], dtype=np.int64),
        "mean": np.concatenate([p.mean for p in parts]),
        "intervals": {
            f"lo-{key}": np.concatenate([p.lo for p in parts]),
            f"hi-{key}": np.concatenate([p.hi for p in parts]),
        },
        "anomaly": np.concatenate([p.anomaly for p in parts]),
        "weights_x": None,
    }
    if online:
        answer["idxs"] = np.concatenate([p.index + offsets[i] for i, p in enumerate(parts)])
        answer["anomaly_score"] = np.concatenate([p.score for p in parts])
    return answer


def _refuse_unsupported(body: TimeGPTRequest, reads: frozenset[str] = frozenset()) -> dict[str, str]:
    """TimeGPT options gatecast cannot honour: refused by name, never ignored. Returns the model_parameters the
    route `reads`."""
    if body.finetune_steps or body.finetuned_model_id:
        raise InvalidInput(
            "gatecast serves trained LSTM/GRU models and does not fine-tune inside a request: set finetune_steps=0 "
            "and no finetuned_model_id; to fit your own series, train a model (README: 'Train your own')"
        )
    if body.multivariate:
        raise InvalidInput("multivariate=True is not available: gatecast forecasts each series on its own")
    if body.feature_contributions:
        raise InvalidInput("feature_contributions are not computed by gatecast: set feature_contributions=False")
    if body.series.categorical_exog:
        raise InvalidInput("categorical covariates are not read by gatecast models: encode them as numbers")
    return _model_parameters(body, reads)


def _model_parameters(body: TimeGPTRequest, reads: frozenset[str] = frozenset()) -> dict[str, str]:
    parameters = body.model_parameters or {}
    unread = sorted(set(parameters) - reads)
    if unread:
        where = f"this route reads {sorted(reads)}" if reads else f"only forecast reads {sorted(FORECAST_PARAMETERS)}"
        raise InvalidInput(f"model_parameters {unread} are not read here: {where}")
    for key, value in parameters.items():
        if not isinstance(value, str):
            raise InvalidInput(f'model_parameters["{key}"] is {value!r}; expected a string, e.g. "history"')
    return parameters


def _levels(level: list[float] | float | None) -> tuple[list[float], bool]:
    """The service's levels, and whether level 0 was asked (the client's quantile 0.5: the point forecast)."""
    asked = [] if level is None else [level] if isinstance(level, float | int) else list(level)
    zero = 0 in asked
    # The client turns quantiles into levels, one per quantile: 0.1 and 0.9 both ask for 80.
    return check_levels(sorted({lv for lv in asked if lv != 0})), zero


def _one_level(level: list[float] | float | None) -> float:
    if level is None:
        return 99.0
    if isinstance(level, list):
        if len(level) != 1:
            raise InvalidInput(f"level {level}: anomaly detection takes one level, e.g. 99")
        level = level[0]
    return check_levels([level])[0]


def _flat_intervals(
    intervals: dict[float, tuple[np.ndarray, np.ndarray]], mean: np.ndarray, zero: bool
) -> dict[str, np.ndarray] | None:
    out: dict[str, np.ndarray] = {}
    for level, (lo, hi) in intervals.items():
        out[f"lo-{level_key(level)}"] = lo.ravel()
        out[f"hi-{level_key(level)}"] = hi.ravel()
    if zero:
        out["lo-0"] = out["hi-0"] = mean.ravel()
    return out or None


def _series(body: TimeGPTRequest, service: ModelService, future_h: int | None) -> list[SeriesInput]:
    """The flat arrays -> one SeriesInput per series, ids '#0', '#1', ... in the client's series order."""
    payload = body.series
    sizes = np.asarray(payload.sizes, dtype=np.int64)
    if int(sizes.sum()) != len(payload.y):
        sent = count(len(payload.y), "value")
        raise InvalidInput(f"series.sizes add up to {int(sizes.sum())} but series.y has {sent}")
    starts = _starts(payload.start_datetime, len(sizes))
    y = _column("series.y", payload.y)
    past, future, ahead = _covariates(body, service, len(y), future_h, len(sizes))
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    out = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        missing = np.flatnonzero(np.isnan(y[a:b]))
        if len(missing):
            raise InvalidInput(
                f"series #{i} (the {_ordinal(i)} unique_id, sorted): value {int(missing[0])} is missing (NaN); "
                "gatecast forecasts complete series: fill or drop the gaps"
            )
        covariates = {name: column[a:b] for name, column in {**past, **future}.items()} or None
        later = {
            name: column[i * len(column) // len(sizes) : (i + 1) * len(column) // len(sizes)]
            for name, column in ahead.items()
        }
        out.append(
            SeriesInput(f"#{i}", y[a:b], None, starts[i], body.freq if starts[i] else None, covariates, later or None)
        )
    return out


def _covariates(
    body: TimeGPTRequest, service: ModelService, rows: int, future_h: int | None, n_series: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """X's columns by position -> the model's past and future covariates by name; X_future -> the future ones'
    values ahead. Without `hist_exog` (forecast), X holds the future columns first, then the past ones."""
    cov = service.card.covariates
    x = [_column(f"series.X[{j}]", column) for j, column in enumerate(body.series.X or [])]
    x_future = [_column(f"series.X_future[{j}]", column) for j, column in enumerate(body.series.X_future or [])]
    expected = (
        f"{service.name} reads {count(len(cov.future) + len(cov.past), 'covariate column')}, by position: future "
        f"{list(cov.future)} (in X_df) then past {list(cov.past)} (in hist_exog_list), each in this order"
        + (
            f"; its calendar features {list(cov.calendar)} come from the timestamps: do not send date_features"
            if cov.calendar
            else ""
        )
    )
    if any(len(column) != rows for column in x):
        raise InvalidInput(f"every series.X column must have one value per value of series.y ({rows})")
    if body.hist_exog is not None:
        if any(not 0 <= j < len(x) for j in body.hist_exog):
            raise InvalidInput(f"hist_exog {body.hist_exog} points outside series.X's {len(x)} columns")
        future_cols = [x[j] for j in range(len(x)) if j not in body.hist_exog]
        past_cols = [x[j] for j in body.hist_exog]
    else:
        future_cols, past_cols = x[: len(x_future)], x[len(x_future) :]
    if len(future_cols) != len(cov.future) or len(past_cols) != len(cov.past):
        raise InvalidInput(
            f"{len(future_cols)} future and {count(len(past_cols), 'past covariate column')} were sent; {expected}"
        )
    ahead: dict[str, np.ndarray] = {}
    if future_h is not None and cov.future:
        if len(x_future) != len(cov.future):
            raise InvalidInput(f"X_df has {count(len(x_future), 'covariate column')}; {expected}")
        if future_h != service.card.horizon:
            raise InvalidInput(
                f"{service.name} reads its future covariates for {service.card.horizon} steps: call with "
                f"h={service.card.horizon} and an X_df of that many rows per series, and keep the first {future_h}"
            )
        if any(len(column) != n_series * future_h for column in x_future):
            raise InvalidInput(f"every X_df column must have {future_h} rows per series")
        ahead = dict(zip(cov.future, x_future, strict=True))
    return dict(zip(cov.past, past_cols, strict=True)), dict(zip(cov.future, future_cols, strict=True)), ahead


def _column(name: str, values: list[float | None]) -> np.ndarray:
    """JSON numbers (null for NaN, as the client writes it) -> float64."""
    return np.asarray(values, dtype=np.float64)  # numpy reads None as NaN, in C


def _starts(values: list[str] | None, n: int) -> list[datetime | None]:
    if values is None:
        return [None] * n
    if len(values) != n:
        raise InvalidInput(f"series.start_datetime has {len(values)} entries for {n} series")
    out: list[datetime | None] = []
    for i, text in enumerate(values):
        try:
            out.append(datetime.fromisoformat(text))
        except ValueError:
            raise InvalidInput(f"series.start_datetime[{i}] is {text!r}: not an ISO 8601 time") from None
    return out


def _ordinal(i: int) -> str:
    n = i + 1
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# The paths of this router answer errors as the TimeGPT API does, `{"detail": message}`, which the nixtla client
# shows (and reads on /validate_api_key).
_PATHS = frozenset(route.path for route in router.routes if hasattr(route, "path"))


def owns_error(path: str) -> bool:
    return path in _PATHS


def error_body(problem: Any) -> dict[str, Any]:
    return {"detail": problem.message, "error": problem.code}
