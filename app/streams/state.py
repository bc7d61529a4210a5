"""A stream's stored state and the shapes an append reads and answers (app.streams): the record kept in the
store (msgpack), the id rules, and the per-model quality counts an append produces."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import numpy as np

from app.errors import InvalidInput
from app.service import ModelService

STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:~-]{0,127}")  # fullmatch: `$` would take a final newline
QUALITY_LEVELS = (80.0, 95.0, 99.0)  # interval coverage exported for every model, whatever streams ask for


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
    adaptive: bool = False  # whether the answers' intervals adapt to the coverage seen (app.streams.adaptive)
    adapted_to: str = ""  # model@version the multipliers were learned for; another one starts them afresh
    log_widths: dict[float, float] = {}  # level -> log multiplier of the model's half-width (absent: 0)


encode = msgspec.msgpack.Encoder().encode
decode = msgspec.msgpack.Decoder(StreamState).decode


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


def check_id(stream_id: str) -> str:
    if not STREAM_ID.fullmatch(stream_id):
        raise InvalidInput(
            f"stream id {stream_id[:140]!r} is not allowed: 1 to 128 characters, letters, digits and . _ : ~ -, "
            "starting with a letter or digit"
        )
    return stream_id


def widening(state: StreamState, level: float) -> float:
    """The factor on the model's half-width of the stream's level-% intervals: 1 unless adaptive."""
    return float(np.exp(state.log_widths.get(level, 0.0))) if state.adaptive else 1.0


def stored_bytes(state: StreamState) -> int:
    """The size of a stream's record in the store."""
    return len(encode(state))
