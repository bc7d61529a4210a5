"""POST /forecast: JSON or CSV (`unique_id, ds, y`) in; JSON or CSV (Accept: text/csv) out."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app import forecasting
from app.deps import RepositoryDep, SettingsDep
from app.errors import BadRequest, UnsupportedMediaType
from app.schemas import ErrorBody, ForecastRequest, ForecastResponse

router = APIRouter(tags=["forecast"])

# Bodies above this size are parsed in a worker thread so a large request never stalls the event loop.
_INLINE_PARSE_BYTES = 64 * 1024

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 415, 422, 503)}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ForecastRequest"}},
            "text/csv": {
                "schema": {"type": "string"},
                "example": "unique_id,ds,y\nsensor-1,2018-02-13 00:00:00,30.5\n...",
            },
        },
    }
}


@router.post(
    "/forecast",
    response_model=ForecastResponse,
    responses={**_ERRORS, 200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    openapi_extra=_BODY,
    summary="Forecast one or many series",
)
async def post_forecast(
    request: Request,
    repository: RepositoryDep,
    settings: SettingsDep,
    model: Annotated[str | None, Query(description="CSV bodies: model name or name@version")] = None,
    h: Annotated[int | None, Query(description="CSV bodies: horizon")] = None,
    level: Annotated[list[float] | None, Query(description="CSV bodies: interval levels, repeatable")] = None,
) -> Response:
    """JSON: a `ForecastRequest`. CSV (`Content-Type: text/csv`): columns `unique_id, ds, y` as pandas
    writes a long-format DataFrame, with `model`, `h` and `level` as query parameters. Answers JSON,
    or CSV when `Accept: text/csv`."""
    body = await request.body()
    parse = _parser(request.headers.get("content-type", ""), body, model, h, level or [])
    forecast_request = parse() if len(body) < _INLINE_PARSE_BYTES else await asyncio.to_thread(parse)
    plan = forecasting.plan(forecast_request, repository, settings)
    results = await forecasting.forecast(plan)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(forecasting.render_csv(plan, forecast_request, results), media_type="text/csv")
    return JSONResponse(forecasting.render_json(plan, forecast_request, results))


def _parser(content_type: str, body: bytes, model: str | None, h: int | None, level: list[float]):  # type: ignore[no-untyped-def]
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/json", ""):
        if not body:
            raise BadRequest("the body is empty; send a JSON ForecastRequest (see /docs)")

        def parse_json() -> ForecastRequest:
            return ForecastRequest.model_validate_json(body)

        return parse_json
    if media in ("text/csv", "application/csv"):
        return lambda: forecasting.request_from_csv(body, model, h, level)
    raise UnsupportedMediaType(f"Content-Type {media!r} is not read here; send application/json or text/csv")
