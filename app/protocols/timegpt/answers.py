"""gatecast's results in the TimeGPT API's shapes: flat arrays in the client's series order, intervals keyed
`lo-80`/`hi-80`, and the model that answered in a header (TimeGPT's bodies have no field for it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import Response

from app import backtest, forecasting
from app.forecast_jobs import ForecastResult, SeriesInput, WindowJob, Windows
from app.levels import level_key
from app.service import ModelService
from contract import jobs

MODEL_HEADER = "gatecast-model"  # TimeGPT's bodies have no field for it: the model and version that answered


def answer(body: dict[str, Any], made_by: str | None = None) -> Response:
    headers = {MODEL_HEADER: made_by} if made_by else None
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json", headers=headers
    )


def made_by(result: ForecastResult) -> str:
    """name@version; model "auto": each series' choice, in order (the naive forecasts have no version)."""
    if result.choices is None:
        return f"{result.model}@{result.version}"
    return ", ".join(c.label + (f"@{c.version}" if c.version else "") for c in result.choices)


def flat_intervals(
    intervals: dict[float, tuple[np.ndarray, np.ndarray]], mean: np.ndarray, zero: bool
) -> dict[str, np.ndarray] | None:
    out: dict[str, np.ndarray] = {}
    for level, (lo, hi) in intervals.items():
        out[f"lo-{level_key(level)}"] = lo.ravel()
        out[f"hi-{level_key(level)}"] = hi.ravel()
    if zero:
        out["lo-0"] = out["hi-0"] = mean.ravel()
    return out or None


async def scored(
    service: ModelService,
    series: list[SeriesInput],
    cutoffs: list[np.ndarray],
    h: int,
    level: float,
    online: bool,
) -> dict[str, Any]:
    windows = await forecasting.windows(service, WindowJob(series, cutoffs, h, [level]))
    offsets = np.cumsum([0] + [len(s.values) for s in series])
    parts: list[backtest.PointScores] = []
    for i, s in enumerate(series):
        parts.append(backtest.score_points(np.asarray(s.values, dtype=np.float64), windows, i, level))
    key = level_key(level)
    answer: dict[str, Any] = {
        "sizes": np.asarray([len(p.index) for p in parts], dtype=np.int64),
        "mean": np.concatenate([p.mean for p in parts]),
        "intervals": {
            f"lo-{key}": np.concatenate([p.lo for p in parts]),
            f"hi-{key}": np.concatenate([p.hi for p in parts]),
        },
        "anomaly": np.concatenate([p.anomaly for p in parts]),
        "weights_x": None,
    }
    if online:
        answer["idxs"] = np.concatenate([p.index + offsets[i] for i, p in enumerate(parts)])
        answer["anomaly_score"] = np.concatenate([p.score for p in parts])
    return answer


def finetuned_model_info(service: ModelService) -> dict[str, Any] | None:
    """TimeGPT's FinetunedModel (nixtla._types) for a fine-tuned model, None for any other."""
    info = jobs.finetune_info(service.card.extra)
    if info is None:
        return None
    return {
        "id": service.name,
        "created_at": info["created_at"],
        "created_by": info["created_by"],
        "base_model_id": info["base_model"],
        "steps": info["steps"],
        "depth": info["depth"],
        "loss": info["loss"],
        "model": info["base_model"],
        "freq": service.card.freq,
        "heldout_mase": {
            k.removeprefix("heldout_mase_"): v
            for k, v in service.card.metrics.get("finetune", {}).items()
            if k.startswith("heldout_mase_")
        },
    }


def cross_validation(series: list[SeriesInput], windows: Windows, h: int, zero: bool) -> dict[str, Any]:
    """Rows: each window's steps that lie inside its series (in-sample windows may overlap its end), in order."""
    offsets = np.cumsum([0] + [len(s.values) for s in series])
    steps = windows.cutoffs[:, None] + np.arange(h)[None, :]  # (W, h) positions in each series
    inside = steps < np.asarray([len(series[i].values) for i in windows.series])[:, None]
    idxs = (steps + offsets[windows.series][:, None])[inside]
    sizes = np.bincount(windows.series, weights=inside.sum(axis=1), minlength=len(series)).astype(np.int64)
    result = windows.result
    mean = result.mean[inside]
    intervals = flat_intervals({lv: (lo[inside], hi[inside]) for lv, (lo, hi) in result.intervals.items()}, mean, zero)
    return {"idxs": idxs, "sizes": sizes, "mean": mean, "intervals": intervals, "weights_x": None}
