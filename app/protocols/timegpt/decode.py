"""TimeGPT bodies into gatecast's jobs: the flat arrays into series, covariate columns by position into the model's
named covariates, levels, and what gatecast cannot do refused by name with what to do instead."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from app import finetuning
from app.errors import InvalidInput
from app.forecast_jobs import SeriesInput
from app.levels import check_levels
from app.protocols.timegpt.schemas import FORECAST_PARAMETERS, TimeGPTRequest
from app.registry import ModelRepository
from app.service import ModelService
from contract.words import count


def resolve(repository: ModelRepository, model: str | None) -> ModelService:
    """A gatecast model by name; TimeGPT's own model names mean the default model."""
    if model is None or model.lower().startswith("timegpt") or model.lower() == "azureai":
        return repository.resolve(None)
    return repository.resolve(model)


async def model_of(repository: ModelRepository, body: TimeGPTRequest) -> ModelService:
    """The fine-tuned model the call names, else its `model`."""
    if body.finetuned_model_id:
        return await finetuning.finetuned(repository, body.finetuned_model_id)
    return resolve(repository, body.model)


def refuse_unsupported(
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


def levels(level: list[float] | float | None) -> tuple[list[float], bool]:
    """The service's levels, and whether level 0 was asked (the client's quantile 0.5: the point forecast)."""
    asked = [] if level is None else [level] if isinstance(level, float | int) else list(level)
    zero = 0 in asked
    # The client turns quantiles into levels, one per quantile: 0.1 and 0.9 both ask for 80.
    return check_levels(sorted({lv for lv in asked if lv != 0})), zero


def one_level(level: list[float] | float | None) -> float:
    if level is None:
        return 99.0
    if isinstance(level, list):
        if len(level) != 1:
            raise InvalidInput(f"level {level}: anomaly detection takes one level, e.g. 99")
        level = level[0]
    return check_levels([level])[0]


def series_inputs(body: TimeGPTRequest, service: ModelService, future_h: int | None) -> list[SeriesInput]:
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
