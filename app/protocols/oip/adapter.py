"""What both transports of the Open Inference Protocol v2 ask of the models, written once: HTTP (http, with the JSON and
binary codec) and gRPC (grpc_server) decode their own wire format into named `Tensor`s and call the functions here, so a
tensor passes the same checks and the same model service whichever way it came.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app import __version__
from app.errors import InvalidInput
from app.forecast_jobs import ForecastJob, ForecastResult, SeriesInput
from app.registry import ModelRepository, version_key
from app.service import ModelService
from app.settings import Settings
from contract import signature
from contract.covariates import calendar_channels

# What each transport answers of Triton's extensions (the binary tensor data extension is HTTP's own; gRPC
# carries raw bytes in every message).
GRPC_EXTENSIONS = ["model_repository", "statistics", "model_configuration"]
HTTP_EXTENSIONS = ["binary_tensor_data", *GRPC_EXTENSIONS]
DATATYPES: dict[str, type[np.generic]] = {
    "FP32": np.float32,
    "FP64": np.float64,
    "FP16": np.float16,
    "INT32": np.int32,
    "INT64": np.int64,
}
_FLOAT_MAX: dict[type[np.generic], float] = {k: float(np.finfo(k).max) for k in (np.float16, np.float32, np.float64)}


@dataclass(frozen=True)
class Tensor:
    """One input as a transport declared it. `read` decodes its data (after the names and shapes passed):
    an array of `shape`, checked by `checked`."""

    name: str
    shape: Sequence[int]
    read: Callable[[], np.ndarray]


def server_metadata(extensions: list[str]) -> dict[str, Any]:
    return {"name": "gatecast", "version": __version__, "extensions": extensions}


def model_statistics(repository: ModelRepository, name: str = "", version: str = "") -> dict[str, Any]:
    """Triton's statistics of every loaded version (no name), of one model's versions, or of one version;
    counted in the worker process that answers."""
    if version:
        services = [repository.get(name, version)]
    elif name:
        repository.get(name)  # 404 for an unknown model
        services = _versions(repository, name)
    else:
        services = [s for each in sorted(repository.models) for s in _versions(repository, each)]
    return {"model_stats": [s.stats.as_triton(s.name, s.version) for s in services]}


def _versions(repository: ModelRepository, name: str) -> list[ModelService]:
    return [repository.models[name][v] for v in sorted(repository.models[name], key=version_key)]


def model_config(service: ModelService, settings: Settings) -> dict[str, Any]:
    """The model's configuration as Triton writes it (batch dimension implicit, so `dims` exclude it), with
    gatecast's window, horizon and frequency as parameters."""
    card = service.card
    channels = signature.channels(card.covariates)
    kind = "KIND_GPU" if service.runtime.provider == "CUDAExecutionProvider" else "KIND_CPU"
    return {
        "name": service.name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": settings.max_batch_series,
        "input": [
            {"name": spec.name, "data_type": "TYPE_FP32", "dims": [-1, *(channels[a] for a in spec.axes[2:])]}
            for spec in signature.inputs(card.covariates)
        ],
        "output": [
            {"name": signature.FORECAST.name, "data_type": "TYPE_FP32", "dims": [card.horizon]},
            {"name": signature.SCALE.name, "data_type": "TYPE_FP32", "dims": [1], "reshape": {"shape": []}},
        ],
        "dynamic_batching": {
            "max_queue_delay_microseconds": settings.max_queue_delay_us,
            "default_queue_policy": {"max_queue_size": settings.max_queue_series},
        },
        "instance_group": [{"name": service.name, "kind": kind, "count": 1}],
        "parameters": {
            f"gatecast.{key}": {"string_value": str(value)}
            for key, value in {
                "cell": card.cell,
                "min_window": card.min_window,
                "trained_window": card.trained_window,
                "horizon": card.horizon,
                "freq": card.freq,
                "season": card.season,
            }.items()
        },
    }


def model_metadata(service: ModelService, repository: ModelRepository) -> dict[str, Any]:
    """The graph signature (contract.signature) with this model's horizon and covariate channels; -1 marks a
    dynamic axis. A covariate input's `parameters.channels` names its channels in order."""
    card = service.card
    lengths = {"horizon": card.horizon, "quantiles": len(card.quantile_levels), **signature.channels(card.covariates)}
    names = {
        signature.PAST.name: list(card.covariates.past),
        signature.FUTURE.name: list(card.covariates.future),
        signature.CALENDAR.name: calendar_channels(card.covariates.calendar),
    }

    def tensor(spec: signature.TensorSpec) -> dict[str, Any]:
        out: dict[str, Any] = {"name": spec.name, "datatype": "FP32", "shape": [lengths.get(a, -1) for a in spec.axes]}
        if spec.name in names:
            out["parameters"] = {"channels": names[spec.name]}
        if spec.name == signature.QUANTILES.name:
            out["parameters"] = {"levels": list(card.quantile_levels)}
        return out

    return {
        "name": service.name,
        "versions": sorted(repository.models[service.name], key=version_key),
        "platform": "onnxruntime_onnx",
        "inputs": [tensor(spec) for spec in signature.inputs(card.covariates)],
        "outputs": [tensor(spec) for spec in signature.outputs(len(card.quantile_levels))],
    }


async def repository_index(repository: ModelRepository) -> list[dict[str, str]]:
    """Every version on disk: READY when loaded, else UNAVAILABLE with the reason it was refused."""
    rows = []
    for name, versions in (await repository.discover()).items():
        for version in versions:
            state = "READY" if version in repository.models.get(name, {}) else "UNAVAILABLE"
            row = {"name": name, "version": version, "state": state}
            if f"{name}@{version}" in repository.failures:
                row["reason"] = repository.failures[f"{name}@{version}"]
            rows.append(row)
    return rows


def outputs(result: ForecastResult) -> dict[str, np.ndarray]:
    """The graph's outputs by name (the encoders write them as FP32, the model's own precision); a quantile head's
    `quantiles` (batch, horizon, levels) too."""
    out = {signature.FORECAST.name: result.mean, signature.SCALE.name: result.scale}
    if result.quantiles:
        out[signature.QUANTILES.name] = np.stack([result.quantiles[q] for q in sorted(result.quantiles)], axis=-1)
    return out


def datatype(name: str, declared: str) -> type[np.generic]:
    kind = DATATYPES.get(declared)
    if kind is None:
        raise InvalidInput(f"input {name!r} has datatype {declared!r}; send {', '.join(DATATYPES)} (FP32 is native)")
    return kind


def from_bytes(name: str, declared: str, shape: Sequence[int], buffer: bytes | memoryview) -> np.ndarray:
    """Raw little-endian tensor bytes (Triton's binary extension, gRPC's raw_input_contents) as a view of
    `buffer`, never a copy, checked like any other data."""
    kind = datatype(name, declared)
    count = math.prod(shape)
    itemsize = np.dtype(kind).itemsize
    if len(buffer) != count * itemsize:
        raise InvalidInput(
            f"input {name!r}: shape {list(shape)} of {declared} needs {count * itemsize} bytes; {len(buffer)} were sent"
        )
    return checked(name, declared, np.frombuffer(buffer, dtype=np.dtype(kind).newbyteorder("<")), shape)


def checked(name: str, declared: str, array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A flat array of `shape`'s size, refused unless every number fits `declared` (an INT32 beyond 2**31, an FP16
    beyond 65504, NaN anywhere), returned in `shape` as floats (integers widen to float64)."""
    kind = datatype(name, declared)
    if array.size != math.prod(shape):
        raise InvalidInput(
            f"input {name!r}: shape {list(shape)} needs {math.prod(shape)} values; {array.size} were sent"
        )
    _check_range(name, declared, array, kind)
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    return array.reshape(shape)


def _check_range(name: str, declared: str, array: np.ndarray, kind: type[np.generic]) -> None:
    if not array.size:
        return
    float_max = _FLOAT_MAX.get(kind)
    if float_max is not None:
        # One reduction for the common case: the largest magnitude is NaN or inf exactly when a value is.
        if not float(np.abs(array).max()) <= float_max:
            if not np.isfinite(array).all():
                raise InvalidInput(f"input {name!r} holds NaN or Infinity (or a number beyond float range)")
            raise InvalidInput(f"input {name!r}: a value exceeds {declared}'s range")
        return
    # An integer datatype; JSON data may still hold fractions or huge numbers.
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidInput(f"input {name!r} holds NaN or Infinity (or a number beyond float range)")
    info = np.iinfo(np.dtype(kind))
    if array.min() < info.min or array.max() > info.max or not np.array_equal(array, np.round(array)):
        raise InvalidInput(f"input {name!r}: {declared} holds whole numbers in [{info.min}, {info.max}]")


def forecast_job(service: ModelService, tensors: Sequence[Tensor]) -> ForecastJob:
    """One series per row of `values`; each covariate input (one per role, contract.signature) is split into
    the model service's covariates by channel name, so the service checks them as it checks JSON ones."""
    card = service.card
    specs = {spec.name: spec for spec in signature.inputs(card.covariates)}
    names = [t.name for t in tensors]
    unknown = [n for n in names if n not in specs]
    missing = [n for n in specs if n not in names]
    if unknown or missing or len(set(names)) != len(names):
        raise InvalidInput(
            f"inputs {names}: {service.name} takes exactly the inputs {list(specs)}, FP32, each once "
            f"(shapes in the model's metadata: GET /v2/models/{service.name})"
        )
    by_name = {t.name: t for t in tensors}
    values_tensor = by_name[signature.INPUT.name]
    if len(values_tensor.shape) != 2:
        raise InvalidInput(
            f"input {values_tensor.name!r} has shape {list(values_tensor.shape)}; it must be [batch, time]"
        )
    values = values_tensor.read()
    batch, steps = values.shape
    arrays = {}
    for name in (n for n in names if n != signature.INPUT.name):
        tensor = by_name[name]
        width = signature.channels(card.covariates)[specs[name].axes[-1]]
        length = steps if specs[name].axes[1] == "time" else steps + card.horizon
        if list(tensor.shape) != [batch, length, width]:
            raise InvalidInput(
                f"input {name!r} has shape {list(tensor.shape)}; with values of shape {list(values.shape)} it must be "
                f"[{batch}, {length}, {width}]"
            )
        arrays[name] = tensor.read()
    series = []
    for i, row in enumerate(values):
        covariates: dict[str, np.ndarray] = {}
        ahead: dict[str, np.ndarray] = {}
        if signature.PAST.name in arrays:
            for k, name in enumerate(card.covariates.past):
                covariates[name] = arrays[signature.PAST.name][i, :, k]
        if signature.FUTURE.name in arrays:
            for k, name in enumerate(card.covariates.future):
                covariates[name] = arrays[signature.FUTURE.name][i, :steps, k]
                ahead[name] = arrays[signature.FUTURE.name][i, steps:, k]
        calendar = arrays[signature.CALENDAR.name][i] if signature.CALENDAR.name in arrays else None
        series.append(
            SeriesInput(
                f"{values_tensor.name}[{i}]",
                row,
                covariates=covariates or None,
                future_covariates=ahead or None,
                calendar=calendar,
            )
        )
    return ForecastJob(series, quantiles=tuple(card.quantile_levels))  # a quantile head's output, as the graph's
