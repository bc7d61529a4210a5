"""POST /forecast: JSON or CSV (`unique_id, ds, y`) in; JSON or CSV (Accept: text/csv) out.

Decode and render only: the checks, the model run and the intervals are the model service's (app.service).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Request, Response
from starlette.datastructures import QueryParams

from app import auto, forecasting, frequency
from app.errors import BadRequest, InvalidInput, UnsupportedMediaType
from app.forecast_jobs import CALIBRATIONS, ForecastJob, ForecastResult, SeriesInput
from app.levels import level_key
from app.protocols.protocol import direct
from app.protocols.rest.fastdecode import ForecastJobSpec, decode_common
from app.protocols.rest.schemas import EXAMPLE_VALUES, ErrorBody, ForecastRequest, ForecastResponse, SeriesIn
from app.registry import ModelRepository
from contract.longformat import read_long_csv, split_long_frame

router = APIRouter(tags=["forecast"])

# Bodies above this size are parsed in a worker thread so a large request never stalls the event loop.
_INLINE_PARSE_BYTES = 64 * 1024

# Two days of hourly values: enough for the default model's minimum window (48).
_CSV_EXAMPLE = "unique_id,ds,y\n" + "".join(
    f"sensor-1,2018-02-{13 + i // 24} {i % 24:02d}:00:00,{v}\n" for i, v in enumerate(EXAMPLE_VALUES[:48])
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 413, 415, 422, 431, 503)
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ForecastRequest"}},
            "text/csv": {
                "schema": {"type": "string"},
                "example": _CSV_EXAMPLE,
            },
        },
    }
}


# The query parameters of CSV requests, documented here because the handler reads them itself.
_QUERY = [
    {
        "name": "model",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "CSV bodies: model name or name@version",
    },
    {
        "name": "h",
        "in": "query",
        "required": False,
        "schema": {"type": "integer"},
        "description": "CSV bodies: horizon",
    },
    {
        "name": "level",
        "in": "query",
        "required": False,
        "schema": {"type": "array", "items": {"type": "number"}},
        "style": "form",
        "explode": True,
        "description": "CSV bodies: interval levels, repeated (level=80&level=95) or comma-separated (level=80,95)",
    },
    {
        "name": "quantiles",
        "in": "query",
        "required": False,
        "schema": {"type": "array", "items": {"type": "number"}},
        "style": "form",
        "explode": True,
        "description": "CSV bodies: quantiles, repeated or comma-separated (quantiles=0.1,0.9): columns forecast-q-0.1",
    },
    {
        "name": "calibration",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": list(CALIBRATIONS), "default": "model"},
        "description": "CSV bodies: interval widths from the model's table, or rescaled on each series' history",
    },
]


@router.post(
    "/forecast",
    response_model=ForecastResponse,
    responses={**_ERRORS, 200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    openapi_extra={**_BODY, "parameters": _QUERY},
    summary="Forecast one or many series",
)
@direct()
async def post_forecast(request: Request) -> Response:
    """JSON: a `ForecastRequest`. CSV (`Content-Type: text/csv`): columns `unique_id, ds, y` as pandas
    writes a long-format DataFrame, with `model`, `h`, `level` and `quantiles` as query parameters. Answers JSON,
    or CSV when `Accept: text/csv`. CSV ids are text, answered exactly as sent, except that an id a
    spreadsheet would run as a formula (starting with = + - @, tab or carriage return) is prefixed with '."""
    # app.middleware calls this directly (a DirectRoute): no FastAPI dependencies here, the repository comes
    # straight from app.state.
    repository: ModelRepository = request.app.state.repository
    body = await request.body()
    decode = _decoder(request.headers.get("content-type", ""), body, request)
    model, job = decode() if len(body) < _INLINE_PARSE_BYTES else await asyncio.to_thread(decode)
    if model == auto.AUTO:
        result = await auto.forecast(repository, job)
    else:
        result = await forecasting.forecast(repository.resolve(model), job)
    headers = frequency.warning_headers(result.warnings)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(render_csv(result), media_type="text/csv", headers=headers)
    return Response(render_json(result), media_type="application/json", headers=headers)


Decoded = ForecastJobSpec


def _decoder(content_type: str, body: bytes, request: Request) -> Callable[[], Decoded]:
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/json", ""):
        if not body:
            raise BadRequest("the body is empty; send a JSON ForecastRequest (see /docs)")
        return lambda: decode_json(body)
    if media in ("text/csv", "application/csv"):
        model, h, level, quantiles, calibration = _csv_options(request.query_params)  # JSON never needs them
        return lambda: decode_csv(body, model, h, level, quantiles, calibration)
    raise UnsupportedMediaType(f"Content-Type {media!r} is not read here; send application/json or text/csv")


def decode_json(body: bytes) -> Decoded:
    common = decode_common(body)
    if common is not None:
        return common
    request = ForecastRequest.model_validate_json(body)
    series = [series_input(s) for s in request.series]
    return request.model, ForecastJob(series, request.horizon, request.level, request.quantiles, request.calibration)


def series_input(s: SeriesIn) -> SeriesInput:
    return SeriesInput(s.id, s.values, s.timestamps, s.start, s.freq, s.covariates, s.future_covariates)


def decode_csv(
    body: bytes,
    model: str | None,
    horizon: int | None,
    level: list[float],
    quantiles: list[float] | None = None,
    calibration: str = "model",
) -> Decoded:
    """A `unique_id, ds, y` table (as pandas writes it) -> one series per id, with its timestamps. Other
    columns are covariates by name, and rows after a series' last `y` (left empty) carry its future
    covariates; the model service refuses, by name, any the model does not read."""
    frame = read_long_csv(body)
    index = [str(c) for c in frame.columns if str(c).startswith("Unnamed: ")]
    if index:
        raise InvalidInput(
            f"columns {index} are not read: an unnamed column is a DataFrame index; write the CSV with index=False"
        )
    parsed = split_long_frame(frame, allow_gaps=False, future_rows=True)
    series = [
        SeriesInput(s.id, s.values, s.timestamps, None, s.freq, s.covariates or None, s.future or None) for s in parsed
    ]
    return model, ForecastJob(series, horizon, level, quantiles or (), calibration)


def _csv_options(query: QueryParams) -> tuple[str | None, int | None, list[float], list[float], str]:
    """`model`, `h`, `level`, `quantiles` (lists repeated, `level=80&level=95`, or comma-separated) and
    `calibration` (the model service refuses a value it does not know)."""
    try:
        h = int(query["h"]) if "h" in query else None
        levels = [float(v) for item in query.getlist("level") for v in item.split(",")]
        quantiles = [float(v) for item in query.getlist("quantiles") for v in item.split(",")]
    except ValueError as exc:
        raise InvalidInput(
            f"query parameters h (an integer), level and quantiles (numbers) could not be read: {exc}"
        ) from exc
    return query.get("model"), h, levels, quantiles, query.get("calibration", "model")


def render_json(result: ForecastResult) -> bytes:
    """A ForecastResponse. Numbers are written as float32 arrays (orjson.OPT_SERIALIZE_NUMPY): the shortest
    decimal that reads back to the same float32 (8.766272, not 8.766271591186523). The model computes in
    float32, so the longer digits were never information, and they were half of the answer's bytes."""
    keys = {level: level_key(level) for level in result.levels}
    mean = result.mean.astype(np.float32)
    bounds = {
        keys[level]: (lo.astype(np.float32), hi.astype(np.float32)) for level, (lo, hi) in result.intervals.items()
    }
    quantiles = {quantile_key(q): values.astype(np.float32) for q, values in result.quantiles.items()}
    calibration = result.calibration
    forecasts = []
    for i, series_id in enumerate(result.ids):
        entry: dict[str, Any] = {
            "id": series_id,
            "mean": mean[i],
            "intervals": {key: {"lo": lo[i], "hi": hi[i]} for key, (lo, hi) in bounds.items()},
        }
        if quantiles:
            entry["quantiles"] = {key: values[i] for key, values in quantiles.items()}
        future = result.timestamps[i]
        if future is not None:
            entry["timestamps"] = [t.isoformat() for t in future]
        if result.choices is not None:
            choice = result.choices[i]
            entry["model"] = {
                "name": choice.model,
                "version": choice.version,
                "backtest_windows": choice.windows,
                "backtest_mase": choice.mase,
                "season": choice.season,
                "blended_with": choice.blended_with,
            }
        if calibration is not None:
            entry["calibration"] = {
                "checks": int(calibration.checks[i]),
                "widening": {level_key(level): float(f[i]) for level, f in calibration.widening.items()},
            }
        forecasts.append(entry)
    answer: dict[str, Any] = {
        "model": result.model,
        "version": result.version,
        "horizon": result.horizon,
        "level": result.levels,
        "forecasts": forecasts,
    }
    if quantiles:
        answer["quantiles"] = list(result.quantiles)
    if result.warnings:
        answer["warnings"] = result.warnings
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def render_csv(result: ForecastResult) -> str:
    """Long format: unique_id, ds (or step), forecast, model, version, forecast-lo-80, forecast-hi-80, ...,
    forecast-q-0.9, ..."""
    h = result.horizon
    steps = np.arange(1, h + 1)
    columns: dict[str, Any] = {
        "unique_id": np.repeat([spreadsheet_safe(i) for i in result.ids], h),
        "ds": [t for future in result.timestamps for t in (future if future is not None else steps)],
        "forecast": result.mean.ravel(),
    }
    if result.choices is not None:  # model "auto": the model that answered each series
        columns["model"] = np.repeat([c.label for c in result.choices], h)
        columns["version"] = np.repeat([c.version or "" for c in result.choices], h)
    else:  # a CSV has no envelope: every row names the model that made it, as the JSON answer does once
        columns["model"] = result.model
        columns["version"] = result.version
    for level, (lo, hi) in result.intervals.items():
        columns[f"forecast-lo-{level_key(level)}"] = lo.ravel()
        columns[f"forecast-hi-{level_key(level)}"] = hi.ravel()
    for q, values in result.quantiles.items():
        columns[f"forecast-q-{quantile_key(q)}"] = values.ravel()
    buffer = io.StringIO()
    pd.DataFrame(columns).to_csv(buffer, index=False)
    return buffer.getvalue()


# OWASP CSV injection: a cell starting with one of these is run as a formula by spreadsheet programs.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """Prefix a cell a spreadsheet would evaluate with ' so it is shown as text (OWASP's CSV-injection rule)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def quantile_key(q: float) -> str:
    """0.1 -> '0.1': the shortest text that reads back as the same number."""
    return repr(float(q))
