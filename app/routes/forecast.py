"""POST /forecast: JSON or CSV (`unique_id, ds, y`) in; JSON or CSV (Accept: text/csv) out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import QueryParams

from app import forecasting
from app.errors import BadRequest, InvalidInput, UnsupportedMediaType
from app.registry import ModelRepository
from app.schemas import EXAMPLE_VALUES, ErrorBody, ForecastRequest, ForecastResponse
from app.settings import Settings

router = APIRouter(tags=["forecast"])

# Bodies above this size are parsed in a worker thread so a large request never stalls the event loop.
_INLINE_PARSE_BYTES = 64 * 1024

# Two days of hourly values: enough for the default model's minimum window (48).
_CSV_EXAMPLE = "unique_id,ds,y\n" + "".join(
    f"sensor-1,2018-02-{13 + i // 24} {i % 24:02d}:00:00,{v}\n" for i, v in enumerate(EXAMPLE_VALUES[:48])
)
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 415, 422, 503)}
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
        "description": "CSV bodies: interval levels, repeatable",
    },
]


@router.post(
    "/forecast",
    response_model=ForecastResponse,
    responses={**_ERRORS, 200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    openapi_extra={**_BODY, "parameters": _QUERY},
    summary="Forecast one or many series",
)
async def post_forecast(request: Request) -> Response:
    """JSON: a `ForecastRequest`. CSV (`Content-Type: text/csv`): columns `unique_id, ds, y` as pandas
    writes a long-format DataFrame, with `model`, `h` and `level` as query parameters. Answers JSON,
    or CSV when `Accept: text/csv`."""
    # The hot path takes no FastAPI dependencies: resolving them cost about 10% of a worker's CPU per
    # request (docs/benchmarks/profile.md). The repository and settings come straight from app.state.
    repository: ModelRepository = request.app.state.repository
    settings: Settings = request.app.state.settings
    body = await request.body()
    parse = _parser(request.headers.get("content-type", ""), body, request.query_params)
    forecast_request = parse() if len(body) < _INLINE_PARSE_BYTES else await asyncio.to_thread(parse)
    plan = forecasting.plan(forecast_request, repository, settings)
    results = await forecasting.forecast(plan)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(forecasting.render_csv(plan, forecast_request, results), media_type="text/csv")
    return JSONResponse(forecasting.render_json(plan, forecast_request, results))


def _csv_options(query: QueryParams) -> tuple[str | None, int | None, list[float]]:
    try:
        h = int(query["h"]) if "h" in query else None
        levels = [float(v) for v in query.getlist("level")]
    except ValueError as exc:
        raise InvalidInput(f"query parameters h (an integer) and level (numbers) could not be read: {exc}") from exc
    return query.get("model"), h, levels


def _parser(content_type: str, body: bytes, query: QueryParams) -> Callable[[], ForecastRequest]:
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/json", ""):
        if not body:
            raise BadRequest("the body is empty; send a JSON ForecastRequest (see /docs)")

        def parse_json() -> ForecastRequest:
            return ForecastRequest.model_validate_json(body)

        return parse_json
    if media in ("text/csv", "application/csv"):
        model, h, level = _csv_options(query)
        return lambda: forecasting.request_from_csv(body, model, h, level)
    raise UnsupportedMediaType(f"Content-Type {media!r} is not read here; send application/json or text/csv")
