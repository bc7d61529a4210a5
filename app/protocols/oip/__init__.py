"""The Open Inference Protocol v2 (Triton, KServe), so `tritonclient` and KServe clients work unchanged: its wire
codec (codec: JSON and binary tensors), the adapter from tensors to jobs and from results to outputs (adapter), served
over HTTP (http) and gRPC (grpc_server, `inference.GRPCInferenceService` from inference.proto; `make grpc-code` writes
inference_pb2). Errors are `{"error": message}`, as the protocol defines (tritonclient decodes that key)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app import admission
from app.auth import Access
from app.protocols.oip import codec, http
from app.protocols.protocol import Problem, ServingProtocol

HEALTH = frozenset({"/v2/health/live", "/v2/health/ready"})


def error_body(problem: Problem) -> dict[str, Any]:
    return {"error": problem.message}


def access(method: str, path: str) -> Access:
    """Health is open for probes; loading and unloading models is model control; the rest needs a key."""
    if path in HEALTH:
        return Access.OPEN
    if method == "POST" and path.startswith("/v2/repository/models/") and path.endswith(("/load", "/unload")):
        return Access.CONTROL
    return Access.API_KEY


def decode_cost(body: bytes, headers: Mapping[str, str]) -> int:
    """A binary-tensor body's JSON part is as long as its header says; the rest is raw tensor bytes."""
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    json_part = headers.get(codec.HEADER_LENGTH.lower(), "")
    return admission.decode_cost(body, media, int(json_part) if json_part.isdigit() else None)


PROTOCOL = ServingProtocol(
    "oip",
    (http.router,),
    error_body,
    prefixes=("/v2/",),
    paths=frozenset({"/v2"}),
    access=access,
    decode_cost=decode_cost,
)
