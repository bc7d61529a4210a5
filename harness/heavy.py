"""The heavy jobs of issue 32: requests at the limits of what the server admits, of the kinds that turn one
request into many model windows or a large answer. bench/fairness.py measures small calls beside them;
tests/live/test_memory_limit.py fires them all at once at a server inside a memory limit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np

MODEL = "etth1-lstm"
Heavy = Callable[[httpx.AsyncClient, int], Awaitable[tuple[int, float]]]


def values(n: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (20 + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.3, n).cumsum() * 0.05).round(3).tolist()


def heavy_requests(grpc_address: str) -> dict[str, Heavy]:
    """Each kind: a coroutine that sends one heavy request (the i-th of its kind) and returns (status, seconds)."""
    cv = {
        "model": MODEL,
        "horizon": 1,
        "n_windows": 10_000,
        "step_size": 1,
        "series": [{"id": "a", "values": values(10_049)}],
    }
    anomalies = {"model": MODEL, "level": 99, "series": [{"id": "a", "values": values(10_048)}]}
    calibration = {
        "model": MODEL,
        "level": [80, 95],
        "calibration": "history",
        "series": [{"id": str(i), "values": values(1_100, i)} for i in range(9)],
    }
    y = values(9_048)
    timegpt = {
        "model": MODEL,
        "h": 1,
        "freq": "h",
        "n_windows": 9_000,
        "step_size": 1,
        "series": {"y": y, "sizes": [len(y)]},
    }
    big = {"model": MODEL, "series": [{"id": str(i), "values": values(168, i % 50)} for i in range(10_000)]}
    big_body = json.dumps(big).encode()
    tensor = np.asarray([values(168, i % 50) for i in range(10_000)], dtype=np.float32)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "values",
                    "shape": list(tensor.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": tensor.nbytes},
                }
            ]
        }
    ).encode()
    oip_headers = {"inference-header-content-length": str(len(head)), "content-type": "application/octet-stream"}

    def timed(send: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]) -> Any:
        async def run(client: httpx.AsyncClient, i: int) -> tuple[int, float]:
            started = time.perf_counter()
            r = await send(client, i)
            return r.status_code, time.perf_counter() - started

        return run

    async def stream(client: httpx.AsyncClient, i: int) -> httpx.Response:
        stream_id = f"heavy-{i}-{time.monotonic_ns()}"
        await client.put(f"/streams/{stream_id}", json={"model": MODEL, "level": [80]})
        return await client.post(f"/streams/{stream_id}/points", json={"values": values(1_000, i)})

    async def grpc(client: httpx.AsyncClient, i: int) -> tuple[int, float]:
        import tritonclient.grpc as tgrpc

        def call() -> int:
            grpc_client = tgrpc.InferenceServerClient(grpc_address)
            data = tgrpc.InferInput("values", list(tensor.shape), "FP32")
            data.set_data_from_numpy(tensor)
            try:
                grpc_client.infer(MODEL, [data], client_timeout=120)
                return 200
            except tgrpc.InferenceServerException as exc:
                codes = {
                    "StatusCode.UNAVAILABLE": 503,
                    "StatusCode.RESOURCE_EXHAUSTED": 413,
                    "StatusCode.INVALID_ARGUMENT": 422,
                }
                # The server's time limit is DEADLINE_EXCEEDED over gRPC where HTTP answers 503 (a slow, busy
                # machine reaches it); the client's own deadline passing is another matter, left unmapped.
                if str(exc.status()) == "StatusCode.DEADLINE_EXCEEDED" and "GATECAST_REQUEST_TIMEOUT_S" in str(exc):
                    return 503
                return codes.get(str(exc.status()), 500)
            finally:
                grpc_client.close()

        started = time.perf_counter()
        status = await asyncio.to_thread(call)
        return status, time.perf_counter() - started

    return {
        "cv": timed(lambda c, i: c.post("/cross_validation", json=cv)),
        "anomalies": timed(lambda c, i: c.post("/anomalies", json=anomalies)),
        "calibration": timed(lambda c, i: c.post("/forecast", json=calibration)),
        "timegpt-cv": timed(lambda c, i: c.post("/v2/cross_validation", json=timegpt)),
        "stream": timed(stream),
        "forecast": timed(
            lambda c, i: c.post("/forecast", content=big_body, headers={"content-type": "application/json"})
        ),
        "grpc": grpc,
        "oip": timed(
            lambda c, i: c.post(f"/v2/models/{MODEL}/infer", content=head + tensor.tobytes(), headers=oip_headers)
        ),
    }
