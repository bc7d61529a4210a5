"""The server a user writes first: FastAPI + the PyTorch model in eager mode, one request at a time.

The endpoint is `async def` and calls the model directly, so requests run one after another on the event
loop, without batching. Used as the baseline in bench/serving.py.
  python -m bench.naive_server runs/etth1-lstm/checkpoint.pt training/configs/etth1-lstm.toml PORT
"""

from __future__ import annotations

import sys

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from training.config import RunConfig
from training.train import load_checkpoint


class Series(BaseModel):
    id: str
    values: list[float]


class Request(BaseModel):
    model: str | None = None
    series: list[Series]


def build(checkpoint: str, config: str) -> FastAPI:
    model, _ = load_checkpoint(checkpoint, RunConfig.load(config).model)  # type: ignore[arg-type]
    window = model.config.input_window
    app = FastAPI()

    @app.post("/forecast")
    async def forecast(request: Request) -> dict[str, object]:
        with torch.no_grad():
            x = torch.tensor([s.values[-window:] for s in request.series], dtype=torch.float32)
            mean, _ = model(x)
        return {"forecasts": [{"id": s.id, "mean": row} for s, row in zip(request.series, mean.tolist(), strict=True)]}

    return app


if __name__ == "__main__":
    checkpoint, config, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    uvicorn.run(build(checkpoint, config), host="127.0.0.1", port=port, log_level="warning", access_log=False)
