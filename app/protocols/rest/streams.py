"""Live feeds over HTTP: PUT/GET/DELETE /streams/{id}, POST /streams/{id}/points, GET /streams (app.streams)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import numpy as np
import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from app.errors import InvalidInput, NotFound, UnsupportedMediaType
from app.levels import level_key
from app.protocols.protocol import direct
from app.protocols.rest.schemas import ErrorBody, StreamAppended, StreamInfo, StreamPage, StreamReadings, StreamSettings
from app.streams.feeds import Readings, StreamConfig, Streams, StreamState, check_id, widening

router = APIRouter(tags=["streams"])
Body = TypeVar("Body", bound=BaseModel)
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 409, 413, 415, 422, 503)
}


def _streams(request: Request) -> Streams:
    streams: Streams = request.app.state.streams
    return streams


def _body(schema: str) -> dict[str, Any]:
    """The request body for the schema: these routes read their JSON themselves (pydantic's JSON mode, where
    timestamps are ISO 8601 strings and numbers are never read as times)."""
    ref = {"schema": {"$ref": f"#/components/schemas/{schema}"}}
    return {"requestBody": {"required": True, "content": {"application/json": ref}}}


async def _read(request: Request, model: type[Body]) -> Body:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("application/json", ""):
        raise UnsupportedMediaType(f"Content-Type {media!r} is not read here; send application/json")
    return model.model_validate_json(await request.body())


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json")


def info(state: StreamState, streams: Streams) -> dict[str, Any]:
    return {
        "id": state.id,
        "model": state.model,
        "level": state.levels,
        "anomaly_level": state.anomaly_level,
        "adaptive": state.adaptive,
        "widening": {level_key(level): widening(state, level) for level in state.levels},
        "horizon": state.horizon,
        "freq": state.freq or _model_freq(streams, state.model),
        "points": state.points,
        "last_timestamp": state.last_time if state.points else None,
        "recent": np.frombuffer(state.values, dtype=np.float64),
        "created": datetime.fromtimestamp(state.created, UTC).isoformat(),
        "forecast": orjson.Fragment(state.forecast) if state.forecast else None,
    }


def _model_freq(streams: Streams, model: str) -> str | None:
    """A stream without its own `freq` has the model's; None only while its model is not loaded."""
    try:
        return streams.repository.resolve(model).card.freq
    except NotFound:
        return None


@router.put(
    "/streams/{stream_id}",
    response_model=StreamInfo,
    responses={**_ERRORS, 201: {"model": StreamInfo}},
    openapi_extra=_body("StreamSettings"),
    summary="Create a stream bound to a model, or change its settings",
)
async def put_stream(stream_id: str, request: Request) -> Response:
    """201 when created, 200 when updated. Readings are kept across an update; a new model forecasts from the
    next reading on. `freq` and `start` are fixed once readings arrived."""
    body = await _read(request, StreamSettings)
    config = StreamConfig(
        body.model, body.level, body.anomaly_level, body.horizon, body.freq, body.start, body.adaptive
    )
    created, state = await _streams(request).put(stream_id, config)
    return _json(info(state, _streams(request)), 201 if created else 200)


async def append(request: Request) -> Response:
    body = await _read(request, StreamReadings)
    stream_id = request.path_params["stream_id"]
    readings = Readings(body.values, body.timestamps, body.covariates, body.future_covariates, body.backfill)
    done = await _streams(request).append(stream_id, readings)
    return _json(
        {
            "id": stream_id,
            "points": done.state.points,
            "forecast": done.forecast,
            "needs": done.needs,
            "anomalies": done.anomalies,
        }
    )


# The middleware calls `append` directly (app.protocols.protocol.direct); this declares its schema.
@router.post(
    "/streams/{stream_id}/points",
    response_model=StreamAppended,
    responses=_ERRORS,
    openapi_extra=_body("StreamReadings"),
    summary="Append readings: the updated forecast and the anomalies among them",
)
@direct(append)
async def append_route(stream_id: str, request: Request) -> Response:
    """Appends one or many readings (a `StreamReadings`). The answer's forecast equals POST /forecast on the
    stream's last window; `anomalies` lists each reading outside the `anomaly_level` interval of the forecast
    made before it. A reading whose timestamp is not after the stream's last gets 409 and nothing is appended."""
    return await append(request)


@router.get(
    "/streams/{stream_id}", response_model=StreamInfo, responses=_ERRORS, summary="A stream and its last forecast"
)
async def get_stream(stream_id: str, request: Request) -> Response:
    streams = _streams(request)
    return _json(info(await streams.get(stream_id), streams))


@router.delete("/streams/{stream_id}", status_code=204, responses=_ERRORS, summary="Delete a stream")
async def delete_stream(stream_id: str, request: Request) -> Response:
    await _streams(request).delete(stream_id)
    return Response(status_code=204)


@router.get("/streams", response_model=StreamPage, responses=_ERRORS, summary="Stream ids, a page at a time")
async def list_streams(
    request: Request,
    after: Annotated[str, Query(max_length=128, description="the `next` of the previous page")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    if after:
        try:
            check_id(after)
        except InvalidInput as exc:
            raise InvalidInput(f"`after` must be a stream id: {exc.message}") from None
    ids, total = await _streams(request).page(after, limit + 1)  # one more: is there a next page?
    more = len(ids) > limit
    ids = ids[:limit]
    return _json({"streams": ids, "next": ids[-1] if more else None, "total": total})
