"""POST /cross_validation and POST /anomalies: forecasts from past origins of the history sent, scored against
what happened (app.backtest), through the same model service as /forecast."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Response

from app import backtest, forecasting, frequency
from app.deps import RepositoryDep
from app.forecast_jobs import WindowJob
from app.levels import check_levels, level_key
from app.protocols.rest.forecast import series_input
from app.protocols.rest.schemas import (
    AnomaliesRequest,
    AnomaliesResponse,
    CrossValidationRequest,
    CrossValidationResponse,
    ErrorBody,
)

router = APIRouter(tags=["backtest"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 413, 415, 422, 431, 503)
}


@router.post(
    "/cross_validation",
    response_model=CrossValidationResponse,
    responses=_ERRORS,
    summary="Rolling-origin backtest over the history sent",
)
async def cross_validation(body: CrossValidationRequest, repository: RepositoryDep) -> Response:
    """Forecasts of `horizon` steps from `n_windows` past origins, `step_size` values apart (the last window
    ends at the last value), with the actual values, and MAE, MASE and interval coverage per window, per
    series and overall. All windows run as batched onnxruntime calls, through the same checks as /forecast."""
    service = repository.resolve(body.model)
    horizon = service.horizon(body.horizon)
    levels = check_levels(body.level)
    step = body.step_size or horizon
    series = [series_input(s) for s in body.series]
    min_window = service.card.min_window
    cutoffs = [backtest.rolling_cutoffs(s, len(s.values), horizon, body.n_windows, step, min_window) for s in series]
    windows = await forecasting.windows(service, WindowJob(series, cutoffs, horizon, levels))
    result = windows.result
    keys = {level: level_key(level) for level in levels}
    answers, all_actual, all_scale = [], [], []
    for i, s in enumerate(series):
        rows = np.flatnonzero(windows.series == i)
        values = np.asarray(s.values, dtype=np.float64)
        origins = windows.cutoffs[rows]
        actual = backtest.actuals(values, origins, horizon)
        scale = backtest.mase_scales(values, origins, service.card.season)
        mean = result.mean[rows]
        intervals = {level: (lo[rows], hi[rows]) for level, (lo, hi) in result.intervals.items()}
        mae, mase, coverage = backtest.window_scores(actual, mean, intervals, scale)
        index = windows.indexes[i]
        entries = []
        for w, c in enumerate(origins.tolist()):
            entries.append(
                {
                    "cutoff": c - 1,
                    "cutoff_timestamp": index[c - 1].isoformat() if index is not None else None,
                    "timestamps": [t.isoformat() for t in index[c : c + horizon]] if index is not None else None,
                    "actual": actual[w],
                    "mean": mean[w],
                    "intervals": {keys[lv]: {"lo": lo[w], "hi": hi[w]} for lv, (lo, hi) in intervals.items()},
                    "mae": float(mae[w]),
                    "mase": float(mase[w]) if np.isfinite(mase[w]) else None,
                    "coverage": {keys[lv]: float(share[w]) for lv, share in coverage.items()},
                }
            )
        answers.append(
            {"id": s.id, "windows": entries, **_scores(backtest.score(actual, mean, intervals, scale), keys)}
        )
        all_actual.append(actual)
        all_scale.append(scale)
    overall = backtest.score(np.concatenate(all_actual), result.mean, result.intervals, np.concatenate(all_scale))
    answer = {
        "model": result.model,
        "version": result.version,
        "horizon": horizon,
        "n_windows": body.n_windows,
        "step_size": step,
        "level": levels,
        "series": answers,
        "overall": _scores(overall, keys),
    }
    if result.warnings:
        answer["warnings"] = result.warnings
    return Response(
        orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY),
        media_type="application/json",
        headers=frequency.warning_headers(result.warnings),
    )


@router.post(
    "/anomalies",
    response_model=AnomaliesResponse,
    responses=_ERRORS,
    summary="Score each value against the forecast made before it",
)
async def anomalies(body: AnomaliesRequest, repository: RepositoryDep) -> Response:
    """Each of the last `detection_size` values (all that have a full input window before them when absent)
    is compared with the one-step forecast made from the values before it: outside its interval at `level`
    is an anomaly. All forecasts run as batched onnxruntime calls, through the same checks as /forecast."""
    service = repository.resolve(body.model)
    levels = check_levels([body.level])
    series = [series_input(s) for s in body.series]
    min_window = service.card.min_window
    cutoffs = [backtest.detection_cutoffs(s, len(s.values), body.detection_size, 1, min_window) for s in series]
    windows = await forecasting.windows(service, WindowJob(series, cutoffs, 1, levels))
    answers, flagged, scored = [], 0, 0
    for i, s in enumerate(series):
        points = backtest.score_points(np.asarray(s.values, dtype=np.float64), windows, i, levels[0])
        index = windows.indexes[i]
        answers.append(
            {
                "id": s.id,
                "index": points.index,
                "timestamps": [index[t].isoformat() for t in points.index] if index is not None else None,
                "actual": points.actual,
                "mean": points.mean,
                "lo": points.lo,
                "hi": points.hi,
                "score": points.score,
                "anomaly": points.anomaly,
                "anomalies": points.index[points.anomaly],
            }
        )
        flagged += int(points.anomaly.sum())
        scored += len(points.index)
    result = windows.result
    answer = {
        "model": result.model,
        "version": result.version,
        "level": levels[0],
        "anomalies": flagged,
        "scored": scored,
        "series": answers,
    }
    return Response(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


def _scores(scores: backtest.Scores, keys: dict[float, str]) -> dict[str, Any]:
    return {
        "mae": scores.mae,
        "mase": scores.mase,
        "coverage": {keys[level]: share for level, share in scores.coverage.items()},
    }
