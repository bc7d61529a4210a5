"""Open Inference Protocol v2 (KServe / Triton) REST routes, so `tritonclient[http]` works unchanged.

Includes Triton's binary tensor data extension (`Inference-Header-Content-Length`), which tritonclient
uses by default, and the repository extension (index, load, unload) behind GATECAST_MODEL_CONTROL.
Errors on these routes are `{"error": "..."}`, as the protocol defines.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app import __version__
from app.contract import INPUT_NAME, OUTPUT_FORECAST, OUTPUT_SCALE
from app.deps import RepositoryDep
from app.errors import BadRequest, InvalidInput
from app.registry import LoadedModel, version_key
from app.schemas import ProtocolError, Readiness

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ProtocolError} for code in (400, 401, 403, 404, 413, 415, 422, 503)
}
router = APIRouter(prefix="/v2", tags=["open inference protocol v2"], responses=_ERRORS)
HEADER_LENGTH = "Inference-Header-Content-Length"
_DTYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT32": np.int32, "INT64": np.int64}


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return {"name": "gatecast", "version": __version__, "extensions": ["binary_tensor_data", "model_repository"]}


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


def _model(repository: RepositoryDep, name: str, version: str | None) -> LoadedModel:
    return repository.get(name, version)


def _metadata(loaded: LoadedModel, repository: RepositoryDep) -> dict[str, Any]:
    card = loaded.card
    return {
        "name": loaded.name,
        "versions": sorted(repository.models[loaded.name], key=version_key),
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, -1]}],
        "outputs": [
            {"name": OUTPUT_FORECAST, "datatype": "FP32", "shape": [-1, card.horizon]},
            {"name": OUTPUT_SCALE, "datatype": "FP32", "shape": [-1]},
        ],
    }


@router.get("/models/{name}")
async def model_metadata(name: str, repository: RepositoryDep) -> dict[str, Any]:
    return _metadata(_model(repository, name, None), repository)


@router.get("/models/{name}/versions/{version}")
async def model_version_metadata(name: str, version: str, repository: RepositoryDep) -> dict[str, Any]:
    return _metadata(_model(repository, name, version), repository)


@router.get("/models/{name}/ready")
async def model_ready(name: str, repository: RepositoryDep) -> dict[str, Any]:
    loaded = _model(repository, name, None)
    return {"name": name, "version": loaded.version, "ready": True}


@router.get("/models/{name}/versions/{version}/ready")
async def model_version_ready(name: str, version: str, repository: RepositoryDep) -> dict[str, Any]:
    _model(repository, name, version)
    return {"name": name, "version": version, "ready": True}


@router.post("/models/{name}/infer")
async def infer(name: str, request: Request, repository: RepositoryDep) -> Response:
    return await _infer(_model(repository, name, None), request)


@router.post("/models/{name}/versions/{version}/infer")
async def infer_version(name: str, version: str, request: Request, repository: RepositoryDep) -> Response:
    return await _infer(_model(repository, name, version), request)


async def _infer(loaded: LoadedModel, request: Request) -> Response:
    body = await request.body()
    header, blobs = _split_body(body, request.headers.get(HEADER_LENGTH))
    values = _input_tensor(header, blobs, loaded)
    forecasts, scales = await loaded.batcher.submit(list(values))
    outputs = {
        OUTPUT_FORECAST: np.stack(forecasts).astype(np.float32),
        OUTPUT_SCALE: np.stack(scales).astype(np.float32),
    }
    return _respond(loaded, header, outputs)


def _split_body(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    try:
        size = int(header_length) if header_length is not None else len(body)
        if not 0 < size <= len(body):
            raise ValueError(f"{HEADER_LENGTH} {size} does not fit a body of {len(body)} bytes")
        header = json.loads(body[:size])
    except ValueError as exc:
        raise BadRequest(f"the inference request could not be read: {exc}") from exc
    if not isinstance(header, dict):
        raise BadRequest("the inference request must be a JSON object")
    return header, body[size:]


def _input_tensor(header: dict[str, Any], blobs: bytes, loaded: LoadedModel) -> np.ndarray:
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidInput(f"send exactly one input tensor named {INPUT_NAME!r}, FP32 [batch, time]")
    spec = inputs[0]
    if spec.get("name") != INPUT_NAME:
        raise InvalidInput(f"input {spec.get('name')!r} is unknown; the model takes {INPUT_NAME!r}")
    dtype = _DTYPES.get(str(spec.get("datatype")))
    shape = spec.get("shape")
    if (
        dtype is None
        or not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(d, int) and d > 0 for d in shape)
    ):
        raise InvalidInput(f"input {INPUT_NAME!r} needs datatype FP32 (or FP64/INT) and shape [batch, time] > 0")
    binary_size = (spec.get("parameters") or {}).get("binary_data_size")
    try:
        if binary_size is not None:
            array = np.frombuffer(blobs[: int(binary_size)], dtype=dtype)
        else:
            array = np.asarray(spec.get("data"), dtype=dtype)
        array = array.reshape(shape).astype(np.float32)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"input {INPUT_NAME!r}: data does not match shape {shape}: {exc}") from exc
    if not np.all(np.isfinite(array)):
        raise InvalidInput(f"input {INPUT_NAME!r} holds NaN or Infinity; send finite values")
    if shape[1] < loaded.card.min_window:
        raise InvalidInput(
            f"input {INPUT_NAME!r} has {shape[1]} time steps; {loaded.name} needs at least {loaded.card.min_window}"
        )
    return array


def _respond(loaded: LoadedModel, header: dict[str, Any], outputs: dict[str, np.ndarray]) -> Response:
    requested = header.get("outputs")
    default_binary = bool((header.get("parameters") or {}).get("binary_data_output", False))
    wanted: dict[str, bool] = {}
    if isinstance(requested, list) and requested:
        for item in requested:
            name = item.get("name") if isinstance(item, dict) else None
            if name not in outputs:
                raise InvalidInput(f"output {name!r} is unknown; outputs are {sorted(outputs)}")
            wanted[name] = bool((item.get("parameters") or {}).get("binary_data", default_binary))
    else:
        wanted = {name: default_binary for name in outputs}
    entries, blobs = [], []
    for name, binary in wanted.items():
        array = outputs[name]
        entry: dict[str, Any] = {"name": name, "datatype": "FP32", "shape": list(array.shape)}
        if binary:
            raw = array.tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = array.ravel().tolist()
        entries.append(entry)
    body: dict[str, Any] = {"model_name": loaded.name, "model_version": loaded.version, "outputs": entries}
    if "id" in header:
        body["id"] = header["id"]
    if not blobs:
        return JSONResponse(body)
    head = json.dumps(body).encode()
    return Response(
        head + b"".join(blobs), media_type="application/octet-stream", headers={HEADER_LENGTH: str(len(head))}
    )


# --- repository extension ------------------------------------------------------------------------------


@router.post("/repository/index")
async def repository_index(repository: RepositoryDep) -> list[dict[str, str]]:
    rows = []
    for name, versions in repository.discover().items():
        for version in versions:
            state = "READY" if version in repository.models.get(name, {}) else "UNAVAILABLE"
            row = {"name": name, "version": version, "state": state}
            if f"{name}@{version}" in repository.failures:
                row["reason"] = repository.failures[f"{name}@{version}"]
            rows.append(row)
    return rows


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
