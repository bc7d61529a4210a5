"""Wires the app: settings, lifespan (load and warm every model), middleware, routers, error handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from prometheus_client import multiprocess
from starlette.types import ASGIApp

from app import __version__, error_mapping, metrics, parent_watch
from app.admission import MemoryBudget, TooLittleMemory, derive_budget
from app.middleware import ServingMiddleware
from app.protocols import Protocols, oip, operations, rest, timegpt
from app.registry import ModelRepository
from app.settings import Settings, get_settings
from app.streams.feeds import Streams
from app.streams.store import open_store
from app.supervisor import STARTUP_FAILURE_ENV
from app.trainer_client import Trainer

log = logging.getLogger("gatecast")
GRPC_GRACE_S = 10.0  # calls in progress at shutdown get this long to finish

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
    app.state.trainer = Trainer(settings, repository)
    await repository.sync()
    if not repository.models:
        log.error("no model loaded from %s; /v2/health/ready stays 503", settings.model_repository.resolve())
    # Sized after the models are loaded: what the worker holds by now is not available to requests.
    try:
        app.state.memory_budget = MemoryBudget(derive_budget(settings.memory_budget_mb, settings.workers))
    except TooLittleMemory as exc:  # a startup failure: uvicorn stops the server instead of restarting workers
        log.error("gatecast cannot start: %s", exc)
        report = os.environ.get(STARTUP_FAILURE_ENV)
        if report:  # for `gatecast serve`, which exits with it (uvicorn's supervisor exits 0)
            Path(report).write_text(str(exc))
        await repository.close()
        raise
    app.state.started = True
    grpc_server = None
    if settings.grpc_port:
        from app.protocols.oip import grpc_server as oip_grpc  # grpcio loads only when gRPC is served

        grpc_server = await oip_grpc.start(settings, repository, app.state.memory_budget)
    store = open_store(settings.stream_store, settings.state_dir)
    app.state.streams = Streams(
        store, repository, settings.max_streams, settings.stream_max_append, settings.stream_idle_ttl_s
    )
    sweeper = asyncio.create_task(_sweep_streams(app.state.streams))
    poll = settings.repository_poll_s
    watcher = asyncio.create_task(_watch(repository, poll)) if poll else None
    hangup = _reload_on_sighup(repository)
    publisher = asyncio.create_task(_publish_metrics(metrics.PUBLISH_EVERY_S))
    try:
        yield
    finally:
        if hangup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if watcher:
            watcher.cancel()
        publisher.cancel()
        sweeper.cancel()
        if grpc_server is not None:
            await grpc_server.stop(grace=GRPC_GRACE_S)
        await app.state.trainer.close()
        await repository.close()
        await store.close()
        executor.shutdown(wait=True)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # this worker's live gauges go with it
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


async def _watch(repository: ModelRepository, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await _sync(repository, "poll")


async def _sweep_streams(streams: Streams) -> None:
    """Removes idle streams and publishes how many there are; every worker does, which is harmless: a sweep
    deletes only what is idle, whoever runs it."""
    every = min(60.0, streams.idle_ttl_s / 10)
    while True:
        try:
            removed = await streams.sweep()
            if removed:
                log.info("removed %d streams idle for more than %g s", removed, streams.idle_ttl_s)
            metrics.STREAMS.set(await streams.store.count())
        except Exception:  # a store that is down now may be back at the next pass
            log.exception("the stream sweep failed")
        await asyncio.sleep(every)


async def _publish_metrics(every: float) -> None:
    """This worker's per-request gauges, for scrapes answered by the other workers (app.metrics.ProcessValue)."""
    while True:
        await asyncio.sleep(every)
        metrics.publish()


async def _sync(repository: ModelRepository, why: str) -> None:
    try:
        await repository.sync()
    except Exception:  # the watcher and the signal handler must outlive any one bad pass
        log.exception("model repository %s failed", why)


def _reload_on_sighup(repository: ModelRepository) -> bool:
    """SIGHUP makes this worker re-read the model folder (the conventional "reload"), instead of killing it.
    Only possible on the main thread's loop: true for `gatecast serve`, not for an in-process test client."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def on_hangup() -> None:
        log.info("SIGHUP: re-reading the model repository")
        task = loop.create_task(_sync(repository, "reload on SIGHUP"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    except (RuntimeError, ValueError, NotImplementedError):
        return False
    return True


# Each protocol declares its routes, the paths it owns, its key rules, its decode cost and its error body.
PROTOCOLS = Protocols(rest.PROTOCOL, timegpt.PROTOCOL, oip.PROTOCOL, operations.PROTOCOL, fallback=rest.PROTOCOL)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # /docs and /redoc with their JavaScript and CSS served from the installed package (pinned), not a CDN:
    # they work on a machine with no internet. No online validator either (it would call out).
    app = FastAPIOffline(
        title="gatecast",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url=operations.DOCS_ASSETS,
        swagger_ui_parameters={"validatorUrl": None},
        # FastAPI's own OpenTelemetry: its check for a configured SDK cost ~10% of a request's CPU, so it is off
        # unless asked for (GATECAST_OPENTELEMETRY); Prometheus metrics are always on.
        telemetry={key: settings.opentelemetry for key in ("tracing", "metrics", "logs")},
    )
    app.state.settings = settings
    app.state.started = False
    outermost(app, ServingMiddleware, settings=settings, protocols=PROTOCOLS)
    for router in PROTOCOLS.routers:
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    error_mapping.install(app, lambda path: PROTOCOLS.owner(path).error_body)
    return app


def outermost(app: FastAPI, middleware: Callable[..., ASGIApp], **options: Any) -> None:
    """Wrap `middleware` around FastAPI's whole stack (add_middleware would put it inside FastAPI's error and
    body-limit layers): every request, whatever answers it (a route, FastAPI's own 404 and 405), passes the
    same guards, and the direct routes skip the rest."""
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: middleware(build(), **options)  # type: ignore[method-assign]


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the bodies that the protocols' direct routes read themselves and refer to."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for body in (body for protocol in PROTOCOLS.served for body in protocol.bodies):
        request_schema = body.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(request_schema.pop("$defs", {}))
        components[body.__name__] = request_schema
    app.openapi_schema = schema
    return schema


def app_factory() -> FastAPI:
    """For `uvicorn --factory app.main:app_factory` (each worker builds its own app)."""
    logging.basicConfig(
        level=get_settings().log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parent_watch.watch_supervisor()
    return create_app()
