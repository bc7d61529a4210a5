"""An append's work (app.streams): the readings checked against the stream's time axis and covariates, one
forecast from each new origin as one window job (app.forecasting), each reading judged against the forecast made
just before it (the anomaly flag) and against every forecast that predicted it (quality scores, and the adaptive
multipliers of the stream's levels, app.streams.adaptive). Changes nothing stored: the caller writes the new state."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from app import backtest, forecasting
from app.errors import Conflict, InvalidInput
from app.forecast_jobs import SeriesInput, WindowJob
from app.registry import ModelRepository
from app.service import ModelService
from app.streams import adaptive
from app.streams.render import forecast_answer
from app.streams.state import QUALITY_LEVELS, Appended, Origin, Quality, Readings, StreamState, widening
from app.timeaxis import RANGE, TIME_ERRORS, positive_offset
from contract.words import count


async def apply(repository: ModelRepository, state: StreamState, readings: Readings) -> Appended:
    """The stream after `readings`, and the answer; changes nothing stored (the caller writes it)."""
    service = repository.resolve(state.model)
    card = service.card
    if card.covariates.empty and (readings.covariates or readings.future_covariates):
        sent = sorted({*(readings.covariates or {}), *(readings.future_covariates or {})})
        raise InvalidInput(
            f"stream {state.id!r}: covariates {sent} are not read: {service.name} is univariate (it reads the "
            "values alone); remove them, or bind the stream to a model that declares them (GET /models)"
        )
    new = _finite(state.id, readings.values)
    kept = np.frombuffer(state.values, dtype=np.float64)
    values = np.concatenate([kept, new])
    offset = positive_offset(state.id, state.freq or card.freq)
    last_time = _check_time(state, readings, len(new), offset)
    covariates = _covariates(state, readings, len(new))
    n_old, n = len(kept), len(values)
    first_new = state.points  # the absolute index of the first new reading
    start = None
    if last_time is not None:
        start = (pd.Timestamp(last_time) - (n - 1) * offset).to_pydatetime()
    series = SeriesInput(
        state.id,
        values,
        None,
        start,
        offset.freqstr if start is not None else None,
        covariates or None,
        dict(readings.future_covariates) if readings.future_covariates else None,
    )
    # A forecast from each new origin that has the window the model needs.
    cutoffs = [c for c in range(n_old + 1, n + 1) if c >= card.min_window]
    if readings.backfill:
        cutoffs = cutoffs[-1:]
    levels = state.levels
    origins = list(state.origins)
    made_by = f"{service.name}@{service.version}"
    windows = None
    if cutoffs:
        job = WindowJob([series], [np.asarray(cutoffs, dtype=np.int64)], card.horizon, levels)
        windows = await forecasting.windows(service, job)
        result = windows.result
        for w, c in enumerate(cutoffs):
            history = values[:c][-max(card.trained_window, card.season + 1) :]
            naive = backtest.mase_scale(history, card.season)
            mean = result.mean[w].astype(np.float32).tobytes()
            origins.append(Origin(first_new - n_old + c, made_by, float(result.scale[w]), naive, mean))
    if state.adaptive and state.adapted_to != made_by:  # multipliers of another model's widths mean nothing
        state.adapted_to, state.log_widths = made_by, {}
    anomalies: list[dict[str, Any]] = []
    quality: dict[str, Quality] = {}
    if not readings.backfill:
        anomalies, quality = judge(state, service, origins, new, first_new, last_time, offset)
    forecast = None
    if windows is not None:  # after the judging: the answer's intervals carry the multipliers it left
        widen = {level: widening(state, level) for level in levels}
        forecast = forecast_answer(
            windows.result, len(cutoffs) - 1, state.horizon or card.horizon, windows.indexes[0], widen
        )
    points = state.points + len(new)
    keep = max(card.trained_window, card.min_window, card.season + 1)
    state.values = values[-keep:].tobytes()
    state.covariates = {name: column[-keep:].tobytes() for name, column in covariates.items()}
    state.points, state.last_time = points, last_time
    state.origins = [o for o in origins if o.at + card.horizon > points]
    if forecast is not None:
        state.forecast = msgspec.json.encode(forecast)
    needs = 0 if state.forecast else max(0, card.min_window - len(values))
    return Appended(state, service, forecast, anomalies, quality, needs, len(new))


def judge(
    state: StreamState,
    service: ModelService,
    origins: list[Origin],
    new: np.ndarray,
    first_new: int,
    last_time: str | None,
    offset: pd.DateOffset,
) -> tuple[list[dict[str, Any]], dict[str, Quality]]:
    """Each new reading against the forecast made just before it (the anomaly flag), and against every
    forecast that predicted it (the quality scores; and the adaptive multipliers of the stream's levels,
    updated in `state`, from the forecasts of the model version they are for)."""
    by_at = {o.at: o for o in origins}
    horizon = service.card.horizon
    anomalies = []
    quality: dict[str, Quality] = defaultdict(Quality)
    adapt = state.levels if state.adaptive else []
    widths = {level: service.half_width(level) for level in (state.anomaly_level, *QUALITY_LEVELS, *adapt)}
    log_widths = dict(state.log_widths)
    for i, value in enumerate(new):
        at = first_new + i
        before = by_at.get(at)
        if before is not None:
            mean = float(np.frombuffer(before.mean, dtype=np.float32)[0])
            half = float(widths[state.anomaly_level][0]) * before.scale
            if not mean - half <= value <= mean + half:
                entry: dict[str, Any] = {
                    "index": at,
                    "value": float(value),
                    "mean": mean,
                    "lo": mean - half,
                    "hi": mean + half,
                    "score": (value - mean) / max(half, 1e-12 * max(1.0, abs(mean))),
                }
                if last_time is not None:
                    stamp = pd.Timestamp(last_time) - (len(new) - 1 - i) * offset
                    entry["timestamp"] = stamp.isoformat()
                anomalies.append(entry)
        for o in origins:
            step = at - o.at
            if not 0 <= step < horizon:
                continue
            mean = float(np.frombuffer(o.mean, dtype=np.float32)[step])
            error = abs(float(value) - mean)
            q = quality[o.made_by]
            q.scored += 1
            q.abs_error += error
            if o.naive > 0:  # NaN and 0 (a constant history) have no MASE
                q.scaled += 1
                q.scaled_error += error / o.naive
            for level in QUALITY_LEVELS:
                q.hits[level] += error <= float(widths[level][step]) * o.scale
        if adapt:
            adapt_widths(log_widths, adapt, widths, origins, at, float(value), state.adapted_to, horizon)
    state.log_widths = log_widths
    return anomalies, dict(quality)


def adapt_widths(
    log_widths: dict[float, float],
    levels: Sequence[float],
    widths: Mapping[float, np.ndarray],
    origins: Sequence[Origin],
    at: int,
    value: float,
    made_by: str,
    horizon: int,
) -> None:
    """One reading's step of each level's multiplier (app.streams.adaptive), from the forecasts that predicted it."""
    errors, steps, scales = [], [], []
    for o in origins:
        step = at - o.at
        if 0 <= step < horizon and o.made_by == made_by:
            errors.append(abs(value - float(np.frombuffer(o.mean, dtype=np.float32)[step])))
            steps.append(step)
            scales.append(o.scale)
    if not errors:
        return
    error, scale = np.asarray(errors), np.asarray(scales)
    for level in levels:
        log_m = log_widths.get(level, 0.0)
        misses = int(np.count_nonzero(error > widths[level][steps] * scale * np.exp(log_m)))
        log_widths[level] = adaptive.step(log_m, level, misses, len(errors))


def _finite(stream_id: str, values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise InvalidInput(f"stream {stream_id!r}: value {bad} is {array[bad]}; every reading must be finite")
    return array


def _check_time(state: StreamState, readings: Readings, k: int, offset: pd.DateOffset) -> str | None:
    """The stream's last timestamp after the readings; refuses timestamps that repeat or precede the stream's
    (409: already received), or leave a gap (422). Readings sent without timestamps follow on at `freq`."""
    last = pd.Timestamp(state.last_time) if state.last_time is not None else None
    if readings.timestamps is None:
        if last is None:
            return None
        try:
            return str((last + k * offset).isoformat())
        except TIME_ERRORS as exc:
            raise InvalidInput(
                f"stream {state.id!r}: {k} more readings cannot be placed in time ({exc}); {RANGE}"
            ) from None
    if len(readings.timestamps) != k:
        raise InvalidInput(
            f"{k} values and {len(readings.timestamps)} timestamps: send one timestamp per value, or none"
        )
    try:
        stamps = pd.DatetimeIndex(list(readings.timestamps)).as_unit("ns")
        late = last is not None and stamps[0] <= last  # raises when one has a time zone and the other not
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(
            f"stream {state.id!r}: timestamps cannot be read, or not in the stream's time zone ({exc})"
        ) from None
    if late:
        assert last is not None
        raise Conflict(
            f"stream {state.id!r}: timestamp {stamps[0].isoformat()} is not after the last reading's "
            f"({last.isoformat()}): it was received already or is out of order; nothing was appended"
        )
    try:
        expected = pd.date_range(last + offset if last is not None else stamps[0], periods=k, freq=offset)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"stream {state.id!r}: the readings' timestamps cannot be placed ({exc})") from None
    if not expected.equals(stamps):
        at = int(np.flatnonzero(expected != stamps)[0])
        raise InvalidInput(
            f"stream {state.id!r}: timestamp {at} is {stamps[at].isoformat()}, but the next reading at "
            f"{offset.freqstr!r} is due at {expected[at].isoformat()}: send readings in order without gaps (fill "
            "missing ones)"
        )
    return str(stamps[-1].isoformat())


def _covariates(state: StreamState, readings: Readings, k: int) -> dict[str, np.ndarray]:
    """Kept covariates extended by the new readings'; every name the stream holds must come with every
    append (the model service refuses names the model does not read)."""
    sent = dict(readings.covariates or {})
    kept = {name: np.frombuffer(column, dtype=np.float64) for name, column in state.covariates.items()}
    missing = sorted(set(kept) - set(sent))
    if missing:
        raise InvalidInput(f"stream {state.id!r}: covariates {missing} are missing: send one value per reading")
    n_kept = len(state.values) // 8
    out = {}
    for name, column in sent.items():
        new = _finite(state.id, column)
        if len(new) != k:
            raise InvalidInput(
                f"stream {state.id!r}: covariate {name!r} has {count(len(new), 'value')} for "
                f"{count(k, 'reading')}; send one per reading"
            )
        before = kept.get(name)
        if before is None:
            if n_kept:
                raise InvalidInput(
                    f"stream {state.id!r}: covariate {name!r} is new, but {n_kept} readings came without it; "
                    "a stream's covariates are fixed by its first append (DELETE and re-create to change them)"
                )
            before = np.empty(0)
        out[name] = np.concatenate([before, new])
    return out
