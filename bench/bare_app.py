"""The floor for an HTTP server in Python: a bare ASGI app on uvicorn that parses the JSON body, runs the
ONNX session on the event loop and answers the forecast. No framework, no batching, no checks, no metrics.
bench/serving.py runs it with as many worker processes as gatecast gets, so the gap between the two is the
cost of everything gatecast adds (and the saving of its batching).

  python -m bench.bare_app MODEL.onnx PORT WORKERS
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import onnxruntime as ort
import uvicorn

_session: ort.InferenceSession | None = None


def session() -> ort.InferenceSession:
    global _session
    if _session is None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one process per core, as gatecast runs by default
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        _session = ort.InferenceSession(os.environ["BARE_MODEL"], options, providers=["CPUExecutionProvider"])
    return _session


async def app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def,type-arg]
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            session()  # lifespan.startup: load the model before the first request
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    request = json.loads(body)
    x = np.array([s["values"] for s in request["series"]], dtype=np.float32)
    forecast, _ = session().run(["forecast", "scale"], {"values": x})
    answer = {
        "forecasts": [
            {"id": s["id"], "mean": f[: request.get("horizon")].tolist()}  # the steps asked
            for s, f in zip(request["series"], forecast, strict=True)
        ]
    }
    content = json.dumps(answer).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": content})


if __name__ == "__main__":
    model, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.environ["BARE_MODEL"] = model
    uvicorn.run(
        "bench.bare_app:app",
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )
