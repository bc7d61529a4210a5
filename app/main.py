"""Wires the app: settings, lifespan (load and warm every model), middleware, routers, error handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import multiprocess
from pydantic import ValidationError

from app import __version__, metrics
from app.errors import GatecastError, Overloaded
from app.middleware import ServingMiddleware
from app.registry import ModelRepository
from app.routes import forecast, models, v2
from app.schemas import ForecastRequest
from app.settings import Settings, get_settings

log = logging.getLogger("gatecast")

DESCRIPTION = """LSTM and GRU forecasters served from ONNX with onnxruntime.

`POST /forecast` with JSON (below) or a `unique_id, ds, y` CSV; `GET /models` for what is loaded;
Open Inference Protocol v2 routes under `/v2` for Triton/KServe clients; Prometheus metrics at `/metrics`.
"""


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # Sessions run here, never on the event loop; one thread per concurrent batch is enough.
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gatecast-ort")
    repository = ModelRepository(settings, executor)
    app.state.repository = repository
    await repository.load_all()
    if not repository.models:
        log.error("no model loaded from %s; /v2/health/ready stays 503", settings.model_repository.resolve())
    app.state.started = True
    watcher = (
        asyncio.create_task(_watch(repository, settings.repository_poll_s)) if settings.repository_poll_s else None
    )
    try:
        yield
    finally:
        if watcher:
            watcher.cancel()
        await repository.close()
        executor.shutdown(wait=True)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # this worker's live gauges go with it
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


async def _watch(repository: ModelRepository, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await repository.reload_changed()
        except Exception:  # the watcher must outlive any one bad poll
            log.exception("model repository poll failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="gatecast", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.started = False
    app.add_middleware(ServingMiddleware, settings=settings)
    app.include_router(forecast.router)
    app.include_router(models.router)
    app.include_router(v2.router)
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_exception_handler(GatecastError, gatecast_error)  # type: ignore[arg-type]
    app.add_exception_handler(ValidationError, body_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, request_validation_error)  # type: ignore[arg-type]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus ForecastRequest, which /forecast reads itself (JSON or CSV) and refers to."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    request_schema = ForecastRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(request_schema.pop("$defs", {}))
    components["ForecastRequest"] = request_schema
    app.openapi_schema = schema
    return schema


async def metrics_endpoint() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


def _error(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    metrics.ERRORS.labels(reason=code).inc()
    if request.url.path.startswith("/v2/"):  # the inference protocol's error shape
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


async def gatecast_error(request: Request, exc: GatecastError) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, Overloaded) else None
    return _error(request, exc.status, exc.code, exc.message, headers)


def describe(errors: Sequence[Any]) -> str:
    """pydantic errors -> 'series.0.values.3: Input should be a finite number; ...' (first five)."""
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


async def body_validation_error(request: Request, exc: ValidationError) -> JSONResponse:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    if any(e["type"] in ("json_invalid", "json_type") for e in errors):
        return _error(request, 400, "malformed_json", f"the body is not valid JSON: {describe(errors)}")
    return _error(request, 422, "invalid_input", describe(errors))


async def request_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return _error(request, 422, "invalid_input", describe(exc.errors()))


def app_factory() -> FastAPI:
    """For `uvicorn --factory app.main:app_factory` (each worker builds its own app)."""
    logging.basicConfig(
        level=get_settings().log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return create_app()
