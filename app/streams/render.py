"""What an append answers and exports (app.streams): the forecast rendered with the stream's widths, and the
per-model quality counters (never per stream: app.metrics)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app import metrics
from app.levels import level_key
from app.streams.state import QUALITY_LEVELS, Appended


def forecast_answer(
    result: Any, row: int, horizon: int, index: pd.DatetimeIndex | None, widen: Mapping[float, float]
) -> dict[str, Any]:
    mean = result.mean[row, :horizon]
    intervals = {}
    for level, (lo, hi) in result.intervals.items():
        factor = widen.get(level, 1.0)
        if factor != 1.0:  # the bounds are symmetric about the mean (app.service)
            lo, hi = mean - factor * (mean - lo[row, :horizon]), mean + factor * (hi[row, :horizon] - mean)
        else:
            lo, hi = lo[row, :horizon], hi[row, :horizon]
        intervals[level_key(level)] = {"lo": lo.astype(np.float32).tolist(), "hi": hi.astype(np.float32).tolist()}
    out: dict[str, Any] = {
        "model": result.model,
        "version": result.version,
        "mean": mean.astype(np.float32).tolist(),
        "intervals": intervals,
    }
    if index is not None:
        future = pd.date_range(index[-1] + index.freq, periods=horizon, freq=index.freq)
        out["timestamps"] = [t.isoformat() for t in future]
    return out


@dataclass(frozen=True)
class _Counters:
    """One model version's stream counters, looked up once (a labels() call per counter was a tenth of an
    append's CPU)."""

    readings: Any
    anomalies: Any
    scored: Any
    abs_error: Any
    scaled: Any
    scaled_error: Any
    hits: dict[float, Any]


@functools.lru_cache(maxsize=1024)
def _counters(made_by: str) -> _Counters:
    name, _, version = made_by.partition("@")
    return _Counters(
        metrics.STREAM_READINGS.labels(name, version),
        metrics.STREAM_ANOMALIES.labels(name, version),
        metrics.STREAM_SCORED.labels(name, version),
        metrics.STREAM_ABS_ERROR.labels(name, version),
        metrics.STREAM_SCALED_SCORED.labels(name, version),
        metrics.STREAM_SCALED_ERROR.labels(name, version),
        {level: metrics.STREAM_INTERVAL_HITS.labels(name, version, f"{level:g}") for level in QUALITY_LEVELS},
    )


def export(appended: Appended) -> None:
    """Counts of one stored append: per model and version, never per stream."""
    own = _counters(f"{appended.service.name}@{appended.service.version}")
    own.readings.inc(appended.received)
    if appended.anomalies:
        own.anomalies.inc(len(appended.anomalies))
    for made_by, q in appended.quality.items():
        c = _counters(made_by)
        c.scored.inc(q.scored)
        c.abs_error.inc(q.abs_error)
        c.scaled.inc(q.scaled)
        c.scaled_error.inc(q.scaled_error)
        for level, hits in q.hits.items():
            c.hits[level].inc(hits)
