"""The Open Inference Protocol v2's HTTP routes, so `tritonclient[http]` works unchanged: Triton's binary tensor
extension, and the repository extension (index, load, unload) behind GATECAST_MODEL_CONTROL. Inference decodes with the
codec and reaches the model through the forecasting entry point, as /forecast does; each row of `values` is a series.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app import forecasting
from app.deps import RepositoryDep
from app.protocols.oip import adapter, codec
from app.protocols.protocol import direct
from app.registry import ModelRepository, version_key


class Readiness(BaseModel):
    ready: bool
    models: dict[str, list[str]] = Field(..., description="loaded models and their versions")
    failed: dict[str, str] = Field(..., description="name@version refused at load -> why")


class ProtocolError(BaseModel):
    """Errors on the /v2 routes, as the Open Inference Protocol defines them."""

    error: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ProtocolError} for code in (400, 401, 403, 404, 413, 415, 422, 500, 503)
}
router = APIRouter(prefix="/v2", tags=["open inference protocol v2"], responses=_ERRORS)


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return adapter.server_metadata(adapter.HTTP_EXTENSIONS)


@router.get("/health/live")
async def live() -> dict[str, bool]:
    """The process answers. (Kubernetes liveness.)"""
    return {"live": True}


@router.get("/health/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(request: Request, repository: RepositoryDep) -> Response:
    """200 once startup finished and at least one model is loaded; lists loaded and refused models."""
    is_ready = bool(getattr(request.app.state, "started", False) and repository.models)
    body = {
        "ready": is_ready,
        "models": {name: sorted(v, key=version_key) for name, v in repository.models.items()},
        "failed": repository.failures,
    }
    return JSONResponse(body, status_code=200 if is_ready else 503)


# --- statistics and configuration extensions (before /models/{name}, which would take "stats" as a name) -------


@router.get("/models/stats")
async def all_stats(repository: RepositoryDep) -> dict[str, Any]:
    """Inference statistics of every loaded version, counted in the worker process that answers."""
    return adapter.model_statistics(repository)


@router.get("/models/{name}/stats")
async def model_stats(name: str, repository: RepositoryDep) -> dict[str, Any]:
    return adapter.model_statistics(repository, name)


@router.get("/models/{name}/versions/{version}/stats")
async def model_version_stats(name: str, version: str, repository: RepositoryDep) -> dict[str, Any]:
    return adapter.model_statistics(repository, name, version)


@router.get("/models/{name}/config")
async def model_config(name: str, request: Request, repository: RepositoryDep) -> dict[str, Any]:
    return adapter.model_config(repository.get(name), request.app.state.settings)


@router.get("/models/{name}/versions/{version}/config")
async def model_version_config(name: str, version: str, request: Request, repository: RepositoryDep) -> dict[str, Any]:
    return adapter.model_config(repository.get(name, version), request.app.state.settings)


@router.get("/models/{name}")
async def model_metadata(name: str, repository: RepositoryDep) -> dict[str, Any]:
    return adapter.model_metadata(repository.get(name), repository)


@router.get("/models/{name}/versions/{version}")
async def model_version_metadata(name: str, version: str, repository: RepositoryDep) -> dict[str, Any]:
    return adapter.model_metadata(repository.get(name, version), repository)


@router.get("/models/{name}/ready")
async def model_ready(name: str, repository: RepositoryDep) -> dict[str, Any]:
    return {"name": name, "version": repository.get(name).version, "ready": True}


@router.get("/models/{name}/versions/{version}/ready")
async def model_version_ready(name: str, version: str, repository: RepositoryDep) -> dict[str, Any]:
    repository.get(name, version)
    return {"name": name, "version": version, "ready": True}


async def infer(request: Request) -> Response:
    """Decode, forecast through the model service, encode. The model comes from the path parameters."""
    repository: ModelRepository = request.app.state.repository
    service = repository.get(request.path_params["name"], request.path_params.get("version"))
    body = await request.body()
    inference, blobs = codec.decode(body, request.headers.get(codec.HEADER_LENGTH))
    tensors = [adapter.Tensor(t.name, t.shape, partial(codec.input_array, t, blobs)) for t in inference.inputs]
    result = await forecasting.forecast(service, adapter.forecast_job(service, tensors))
    content, header_length = codec.encode(service.name, service.version, inference, adapter.outputs(result))
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(content, media_type="application/octet-stream", headers={codec.HEADER_LENGTH: str(header_length)})


# The middleware calls `infer` directly (app.protocols.protocol.direct); these declare its schema and path parameters.
@router.post("/models/{name}/infer")
@direct(infer)
async def infer_latest(name: str, request: Request) -> Response:
    return await infer(request)


@router.post("/models/{name}/versions/{version}/infer")
@direct(infer)
async def infer_version(name: str, version: str, request: Request) -> Response:
    return await infer(request)


# --- repository extension ------------------------------------------------------------------------------


@router.post("/repository/index")
async def repository_index(repository: RepositoryDep) -> list[dict[str, str]]:
    return await adapter.repository_index(repository)


@router.post("/repository/models/{name}/load")
async def load_model(name: str, repository: RepositoryDep) -> dict[str, Any]:
    """Load or reload every version of `name` from disk (atomic swap; a bad file keeps the old one).
    Needs GATECAST_MODEL_CONTROL=true, and an admin key when keys are configured (app/auth.py)."""
    loaded = await repository.load(name)
    return {"name": name, "versions": sorted(loaded, key=version_key)}


@router.post("/repository/models/{name}/unload")
async def unload_model(name: str, repository: RepositoryDep) -> dict[str, Any]:
    await repository.unload(name)
    return {"name": name, "unloaded": True}
