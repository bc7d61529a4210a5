"""Nixtla's TimeGPT API, so that the unmodified `nixtla` client (`NixtlaClient(base_url=<gatecast>)`) forecasts,
cross-validates and detects anomalies with gatecast's models.

The shapes are the ones nixtla 0.9's client sends and parses (nixtla/_payloads.py): series arrive flattened
(`y` with the per-series `sizes`, `start_datetime`, covariates as positional columns `X` and `X_future`),
and answers are flat arrays in the same series order. Every call becomes a `ForecastJob` for the model's
service (directly, or through app.backtest's windows), so the limits, keys, errors and metrics are those of
/forecast. Errors are answered `{"detail": message}`, as TimeGPT does (app.problems).

`model` names a gatecast model (`name` or `name@version`); TimeGPT's model names (`timegpt-*`, `azureai`)
mean the default model. Fine-tuning (`/v2/finetune`, `finetuned_model_id`, `finetune_steps` in forecast) runs as
a job on a trainer (app.training, training.finetune) and makes a model like any other, served from the
repository; a forecast's `finetune_steps` fine-tune on the history sent once, keyed by its content, and forecast
with the result. What gatecast cannot do (multivariate or categorical inputs, feature contributions) is refused
by name with what to do instead. Forecast intervals are calibrated
on the history sent (`"calibration": "auto"` of /forecast, app.calibration), as TimeGPT's own are conformal on
the series' past, for which the client sends 3 input windows and a horizon with `level`; a series too short
keeps the model's table (calibrated on its validation split), and `model_parameters={"calibration": "model"}`
asks for that table alone. Covariates have no names in this protocol: the columns map by position to the
model's declared covariates (GET /models/{name}), future ones (in `X_df`) first, then past ones
(`hist_exog_list`), each in the model's order.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, Strict

from app import auth, auto, backtest, deadlines, forecasting, frequency
from app.deps import RepositoryDep, TrainerDep
from app.errors import Conflict, InvalidInput, NotFound, RequestTimeout, ServiceUnavailable
from app.jobs import ForecastJob, ForecastResult, SeriesInput, WindowJob
from app.registry import ModelRepository, check_segment
from app.service import ModelService, check_levels, level_key
from app.training import Trainer
from contract import generation, jobs
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
    refit: bool = False  # re-fine-tune per window: cross-validation takes a fine-tuned model, not finetune_steps
    full_history: bool = False
    detection_size: Annotated[int, Strict(), Field(ge=1)] | None = None
    threshold_method: str | None = None


# TimeGPT's finetune_loss names gatecast trains with (training.finetune.LOSSES); the others are refused by name.
FINETUNE_LOSSES = ("default", "mae")
HISTORY_PREFIX = "ft-history-"  # models made by forecast(finetune_steps), one per history, pruned beyond a limit


class FinetuneRequest(BaseModel):
    """The nixtla client's `finetune` body (nixtla/_payloads.prepare_finetune_payload)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    series: TimeGPTSeries
    model: str = Field("timegpt-2.1", max_length=300)
    freq: str | None = Field(None, max_length=32)
    finetune_steps: Annotated[int, Strict(), Field(ge=1)] = 10
    finetune_depth: Literal[1, 2, 3, 4, 5] = 1
    finetune_loss: str = Field("default", max_length=32)
    output_model_id: str | None = Field(None, max_length=128)
    finetuned_model_id: str | None = Field(None, max_length=128)


MODEL_HEADER = "gatecast-model"  # TimeGPT's bodies have no field for it: the model and version that answered


def _answer(body: dict[str, Any], made_by: str | None = None) -> Response:
    headers = {MODEL_HEADER: made_by} if made_by else None
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json", headers=headers
    )


def _made_by(result: ForecastResult) -> str:
    """name@version; model "auto": each series' choice, in order (the naive forecasts have no version)."""
    if result.choices is None:
        return f"{result.model}@{result.version}"
    return ", ".join(c.label + (f"@{c.version}" if c.version else "") for c in result.choices)


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
async def forecast(body: TimeGPTRequest, repository: RepositoryDep, trainer: TrainerDep, request: Request) -> Response:
    """With `finetune_steps`, the model is first fine-tuned on the history sent (once: the same history, model and
    settings reuse the model made the first time), then forecasts; bounded by GATECAST_FINETUNE_MAX_STEPS and
    GATECAST_FINETUNE_TIMEOUT_S."""
    calibration = _refuse_unsupported(body, FORECAST_PARAMETERS, finetune=True).get("calibration")
    levels, zero = _levels(body.level)
    if body.model.lower() == auto.AUTO and not body.finetuned_model_id and not body.finetune_steps:
        series = _series(body, repository.resolve(None), future_h=body.h)
        result = await auto.forecast(
            repository, ForecastJob(series, body.h, levels, calibration=calibration or "model")
        )
    else:
        service = await _model_of(repository, body)
        if body.finetune_steps:
            service = await _finetuned_on_history(body, service, repository, trainer, request)
        h = service.horizon(body.h)
        series = _series(body, service, future_h=h)
        # A quantile head answers intervals of its own; a conformal model's are rescaled on history where it suffices.
        calibration = calibration or ("model" if service.card.quantile_levels else "auto")
        result = await forecasting.forecast(service, ForecastJob(series, h, levels, calibration=calibration))
    intervals = _flat_intervals(result.intervals, result.mean, zero)
    response = _answer({"mean": result.mean.ravel(), "intervals": intervals, "weights_x": None}, _made_by(result))
    response.headers.update(frequency.warning_headers(result.warnings))
    return response


@router.post("/v2/cross_validation", summary="TimeGPT API: cross-validation")
async def cross_validation(body: TimeGPTRequest, repository: RepositoryDep) -> Response:
    _refuse_unsupported(body)
    service = await _model_of(repository, body)
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
    answer = {"idxs": idxs, "sizes": sizes, "mean": mean, "intervals": intervals, "weights_x": None}
    return _answer(answer, f"{service.name}@{service.version}")


@router.post("/v2/anomaly_detection", summary="TimeGPT API: anomalies in the history")
async def anomaly_detection(body: TimeGPTRequest, repository: RepositoryDep) -> Response:
    """Every value with a full input window before it, against the one-step forecast made before it."""
    _refuse_unsupported(body)
    service = await _model_of(repository, body)
    level = _one_level(body.level)
    series = _series(body, service, future_h=None)
    # A series too short to score a single value is refused by name, not left out of the answer.
    cutoffs = [backtest.detection_cutoffs(s, len(s.values), None, 1, service.card.min_window) for s in series]
    return _answer(await _scored(service, series, cutoffs, 1, level, online=False), f"{service.name}@{service.version}")


@router.post("/v2/online_anomaly_detection", summary="TimeGPT API: anomalies in the last values")
async def online_anomaly_detection(body: TimeGPTRequest, repository: RepositoryDep) -> Response:
    """The last `detection_size` values of each series, each against the latest forecast (of `h` steps, made
    every `step_size` values) made before it."""
    _refuse_unsupported(body)
    service = await _model_of(repository, body)
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
    return _answer(await _scored(service, series, cutoffs, h, level, online=True), f"{service.name}@{service.version}")


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


def _refuse_unsupported(
    body: TimeGPTRequest, reads: frozenset[str] = frozenset(), finetune: bool = False
) -> dict[str, str]:
    """TimeGPT options gatecast cannot honour: refused by name, never ignored. Returns the model_parameters the
    route `reads`. Only forecast fine-tunes inside the call (`finetune`)."""
    if body.finetune_steps and not finetune:
        raise InvalidInput(
            f"finetune_steps={body.finetune_steps}: this route does not fine-tune inside the call (it would train "
            "once per window); fine-tune once with client.finetune(df, ...) and pass its finetuned_model_id"
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


# --- fine-tuning -------------------------------------------------------------------------------------------


async def _model_of(repository: ModelRepository, body: TimeGPTRequest) -> ModelService:
    """The fine-tuned model the call names, else its `model`."""
    if body.finetuned_model_id:
        return await _finetuned(repository, body.finetuned_model_id)
    return resolve(repository, body.model)


async def _finetuned(repository: ModelRepository, model_id: str) -> ModelService:
    """A fine-tuned model by id; one made by another worker moments ago is loaded from the repository first."""
    check_segment("finetuned_model_id", model_id)
    if model_id not in repository.models:
        await repository.sync()
    if model_id not in repository.models:
        raise NotFound(f"fine-tuned model {model_id!r} does not exist: client.finetuned_models() lists them")
    service = repository.get(model_id)
    if jobs.finetune_info(service.card.extra) is None:
        raise NotFound(f"{model_id!r} is a model, not a fine-tuned one: pass it as model={model_id!r}")
    return service


def _fine_tuning_base(service: ModelService, freq: str | None) -> None:
    """What fine-tuning needs of its base model and the series' frequency, checked before a job is made."""
    card = service.card
    if not card.covariates.empty:
        raise InvalidInput(
            f"{service.name} reads covariates {list(card.covariates.observed) or list(card.covariates.calendar)}; "
            "fine-tuning takes a model without covariates (the finetune call sends none)"
        )
    if freq is not None and not card.any_freq and not _same_freq(freq, card.freq):
        raise InvalidInput(
            f"the series' frequency is {freq!r}, and {service.name} forecasts at {card.freq!r}: fine-tune a model "
            "trained at your series' frequency (GET /models lists each model's freq)"
        )


def _same_freq(a: str, b: str) -> bool:
    try:
        return bool(pd.tseries.frequencies.to_offset(a) == pd.tseries.frequencies.to_offset(b))
    except ValueError:
        return False


def _finetune_settings(steps: int, loss: str, trainer: Trainer) -> None:
    limit = trainer.settings.finetune_max_steps
    if steps > limit:
        raise InvalidInput(f"finetune_steps {steps} exceeds {limit} (GATECAST_FINETUNE_MAX_STEPS): ask for fewer")
    if loss not in FINETUNE_LOSSES:
        raise InvalidInput(
            f"finetune_loss {loss!r} is not a loss gatecast trains with: use 'default' (the model's own training "
            "loss) or 'mae' (L1 on each window's scale)"
        )


def _created_by(request: Request) -> str:
    key = auth.presented_key(dict(request.headers))
    return f"key {hashlib.sha256(key.encode()).hexdigest()[:8]}" if key else "anonymous"


async def _run_finetune(
    trainer: Trainer,
    repository: ModelRepository,
    base: ModelService,
    series: list[SeriesInput],
    output_id: str,
    steps: int,
    depth: int,
    loss: str,
    created_by: str,
    job_id: str | None = None,
) -> ModelService:
    """Submit the fine-tuning job, wait for it (GATECAST_FINETUNE_TIMEOUT_S) and return the model it made, loaded."""
    timeout = trainer.settings.finetune_timeout_s
    deadlines.allow(timeout + 5.0)  # this call waits for its job; it answers its own timeout before the limit
    y = np.concatenate([np.asarray(s.values, dtype=np.float64) for s in series])
    sizes = np.asarray([len(s.values) for s in series], dtype=np.int64)
    spec = {
        "base_model": base.name,
        "base_version": base.version,
        "output_id": output_id,
        "steps": steps,
        "depth": depth,
        "loss": loss,
        "created_by": created_by,
        "series": len(series),
        "values": int(sizes.sum()),
    }

    def prepare(folder: Path) -> None:
        np.savez(folder / "series.npz", y=y, sizes=sizes)

    record = await trainer.submit("finetune", spec, prepare, job_id=job_id)
    done = await trainer.wait(record.id, timeout)
    if done is None:
        raise RequestTimeout(
            f"fine-tuning is still running after {timeout:g} s (GATECAST_FINETUNE_TIMEOUT_S) as job {record.id}: "
            f"GET /jobs/{record.id} follows it; the model {output_id!r} is served once it succeeds"
        )
    if done.state != "succeeded":
        if done.error_kind == "input":
            raise InvalidInput(f"fine-tuning {base.name} failed: {done.error}")
        raise ServiceUnavailable(f"fine-tuning {base.name} failed on its trainer (job {done.id}): {done.error}")
    return await _finetuned(repository, output_id)


@router.post("/v2/finetune", summary="TimeGPT API: fine-tune a model on your series")
async def finetune(body: FinetuneRequest, repository: RepositoryDep, trainer: TrainerDep, request: Request) -> Response:
    """Warm-starts from the model's checkpoint (or a fine-tuned model's), trains `finetune_steps` optimizer steps on
    windows of the series sent, recalibrates the intervals on their held-out tail, exports, validates and serves
    it; answers its id once this worker serves it."""
    if body.finetuned_model_id:
        base = await _finetuned(repository, body.finetuned_model_id)
    else:
        base = resolve(repository, body.model)
    _finetune_settings(body.finetune_steps, body.finetune_loss, trainer)
    _fine_tuning_base(base, body.freq if body.series.start_datetime else None)
    if body.series.X or body.series.X_future or body.series.categorical_exog:
        raise InvalidInput("fine-tuning reads the target alone: send no covariate columns")
    output_id = body.output_model_id or f"ft-{uuid.uuid4().hex[:16]}"
    check_segment("output_model_id", output_id)
    if (repository.root / output_id).exists():
        raise Conflict(f"a model named {output_id!r} already exists: choose another output_model_id")
    series = _series(TimeGPTRequest(series=body.series, model=body.model, freq=body.freq), base, future_h=None)
    trainer.check_available()
    made = await _run_finetune(
        trainer,
        repository,
        base,
        series,
        output_id,
        body.finetune_steps,
        body.finetune_depth,
        body.finetune_loss,
        _created_by(request),
    )
    return _answer({"finetuned_model_id": made.name})


async def _finetuned_on_history(
    body: TimeGPTRequest, base: ModelService, repository: ModelRepository, trainer: Trainer, request: Request
) -> ModelService:
    """forecast(finetune_steps=N): the model fine-tuned on this history, made once. The id is a digest of the base
    model's weights, the settings and the history, so the same call reuses it and a different one never does."""
    depth, loss = body.finetune_depth, body.finetune_loss
    if depth not in (1, 2, 3, 4, 5):
        raise InvalidInput(f"finetune_depth {depth} is not one of 1, 2, 3, 4, 5")
    _finetune_settings(body.finetune_steps, loss, trainer)
    _fine_tuning_base(base, body.freq if body.series.start_datetime else None)
    series = _series(body, base, future_h=None)
    trainer.check_available()
    digest = hashlib.sha256()
    digest.update(f"{base.card.sha256}|{body.finetune_steps}|{depth}|{loss}|{body.freq}".encode())
    digest.update(orjson.dumps(body.series.start_datetime))
    for s in series:
        digest.update(np.asarray(s.values, dtype=np.float64).tobytes())
        digest.update(b"|")
    key = digest.hexdigest()[:20]
    output_id = f"{HISTORY_PREFIX}{key}"
    if (repository.root / output_id).exists():
        return await _finetuned(repository, output_id)
    job_id = f"finetune-{key}"
    previous = jobs.read(trainer.root, job_id)
    if previous is not None and not previous.final:  # the same fine-tuning, asked a moment ago: wait for it
        deadlines.allow(trainer.settings.finetune_timeout_s + 5.0)
        done = await trainer.wait(job_id, trainer.settings.finetune_timeout_s)
        if done is not None and done.state == "succeeded":
            return await _finetuned(repository, output_id)
    if previous is not None:
        shutil.rmtree(jobs.job_dir(trainer.root, job_id), ignore_errors=True)
    steps = body.finetune_steps
    try:
        made = await _run_finetune(
            trainer, repository, base, series, output_id, steps, depth, loss, _created_by(request), job_id=job_id
        )
    except Conflict:  # the same fine-tuning, submitted by another call a moment ago: its model, once made
        done = await trainer.wait(job_id, trainer.settings.finetune_timeout_s)
        if done is None or done.state != "succeeded":
            raise ServiceUnavailable(f"the same fine-tuning (job {job_id}) did not succeed: retry") from None
        return await _finetuned(repository, output_id)
    await _prune_history_models(repository, trainer.settings.finetune_history_models, keep=output_id)
    return made


async def _prune_history_models(repository: ModelRepository, limit: int, keep: str) -> None:
    """The oldest models made by forecast(finetune_steps) beyond `limit` (GATECAST_FINETUNE_HISTORY_MODELS) are
    removed: each different history makes one, and every worker loads them all."""
    made = sorted(
        (p for p in repository.root.glob(f"{HISTORY_PREFIX}*") if p.name != keep),
        key=lambda p: p.stat().st_mtime,
    )
    for old in made[: max(0, len(made) - (limit - 1))]:
        _remove_model(repository, old.name)
    await repository.sync()


def _remove_model(repository: ModelRepository, name: str) -> None:
    """Out of the repository in one rename, then deleted: no reader sees half of it."""
    trash = repository.root / jobs.TRASH_DIR / f"{name}-{uuid.uuid4().hex[:8]}"
    trash.parent.mkdir(parents=True, exist_ok=True)
    os.rename(repository.root / name, trash)
    generation.advance(repository.root)  # every worker refuses it before this call answers
    shutil.rmtree(trash, ignore_errors=True)


def _finetuned_model(service: ModelService) -> dict[str, Any] | None:
    """TimeGPT's FinetunedModel (nixtla._types) for a fine-tuned model, None for any other."""
    info = jobs.finetune_info(service.card.extra)
    if info is None:
        return None
    return {
        "id": service.name,
        "created_at": info["created_at"],
        "created_by": info["created_by"],
        "base_model_id": info["base_model"],
        "steps": info["steps"],
        "depth": info["depth"],
        "loss": info["loss"],
        "model": info["base_model"],
        "freq": service.card.freq,
        "heldout_mase": {
            k.removeprefix("heldout_mase_"): v
            for k, v in service.card.metrics.get("finetune", {}).items()
            if k.startswith("heldout_mase_")
        },
    }


@router.get("/v2/finetuned_models", summary="TimeGPT API: the fine-tuned models")
async def finetuned_models(repository: RepositoryDep) -> Response:
    await repository.sync()  # one made or deleted through another worker moments ago
    found = []
    for name in sorted(repository.models):
        described = _finetuned_model(repository.get(name))
        if described is not None:
            found.append(described)
    return _answer({"finetuned_models": found})


@router.get("/v2/finetuned_models/{model_id}", summary="TimeGPT API: one fine-tuned model")
async def finetuned_model(model_id: str, repository: RepositoryDep) -> Response:
    described = _finetuned_model(await _finetuned(repository, model_id))
    return _answer(described or {})


@router.delete("/v2/finetuned_models/{model_id}", status_code=204, summary="TimeGPT API: delete a fine-tuned model")
async def delete_finetuned_model(model_id: str, repository: RepositoryDep) -> Response:
    """Removed from the repository in one rename, then unloaded here; every other worker and replica unloads it
    at its next poll of the repository."""
    service = await _finetuned(repository, model_id)
    _remove_model(repository, service.name)
    await repository.sync()
    return Response(status_code=204)


# The paths of this router answer errors as the TimeGPT API does, `{"detail": message}`, which the nixtla client
# shows (and reads on /validate_api_key).
_PATHS = frozenset(route.path for route in router.routes if hasattr(route, "path"))


def owns_error(path: str) -> bool:
    return path in _PATHS or path.startswith("/v2/finetuned_models/")


def error_body(problem: Any) -> dict[str, Any]:
    return {"detail": problem.message, "error": problem.code}
