"""Live feeds: a stream remembers the recent readings of one sensor, so a client sends each new reading alone and gets
back the updated forecast and whether that reading was abnormal. More: docs/design.md#appstreamsfeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pandas as pd

from app import metrics
from app.errors import Conflict, InvalidInput, NotFound, Overloaded, PayloadTooLarge
from app.levels import check_levels
from app.registry import ModelRepository
from app.streams.judge import apply
from app.streams.render import export
from app.streams.state import (
    Appended,
    Readings,
    StreamConfig,
    StreamState,
    check_id,
    decode,
    encode,
    stored_bytes,
    widening,
)
from app.streams.store import Created, Record, StreamStore
from app.timeaxis import check_axis, positive_offset

__all__ = ["Readings", "StreamConfig", "StreamState", "Streams", "check_id", "stored_bytes", "widening"]
_ATTEMPTS = 32  # compare-and-set rounds before an append to one very busy stream is told to retry


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
                created = await self.store.create(stream_id, encode(state), self.max_streams)
                if created is Created.CREATED:
                    return True, state
                if created is Created.FULL:
                    raise Conflict(
                        f"the store holds its limit of {self.max_streams} streams (GATECAST_MAX_STREAMS): delete "
                        "streams you no longer feed (idle ones go after GATECAST_STREAM_IDLE_TTL_S)"
                    )
                continue  # created meanwhile by another request: update it instead
            state = decode(record.data)
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
            if await self.store.replace(stream_id, record.rev, encode(state)):
                return False, state
            metrics.STREAM_CONFLICTS.inc()
        raise _busy(stream_id)

    async def get(self, stream_id: str) -> StreamState:
        record = await self._read(check_id(stream_id))
        if record is None:
            raise self._not_found(stream_id)
        return decode(record.data)

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
                appended = await apply(self.repository, decode(record.data), readings)
                if await self.store.replace(stream_id, record.rev, encode(appended.state)):
                    export(appended)
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


async def _back_off(attempt: int) -> None:
    """A random pause that grows with each lost round, so writers from several processes stop colliding."""
    await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))


def _busy(stream_id: str) -> Overloaded:
    return Overloaded(
        f"stream {stream_id!r} changed {_ATTEMPTS} times while this request was applied; send it again",
        retry_after=0.1,
    )
