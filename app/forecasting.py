"""From a checked request to forecasts: windows, the batcher, intervals and future timestamps.

Kept free of HTTP: the routes parse bodies (JSON or CSV) into a ForecastRequest and render the result.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app.errors import BadRequest, InvalidInput, PayloadTooLarge
from app.longformat import split_long_frame
from app.registry import LoadedModel, ModelRepository
from app.schemas import FLOAT32_MAX, ForecastRequest, SeriesIn
from app.settings import Settings


@dataclass
class Plan:
    """A request checked against its model: what to run and how to answer."""

    model: LoadedModel
    horizon: int
    levels: list[float]
    windows: list[np.ndarray]
    future: list[pd.DatetimeIndex | None]


def check_limits(request: ForecastRequest, settings: Settings) -> None:
    if len(request.series) > settings.max_series_per_request:
        raise PayloadTooLarge(
            f"{len(request.series)} series in one request; the limit is {settings.max_series_per_request} "
            "(GATECAST_MAX_SERIES_PER_REQUEST): split the request"
        )
    for s in request.series:
        if len(s.values) > settings.max_points_per_series:
            raise PayloadTooLarge(
                f"series {s.id!r} has {len(s.values)} values; the limit is {settings.max_points_per_series} "
                "(GATECAST_MAX_POINTS_PER_SERIES). Only the last input window is used: send the recent part"
            )


def plan(request: ForecastRequest, repository: ModelRepository, settings: Settings) -> Plan:
    check_limits(request, settings)
    model = repository.resolve(request.model)
    card = model.card
    horizon = card.horizon if request.horizon is None else request.horizon
    if not 1 <= horizon <= card.horizon:
        raise InvalidInput(f"horizon {horizon} is out of range: {model.name} forecasts 1 to {card.horizon} steps")
    levels = check_levels(request.level)
    ids = [s.id for s in request.series]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InvalidInput(f"series id {dup!r} appears more than once; ids must be unique within a request")
    windows, future = [], []
    for s in request.series:
        windows.append(window_of(s, card.min_window, card.trained_window))
        future.append(future_index(s, horizon, card.freq))
    return Plan(model, horizon, levels, windows, future)


def check_levels(levels: list[float]) -> list[float]:
    for level in levels:
        if not 0 < level < 100 or not math.isfinite(level):
            raise InvalidInput(f"level {level} is out of range: levels are percentages strictly between 0 and 100")
    if len(set(levels)) != len(levels):
        raise InvalidInput(f"level {levels} repeats a value; list each level once")
    return sorted(levels)


def window_of(series: SeriesIn, min_window: int, trained_window: int) -> np.ndarray:
    n = len(series.values)
    if n < min_window:
        raise InvalidInput(
            f"series {series.id!r} has {n} values; this model needs at least {min_window} "
            f"(it was trained on {trained_window})"
        )
    window = np.asarray(series.values[-trained_window:], dtype=np.float64)
    if np.abs(window).max() > FLOAT32_MAX / 1e3:
        raise InvalidInput(
            f"series {series.id!r} holds values up to {np.abs(window).max():.3g}; the model computes in float32 "
            "and forecasts must stay below 3.4e35: rescale the series (e.g. divide by 1e6) and scale back"
        )
    return window.astype(np.float32)


def future_index(series: SeriesIn, horizon: int, model_freq: str) -> pd.DatetimeIndex | None:
    """Timestamps of the forecast steps, when the series came with time information."""
    if series.timestamps is None and series.start is None:
        if series.freq is not None:
            raise InvalidInput(f"series {series.id!r}: `freq` needs `start` or `timestamps` to place the forecast")
        return None
    if series.timestamps is not None and series.start is not None:
        raise InvalidInput(f"series {series.id!r}: give `timestamps` or `start`, not both")
    freq = series.freq
    offset = _offset(series.id, freq) if freq else None
    if series.timestamps is not None:
        stamps = pd.DatetimeIndex(series.timestamps)
        if len(stamps) != len(series.values):
            raise InvalidInput(
                f"series {series.id!r} has {len(series.values)} values but {len(stamps)} timestamps; "
                "give one timestamp per value"
            )
        if stamps.has_duplicates or not stamps.is_monotonic_increasing:
            raise InvalidInput(f"series {series.id!r}: timestamps must be strictly ascending, without repeats")
        if offset is None:
            inferred = pd.infer_freq(stamps) if len(stamps) >= 3 else None
            offset = _offset(series.id, inferred or model_freq)
        last = stamps[-1]
    else:
        offset = offset or _offset(series.id, model_freq)
        assert series.start is not None
        last = pd.Timestamp(series.start) + (len(series.values) - 1) * offset
    return pd.date_range(last + offset, periods=horizon, freq=offset)


def _offset(series_id: str, freq: str) -> pd.DateOffset:
    try:
        return pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"series {series_id!r}: freq {freq!r} is not a pandas offset alias; use e.g. h, D, B, W, 15min"
        ) from None


async def forecast(plan: Plan) -> list[dict[str, Any]]:
    forecasts, scales = await plan.model.batcher.submit(plan.windows)
    card = plan.model.card
    out = []
    widths = {
        level: np.asarray(card.conformal.half_width_factors(level / 100))[: plan.horizon] for level in plan.levels
    }
    for i, (f, s) in enumerate(zip(forecasts, scales, strict=True)):
        mean = f[: plan.horizon].astype(np.float64)
        if not np.all(np.isfinite(mean)):
            raise InvalidInput(
                f"the forecast of series index {i} is not finite: the values are too large or too spread for "
                "float32; rescale the series and scale the forecast back"
            )
        item: dict[str, Any] = {"mean": mean}
        item["intervals"] = {level: (mean - w * float(s), mean + w * float(s)) for level, w in widths.items()}
        out.append(item)
    return out


def render_json(plan: Plan, request: ForecastRequest, results: list[dict[str, Any]]) -> dict[str, Any]:
    forecasts = []
    for s, r, future in zip(request.series, results, plan.future, strict=True):
        entry: dict[str, Any] = {
            "id": s.id,
            "mean": r["mean"].tolist(),
            "intervals": {
                _level_key(level): {"lo": lo.tolist(), "hi": hi.tolist()} for level, (lo, hi) in r["intervals"].items()
            },
        }
        if future is not None:
            entry["timestamps"] = [t.isoformat() for t in future]
        forecasts.append(entry)
    return {
        "model": plan.model.name,
        "version": plan.model.version,
        "horizon": plan.horizon,
        "level": plan.levels,
        "forecasts": forecasts,
    }


def render_csv(plan: Plan, request: ForecastRequest, results: list[dict[str, Any]]) -> str:
    """Long format: unique_id, ds (or step), forecast, forecast-lo-80, forecast-hi-80, ..."""
    frames = []
    for s, r, future in zip(request.series, results, plan.future, strict=True):
        cols: dict[str, Any] = {"unique_id": s.id}
        cols["ds"] = future if future is not None else np.arange(1, plan.horizon + 1)
        cols["forecast"] = r["mean"]
        for level, (lo, hi) in r["intervals"].items():
            cols[f"forecast-lo-{_level_key(level)}"] = lo
            cols[f"forecast-hi-{_level_key(level)}"] = hi
        frames.append(pd.DataFrame(cols))
    buffer = io.StringIO()
    pd.concat(frames, ignore_index=True).to_csv(buffer, index=False)
    return buffer.getvalue()


def _level_key(level: float) -> str:
    return str(int(level)) if float(level).is_integer() else str(level)


def request_from_csv(body: bytes, model: str | None, horizon: int | None, level: list[float]) -> ForecastRequest:
    """A `unique_id, ds, y` table (as pandas writes it) -> ForecastRequest with timestamps per series."""
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the CSV body could not be parsed: {exc}") from exc
    parsed = split_long_frame(frame, allow_gaps=False)
    series = [
        SeriesIn(
            id=s.id,
            values=[float(v) for v in s.values],
            timestamps=list(s.timestamps.to_pydatetime()),
            start=None,
            freq=s.freq,
        )
        for s in parsed
    ]
    return ForecastRequest(model=model, horizon=horizon, level=level, series=series)
