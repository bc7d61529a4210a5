"""Future timestamps of a forecast, from a series' `timestamps` or `start` + `freq`, with every way pandas can fail on
time turned into a message that says what to fix. More: docs/design.md#apptimeaxis.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from app.errors import InvalidInput
from contract.longformat import infer_freq
from contract.words import count

RANGE = "timestamps must lie between 1677-09-22 and 2262-04-11 (pandas' range)"
# What pandas raises for time it cannot hold; ValueError covers OutOfBoundsDatetime and OutOfBoundsTimedelta.
TIME_ERRORS = (ValueError, TypeError, OverflowError, ArithmeticError)


def future_index(
    series_id: str,
    n_values: int,
    horizon: int,
    model_freq: str,
    timestamps: Sequence[datetime] | pd.DatetimeIndex | None,
    start: datetime | None,
    freq: str | None,
) -> pd.DatetimeIndex | None:
    """Timestamps of the `horizon` forecast steps; None when the series came without time information."""
    if timestamps is None and start is None:
        if freq is not None:
            raise InvalidInput(f"series {series_id!r}: `freq` needs `start` or `timestamps` to place the forecast")
        return None
    if timestamps is not None and start is not None:
        raise InvalidInput(f"series {series_id!r}: give `timestamps` or `start`, not both")
    offset = positive_offset(series_id, freq) if freq else None
    try:
        if timestamps is not None:
            stamps = _stamps(series_id, timestamps, n_values)
            if offset is None:
                offset = positive_offset(series_id, infer_freq(stamps) or model_freq)
            _check_steps(series_id, stamps, offset)
            last = stamps[-1]
        else:
            assert start is not None
            offset = offset or positive_offset(series_id, model_freq)
            last = pd.Timestamp(start).as_unit("ns") + (n_values - 1) * offset
        future = pd.date_range(last + offset, periods=horizon, freq=offset)
    except InvalidInput:
        raise
    except TIME_ERRORS as exc:
        raise InvalidInput(
            f"series {series_id!r}: the forecast's timestamps cannot be placed ({exc}); {RANGE}, "
            "in one time zone (or none), with a positive freq"
        ) from None
    if len(future) != horizon:  # pandas stops short instead of raising at its upper bound
        raise InvalidInput(f"series {series_id!r}: the forecast's timestamps run past 2262-04-11; {RANGE}")
    return future


def value_index(
    series_id: str,
    n_values: int,
    model_freq: str,
    timestamps: Sequence[datetime] | pd.DatetimeIndex | None,
    start: datetime | None,
    freq: str | None,
) -> pd.DatetimeIndex | None:
    """Timestamps of the values themselves, with their freq, checked as `future_index` checks them; None when
    the series came without time information."""
    future = future_index(series_id, n_values, 1, model_freq, timestamps, start, freq)
    if future is None:
        return None
    try:
        return pd.date_range(end=future[0] - future.freq, periods=n_values, freq=future.freq)
    except TIME_ERRORS as exc:
        raise InvalidInput(f"series {series_id!r}: the values' timestamps cannot be placed ({exc}); {RANGE}") from None


def _stamps(series_id: str, timestamps: Sequence[datetime] | pd.DatetimeIndex, n_values: int) -> pd.DatetimeIndex:
    if len(timestamps) != n_values:
        raise InvalidInput(
            f"series {series_id!r} has {count(n_values, 'value')} but {count(len(timestamps), 'timestamp')}; give one "
            "timestamp per value"
        )
    try:
        stamps = pd.DatetimeIndex(timestamps).as_unit("ns")
    except TIME_ERRORS as exc:
        raise InvalidInput(
            f"series {series_id!r}: timestamps cannot be read ({exc}); {RANGE}, in one time zone (or none)"
        ) from None
    if stamps.has_duplicates or not stamps.is_monotonic_increasing:
        raise InvalidInput(f"series {series_id!r}: timestamps must be strictly ascending, without repeats")
    return stamps


def _check_steps(series_id: str, stamps: pd.DatetimeIndex, offset: pd.DateOffset) -> None:
    """The values must be consecutive at the series' frequency: a skipped step would shift every later value
    against the time the model assumes (the CSV route refuses gaps the same way)."""
    expected = pd.date_range(stamps[0], periods=len(stamps), freq=offset)
    if expected.equals(stamps):
        return
    at = int(np.flatnonzero(expected != stamps)[0])
    raise InvalidInput(
        f"series {series_id!r}: timestamp {at} is {stamps[at]}, but one step of {offset.freqstr!r} after the "
        f"previous is {expected[at]}: send consecutive values (fill or drop the gap), or set `freq`"
    )


@functools.lru_cache(maxsize=256)
def _offset(freq: str) -> pd.DateOffset:
    # pandas parses an alias in ~80 us; offsets are immutable, and few aliases are ever used.
    return pd.tseries.frequencies.to_offset(freq)


def check_axis(series_id: str, freq: str, start: datetime | None, steps: int) -> None:
    """A time axis set ahead of its values (a stream's `freq` and `start`): refused when `steps` steps from
    `start` (or, without one, from 1970) cannot be placed in pandas' range, so that no value can follow it."""
    offset = positive_offset(series_id, freq)
    origin = pd.Timestamp(start if start is not None else "1970-01-01")
    try:
        origin = origin.as_unit("ns")
        last = pd.date_range(origin, periods=steps + 1, freq=offset)
    except TIME_ERRORS as exc:
        raise InvalidInput(
            f"series {series_id!r}: {steps} steps of freq {freq!r} from {origin.isoformat()} cannot be placed "
            f"({exc}); {RANGE}: use a later start, an earlier one, or a shorter freq"
        ) from None
    if len(last) != steps + 1:  # pandas stops short at its upper bound
        raise InvalidInput(
            f"series {series_id!r}: {steps} steps of freq {freq!r} from {origin.isoformat()} run past 2262-04-11; "
            f"{RANGE}"
        )


def positive_offset(series_id: str, freq: str) -> pd.DateOffset:
    """A pandas offset alias -> offset; refuses unknown aliases and steps that are zero or run backwards. An empty
    alias is a model that forecasts at any frequency (its card's freq is empty) meeting a series without one."""
    if not freq:
        raise InvalidInput(
            f"series {series_id!r}: send `freq` (e.g. h, D, W, 15min) or timestamps it can be read from: the model "
            "forecasts at any frequency and takes the series' own"
        )
    try:
        offset = _offset(freq)
    except TIME_ERRORS:
        raise InvalidInput(
            f"series {series_id!r}: freq {freq!r} is not a pandas offset alias; use e.g. h, D, B, W, 15min"
        ) from None
    if offset.n <= 0:
        raise InvalidInput(f"series {series_id!r}: freq {freq!r} does not step forward; use a positive step, e.g. h")
    return offset
