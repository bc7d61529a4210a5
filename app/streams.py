"""Live feeds: a stream remembers the recent readings of one sensor, so a client sends each new reading alone
and gets back the updated forecast and whether that reading was abnormal.

An append is one job for the model service (app.service), as /forecast and /cross_validation are: the same
checks, memory admission, batching (appends to many streams share onnxruntime runs) and errors. Appending k
readings at once gives the same answer and the same state as appending them one by one: the forecast from
each new origin is made (all k in one job), each reading is judged against the forecast made just before it,
and the last forecast is the answer, equal to /forecast on the same window.

A stream with `adaptive` intervals widens or narrows them as the readings show how well they cover
(app.adaptive); its anomaly flags keep the model's widths.

Forecast quality is scored as the actual values arrive: each reading against every forecast that predicted
it (one per step of the horizon), exported per model and version, never per stream (app.metrics).

State is an opaque record in the store (app.stream_store), changed by compare-and-set: an append reads the
stream, runs the model, and writes only if nobody wrote in between; otherwise it starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from app import adaptive, backtest, forecasting, metrics
from app.errors import Conflict, InvalidInput, NotFound, Overloaded, PayloadTooLarge
from app.jobs import SeriesInput, WindowJob
from app.registry import ModelRepository
from app.service import ModelService, check_levels, level_key
from app.stream_store import Created, Record, StreamStore
from app.timeaxis import RANGE, TIME_ERRORS, check_axis, positive_offset

STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:~-]{0,127}")  # fullmatch: `$` would take a final newline
QUALITY_LEVELS = (80.0, 95.0, 99.0)  # interval coverage exported for every model, whatever streams ask for
_ATTEMPTS = 32  # compare-and-set rounds before an append to one very busy stream is told to retry


class Origin(msgspec.Struct, array_like=True):
    """A forecast made when `at` readings were known: its first step predicts reading `at` (0-based)."""

    at: int
    made_by: str  # model@version
    scale: float  # the unit of its intervals (ForecastResult.scale)
    naive: float  # the seasonal-naive MAE of the history it saw: MASE's denominator (NaN if none)
    mean: bytes  # float32, the model's whole horizon


class StreamState(msgspec.Struct):
    id: str
    model: str  # as bound: `name` or `name@version`
    levels: list[float]
    anomaly_level: float
    horizon: int | None  # of the answers; None: the model's
    freq: str | None  # of the readings; None: the model's
    created: float
    points: int = 0  # readings received, ever
    values: bytes = b""  # float64, the last readings, as many as the model reads
    covariates: dict[str, bytes] = {}  # float64, aligned with `values`
    last_time: str | None = None  # ISO timestamp of the last reading, when the stream has time
    origins: list[Origin] = []  # forecasts whose steps have readings still to come
    forecast: bytes = b""  # the last answer's forecast, JSON
    adaptive: bool = False  # whether the answers' intervals adapt to the coverage seen (app.adaptive)
    adapted_to: str = ""  # model@version the multipliers were learned for; another one starts them afresh
    log_widths: dict[float, float] = {}  # level -> log multiplier of the model's half-width (absent: 0)


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(StreamState).decode


@dataclass(frozen=True)
class StreamConfig:
    model: str | None
    levels: Sequence[float]
    anomaly_level: float
    horizon: int | None
    freq: str | None
    start: datetime | None  # the time of the first reading (with freq or the model's)
    adaptive: bool = False


@dataclass(frozen=True)
class Readings:
    values: Sequence[float]
    timestamps: Sequence[datetime] | None = None
    covariates: Mapping[str, Sequence[float]] | None = None
    future_covariates: Mapping[str, Sequence[float]] | None = None
    backfill: bool = False  # history: forecast after the last reading only; no flags, no scores


@dataclass
class Quality:
    """Scores of one append, per model@version, added to the metrics once the append is stored."""

    scored: int = 0
    abs_error: float = 0.0
    scaled_error: float = 0.0
    scaled: int = 0
    hits: dict[float, int] = field(default_factory=lambda: dict.fromkeys(QUALITY_LEVELS, 0))


@dataclass(frozen=True)
class Appended:
    state: StreamState
    service: ModelService
    forecast: dict[str, Any] | None
    anomalies: list[dict[str, Any]]
    quality: dict[str, Quality]
    needs: int  # readings still missing before the first forecast (0 once there is one)
    received: int  # readings in this append


class Streams:
    def __init__(
        self, store: StreamStore, repository: ModelRepository, max_streams: int, max_append: int, idle_ttl_s: float
    ) -> None:
        self.store = store
        self.repository = repository
        self.max_streams = max_streams
        self.max_append = max_append
        self.idle_ttl_s = idle_ttl_s
        self._locks: dict[str, list[Any]] = {}  # stream id -> [its asyncio.Lock, requests holding or awaiting it]

    # --- create, read, delete, list -----------------------------------------------------------------------

    async def put(self, stream_id: str, config: StreamConfig) -> tuple[bool, StreamState]:
        """Creates the stream, or updates its settings (True when created). Readings are kept across an
        update; the forecasts of another model are dropped (a new one is made at the next reading)."""
        check_id(stream_id)
        service = self.repository.resolve(config.model)
        model = config.model or service.name
        levels = check_levels(config.levels)
        check_levels([config.anomaly_level])
        if config.horizon is not None:
            service.horizon(config.horizon)
        freq = positive_offset(stream_id, config.freq).freqstr if config.freq else None
        # The axis the readings will follow, checked here with /forecast's rules: a first reading and the
        # forecast after it must be placeable, or every append would be refused.
        check_axis(stream_id, freq or service.card.freq, config.start, 1 + service.card.horizon)
        for _ in range(_ATTEMPTS):
            record = await self._read(stream_id)
            if record is None:
                state = StreamState(stream_id, model, levels, config.anomaly_level, config.horizon, freq, time.time())
                state.adaptive = config.adaptive
                if config.start is not None:
                    # The time of the reading before the first: the first append then lands on `start`.
                    offset = positive_offset(stream_id, freq or service.card.freq)
                    state.last_time = (pd.Timestamp(config.start) - offset).isoformat()
                created = await self.store.create(stream_id, _encode(state), self.max_streams)
                if created is Created.CREATED:
                    return True, state
                if created is Created.FULL:
                    raise Conflict(
                        f"the store holds its limit of {self.max_streams} streams (GATECAST_MAX_STREAMS): delete "
                        "streams you no longer feed (idle ones go after GATECAST_STREAM_IDLE_TTL_S)"
                    )
                continue  # created meanwhile by another request: update it instead
            state = _decode(record.data)
            if state.points and freq is None:
                freq = state.freq  # left out of an update: kept (it cannot change anyway)
            if state.points and (freq != state.freq or config.start is not None):
                raise Conflict(
                    f"stream {stream_id!r} has {state.points} readings: its `freq` and `start` cannot change; "
                    "DELETE it and create it again to start over"
                )
            if config.start is not None:  # no readings yet (checked above): place the first
                offset = positive_offset(stream_id, freq or service.card.freq)
                state.last_time = (pd.Timestamp(config.start) - offset).isoformat()
            if model != state.model or not config.adaptive:  # another model's widths: its multipliers mean nothing
                state.adapted_to, state.log_widths = "", {}
            if model != state.model:
                state.origins, state.forecast = [], b""
            state.log_widths = {level: m for level, m in state.log_widths.items() if level in levels}
            state.model, state.levels, state.anomaly_level = model, levels, config.anomaly_level
            state.adaptive = config.adaptive
            state.horizon, state.freq = config.horizon, freq
            if await self.store.replace(stream_id, record.rev, _encode(state)):
                return False, state
            metrics.STREAM_CONFLICTS.inc()
        raise _busy(stream_id)

    async def get(self, stream_id: str) -> StreamState:
        record = await self._read(check_id(stream_id))
        if record is None:
            raise self._not_found(stream_id)
        return _decode(record.data)

    async def delete(self, stream_id: str) -> None:
        if not await self.store.delete(check_id(stream_id)):
            raise self._not_found(stream_id)

    async def page(self, after: str, limit: int) -> tuple[list[str], int]:
        return await self.store.page(after, limit), await self.store.count()

    async def sweep(self) -> int:
        return await self.store.sweep(time.time() - self.idle_ttl_s)

    async def _read(self, stream_id: str) -> Record | None:
        record = await self.store.get(stream_id)
        if record is not None and record.touched < time.time() - self.idle_ttl_s:
            await self.store.delete(stream_id)  # idle past its time: gone now, not at the next sweep
            return None
        return record

    def _not_found(self, stream_id: str) -> NotFound:
        return NotFound(
            f"stream {stream_id!r} does not exist: create it with PUT /streams/{stream_id} (streams idle for more "
            f"than {self.idle_ttl_s:g} s are removed, GATECAST_STREAM_IDLE_TTL_S)"
        )

    # --- appends ------------------------------------------------------------------------------------------

    async def append(self, stream_id: str, readings: Readings) -> Appended:
        check_id(stream_id)
        k = len(readings.values)
        if not 1 <= k <= self.max_append:
            if k == 0:
                raise InvalidInput("`values` is empty: send at least one reading")
            raise PayloadTooLarge(
                f"{k} readings in one append; the limit is {self.max_append} (GATECAST_STREAM_MAX_APPEND): split "
                "them, or forecast a long history with POST /forecast"
            )
        async with self._turn(stream_id):
            for attempt in range(_ATTEMPTS):
                record = await self._read(stream_id)
                if record is None:
                    raise self._not_found(stream_id)
                appended = await self._apply(_decode(record.data), readings)
                if await self.store.replace(stream_id, record.rev, _encode(appended.state)):
                    _export(appended)
                    return appended
                metrics.STREAM_CONFLICTS.inc()
                await _back_off(attempt)
        raise _busy(stream_id)

    @contextlib.asynccontextmanager
    async def _turn(self, stream_id: str) -> AsyncIterator[None]:
        """Appends to one stream take turns within this process: only other processes and replicas can then
        overtake one between its read and its write, so compare-and-set rarely has to redo the work."""
        entry = self._locks.get(stream_id)
        if entry is None:
            entry = self._locks[stream_id] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if not entry[1]:
                del self._locks[stream_id]

    async def _apply(self, state: StreamState, readings: Readings) -> Appended:
        """The stream after `readings`, and the answer; changes nothing stored (the caller writes it)."""
        service = self.repository.resolve(state.model)
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
            anomalies, quality = self._judge(state, service, origins, new, first_new, last_time, offset)
        forecast = None
        if windows is not None:  # after the judging: the answer's intervals carry the multipliers it left
            widen = {level: widening(state, level) for level in levels}
            forecast = _render(
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

    def _judge(
        self,
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
                self._adapt(log_widths, adapt, widths, origins, at, float(value), state.adapted_to, horizon)
        state.log_widths = log_widths
        return anomalies, dict(quality)

    @staticmethod
    def _adapt(
        log_widths: dict[float, float],
        levels: Sequence[float],
        widths: Mapping[float, np.ndarray],
        origins: Sequence[Origin],
        at: int,
        value: float,
        made_by: str,
        horizon: int,
    ) -> None:
        """One reading's step of each level's multiplier (app.adaptive), from the forecasts that predicted it."""
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


def check_id(stream_id: str) -> str:
    if not STREAM_ID.fullmatch(stream_id):
        raise InvalidInput(
            f"stream id {stream_id[:140]!r} is not allowed: 1 to 128 characters, letters, digits and . _ : ~ -, "
            "starting with a letter or digit"
        )
    return stream_id


async def _back_off(attempt: int) -> None:
    """A random pause that grows with each lost round, so writers from several processes stop colliding."""
    await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))


def _busy(stream_id: str) -> Overloaded:
    return Overloaded(
        f"stream {stream_id!r} changed {_ATTEMPTS} times while this request was applied; send it again",
        retry_after=0.1,
    )


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
                f"stream {state.id!r}: covariate {name!r} has {len(new)} values for {k} readings; send one per reading"
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


def widening(state: StreamState, level: float) -> float:
    """The factor on the model's half-width of the stream's level-% intervals: 1 unless adaptive."""
    return float(np.exp(state.log_widths.get(level, 0.0))) if state.adaptive else 1.0


def _render(
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


def _export(appended: Appended) -> None:
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


def stored_bytes(state: StreamState) -> int:
    """The size of a stream's record in the store."""
    return len(_encode(state))
