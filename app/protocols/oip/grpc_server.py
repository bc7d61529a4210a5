"""The OIP v2 gRPC server of one worker, on its event loop beside uvicorn's HTTP. Every call passes the envelope
that every HTTP request passes (app.envelope), is parsed only after the key check, and is answered through the one
error mapping (app.error_mapping), its HTTP status turned into a gRPC code. Workers share the port with SO_REUSEPORT.
More: docs/design.md#appprotocolsoipgrpc_server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from grpc import aio
from prometheus_client import Histogram

from app import error_mapping, forecasting, metrics
from app.admission import MemoryBudget
from app.auth import Access
from app.envelope import Envelope
from app.errors import BadRequest, InvalidInput, shown
from app.protocols.oip import adapter
from app.protocols.oip import inference_pb2 as pb
from app.registry import ModelRepository
from app.settings import Settings

log = logging.getLogger("gatecast.grpc")

# gRPC's code for each HTTP status gatecast answers: the mapping grpc documents from HTTP, read the other way
# (a request too large for the server is RESOURCE_EXHAUSTED, as grpcio answers an oversized message itself).
CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    431: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}
MAX_DIMS = 8  # as the HTTP codec's schema
# gRPC's typed tensor field for each datatype gatecast reads (FP16 has none: it comes as raw bytes only).
CONTENTS = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT32": "int_contents", "INT64": "int64_contents"}
_CONTENT_DTYPES = {"fp32_contents": np.float32, "fp64_contents": np.float64, "int_contents": np.int32}
_CONTENT_DTYPES["int64_contents"] = np.int64
_ALL_CONTENTS = (*CONTENTS.values(), "bool_contents", "uint_contents", "uint64_contents", "bytes_contents")


class InferenceService:
    def __init__(self, settings: Settings, repository: ModelRepository, budget: MemoryBudget | None) -> None:
        self.settings = settings
        self.repository = repository
        self.budget = budget
        self.envelope = Envelope(settings)
        self._durations: dict[tuple[str, grpc.StatusCode], Histogram] = {}

    # --- the guard around every call ---------------------------------------------------------------------

    async def handle(self, method: str, raw: bytes, context: aio.ServicerContext[Any, Any]) -> Any:
        """One call: the envelope's checks, then the message parsed, then its work."""
        request_type, access = METHODS[method]
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        with self.envelope.open(self.budget, context.peer()) as call:
            try:
                try:
                    metadata = _headers(context.invocation_metadata())
                    self.envelope.admit(call, access, metadata, len(raw), "this message")
                    await self.repository.catch_up()  # a model published or removed through another worker
                    return await getattr(self, method)(_parse(request_type, raw))
                except asyncio.CancelledError as exc:
                    if not self.envelope.timed_out(call, exc):
                        code = grpc.StatusCode.CANCELLED  # the client went away or its deadline passed
                        raise
                    problem = self.envelope.problem(exc, "gRPC", method, timed_out=True)
                    code = grpc.StatusCode.DEADLINE_EXCEEDED
                except Exception as exc:  # noqa: BLE001 - mapped here; nothing may end the worker
                    problem = self.envelope.problem(exc, "gRPC", method)
                    code = CODES.get(problem.status, grpc.StatusCode.INTERNAL)
                error_mapping.count(problem)
                await context.abort(code, problem.message, tuple(problem.headers.items()))
                raise AssertionError("unreachable: abort raises")  # pragma: no cover
            finally:
                self._duration(method, code).observe(time.perf_counter() - started)

    def _duration(self, method: str, code: grpc.StatusCode) -> Histogram:
        """The duration histogram's child, cached (`labels()` takes a lock and sorts its arguments); methods x
        codes is small and fixed."""
        child = self._durations.get((method, code))
        if child is None:
            child = self._durations[(method, code)] = metrics.GRPC_DURATION.labels(method=method, code=code.name)
        return child

    # --- health and metadata -------------------------------------------------------------------------------

    async def ServerLive(self, request: pb.ServerLiveRequest) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=bool(self.repository.models))

    async def ModelReady(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        """False for a model or version that is not loaded (a readiness question has a yes or no answer)."""
        versions = self.repository.models.get(request.name, {})
        return pb.ModelReadyResponse(ready=bool(versions) and (not request.version or request.version in versions))

    async def ServerMetadata(self, request: pb.ServerMetadataRequest) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**adapter.server_metadata(adapter.GRPC_EXTENSIONS))

    async def ModelMetadata(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        service = self.repository.get(request.name, request.version or None)
        meta = adapter.model_metadata(service, self.repository)
        tensors = {
            key: [
                pb.ModelMetadataResponse.TensorMetadata(name=t["name"], datatype=t["datatype"], shape=t["shape"])
                for t in meta[key]
            ]
            for key in ("inputs", "outputs")
        }
        return pb.ModelMetadataResponse(
            name=meta["name"], versions=meta["versions"], platform=meta["platform"], **tensors
        )

    # --- statistics and configuration extensions: the same dictionaries HTTP answers, as messages ------------

    async def ModelStatistics(self, request: pb.ModelStatisticsRequest) -> pb.ModelStatisticsResponse:
        if request.version and not request.name:
            raise InvalidInput("a version was given without a model name: name the model, or send neither")
        stats = adapter.model_statistics(self.repository, request.name, request.version)
        response = pb.ModelStatisticsResponse()
        json_format.ParseDict(stats, response)
        return response

    async def ModelConfig(self, request: pb.ModelConfigRequest) -> pb.ModelConfigResponse:
        service = self.repository.get(request.name, request.version or None)
        config = adapter.model_config(service, self.settings)
        response = pb.ModelConfigResponse()
        json_format.ParseDict({"config": config}, response)
        return response

    # --- inference -----------------------------------------------------------------------------------------

    async def ModelInfer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        service = self.repository.get(request.model_name, request.model_version or None)
        _check_parameters("the request", request.parameters)
        raw = list(request.raw_input_contents)
        if raw and len(raw) != len(request.inputs):
            raise InvalidInput(
                f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; send one per input "
                "(in the order of `inputs`), or none and each input's `contents`"
            )
        tensors = [_tensor(t, raw[i] if raw else None) for i, t in enumerate(request.inputs)]
        result = await forecasting.forecast(service, adapter.forecast_job(service, tensors))
        return _response(request, service.name, service.version, adapter.outputs(result))

    # --- repository extension ------------------------------------------------------------------------------

    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest) -> pb.RepositoryIndexResponse:
        _one_repository(request.repository_name)
        rows = await adapter.repository_index(self.repository)
        models = [pb.RepositoryIndexResponse.ModelIndex(**row) for row in rows]
        if request.ready:
            models = [m for m in models if m.state == "READY"]
        return pb.RepositoryIndexResponse(models=models)

    async def RepositoryModelLoad(self, request: pb.RepositoryModelLoadRequest) -> pb.RepositoryModelLoadResponse:
        _one_repository(request.repository_name)
        _check_parameters(f"loading {shown(request.model_name)}", request.parameters)
        await self.repository.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: pb.RepositoryModelUnloadRequest) -> pb.RepositoryModelUnloadResponse:
        _one_repository(request.repository_name)
        # tritonclient always sends unload_dependents; gatecast's models have none, so either value holds.
        asked = {k: v for k, v in request.parameters.items() if k != "unload_dependents"}
        _check_parameters(f"unloading {shown(request.model_name)}", asked)
        await self.repository.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()


# The message each method reads, and what its caller must present (the rules of the protocol's HTTP routes:
# health is open, load and unload are model control): both known before the message is parsed.
METHODS: dict[str, tuple[type[Any], Access]] = {
    "ServerLive": (pb.ServerLiveRequest, Access.OPEN),
    "ServerReady": (pb.ServerReadyRequest, Access.OPEN),
    "ModelReady": (pb.ModelReadyRequest, Access.API_KEY),
    "ServerMetadata": (pb.ServerMetadataRequest, Access.API_KEY),
    "ModelMetadata": (pb.ModelMetadataRequest, Access.API_KEY),
    "ModelInfer": (pb.ModelInferRequest, Access.API_KEY),
    "ModelStatistics": (pb.ModelStatisticsRequest, Access.API_KEY),
    "ModelConfig": (pb.ModelConfigRequest, Access.API_KEY),
    "RepositoryIndex": (pb.RepositoryIndexRequest, Access.API_KEY),
    "RepositoryModelLoad": (pb.RepositoryModelLoadRequest, Access.CONTROL),
    "RepositoryModelUnload": (pb.RepositoryModelUnloadRequest, Access.CONTROL),
}
SERVICE = "inference.GRPCInferenceService"


def _parse(request_type: type[Any], raw: bytes) -> Any:
    try:
        return request_type.FromString(raw)
    except DecodeError as exc:
        raise BadRequest(
            f"the message is not a valid {request_type.DESCRIPTOR.full_name} ({exc}); send the protobuf message of "
            "the OIP v2 service (app/protocols/oip/inference.proto)"
        ) from None


def handlers(service: InferenceService) -> grpc.GenericRpcHandler:
    """The service's methods, each reading its message as bytes (parsed in `handle`, after the key check)."""
    methods = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods_by_name

    def method(name: str) -> grpc.RpcMethodHandler:
        async def call(raw: bytes, context: aio.ServicerContext[Any, Any]) -> Any:
            return await service.handle(name, raw, context)

        response_type = getattr(pb, methods[name].output_type.name)
        return grpc.unary_unary_rpc_method_handler(call, response_serializer=response_type.SerializeToString)

    return grpc.method_handlers_generic_handler(SERVICE, {name: method(name) for name in METHODS})


# --- decoding and encoding ------------------------------------------------------------------------------


def _headers(metadata: Iterable[tuple[str, str | bytes]] | None) -> list[tuple[str, str]]:
    """Text metadata as the header pairs the envelope reads (gRPC metadata keys are lower case already)."""
    return [(k, v) for k, v in (metadata or ()) if isinstance(v, str)]


def _one_repository(name: str) -> None:
    if name:
        raise InvalidInput(f"repository_name is {name!r}; gatecast serves one model repository: leave it empty")


def _check_parameters(where: str, parameters: Any) -> None:
    """gatecast reads no request, input or output parameters: each one sent is refused by name, never ignored."""
    if len(parameters):
        raise InvalidInput(f"{where}: parameters {sorted(parameters)} are not supported over gRPC; send none")


def _tensor(tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> adapter.Tensor:
    name, declared, shape = tensor.name, tensor.datatype, list(tensor.shape)
    _check_parameters(f"input {name!r}", tensor.parameters)
    if len(shape) > MAX_DIMS or any(d < 0 for d in shape):
        raise InvalidInput(f"input {name!r} has shape {shape}; at most {MAX_DIMS} axes, none negative")
    adapter.datatype(name, declared)
    sent = [f for f in _ALL_CONTENTS if len(getattr(tensor.contents, f))]
    if raw is not None:
        if sent:
            raise InvalidInput(f"input {name!r} has both raw_input_contents and contents ({sent}); send one of them")
        return adapter.Tensor(name, shape, lambda: adapter.from_bytes(name, declared, shape, raw))
    field = CONTENTS.get(declared)
    if field is None:
        raise InvalidInput(
            f"input {name!r}: {declared} data comes as raw_input_contents only (gRPC has no typed field)"
        )
    if sent and sent != [field]:
        raise InvalidInput(f"input {name!r} is {declared}, read from contents.{field}; it sent {sent}")

    def read() -> np.ndarray:
        values = np.asarray(getattr(tensor.contents, field), dtype=_CONTENT_DTYPES[field])
        return adapter.checked(name, declared, values, shape)

    return adapter.Tensor(name, shape, read)


def _response(
    request: pb.ModelInferRequest, model: str, version: str, outputs: dict[str, np.ndarray]
) -> pb.ModelInferResponse:
    """The outputs asked for (all when none are named), each as raw little-endian FP32 in raw_output_contents."""
    wanted: Sequence[str] = list(outputs)
    if request.outputs:
        wanted = []
        for item in request.outputs:
            if item.name not in outputs:
                raise InvalidInput(f"output {item.name!r} is unknown; outputs are {sorted(outputs)}")
            _check_parameters(f"output {item.name!r}", item.parameters)
            wanted.append(item.name)
    arrays = [outputs[name].astype("<f4") for name in wanted]
    return pb.ModelInferResponse(
        model_name=model,
        model_version=version,
        id=request.id,
        outputs=[
            pb.ModelInferResponse.InferOutputTensor(name=name, datatype="FP32", shape=list(array.shape))
            for name, array in zip(wanted, arrays, strict=True)
        ],
        raw_output_contents=[array.tobytes() for array in arrays],
    )


# --- the server -------------------------------------------------------------------------------------------


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start(settings: Settings, repository: ModelRepository, budget: MemoryBudget | None) -> aio.Server:
    """Listen on GATECAST_GRPC_PORT; the caller stops the server (`await server.stop(grace)`)."""
    server = aio.server(
        options=[
            ("grpc.so_reuseport", 1),  # one listener per worker (see the module's doc)
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", -1),
        ]
    )
    server.add_generic_rpc_handlers((handlers(InferenceService(settings, repository, budget)),))
    server.add_insecure_port(address(settings.host, settings.grpc_port))
    await server.start()
    log.info("OIP v2 gRPC on %s", address(settings.host, settings.grpc_port))
    return server
