"""Covariates: the inputs a model reads beside its target, by name and role, and the calendar features. More:
docs/design.md#contractcovariates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

ROLES = ("past", "future", "calendar")


def _hour_of_day(index: pd.DatetimeIndex) -> tuple[np.ndarray, float]:
    return np.asarray(index.hour + index.minute / 60.0, dtype=np.float64), 24.0


def _day_of_week(index: pd.DatetimeIndex) -> tuple[np.ndarray, float]:
    return np.asarray(index.dayofweek, dtype=np.float64), 7.0


def _month_of_year(index: pd.DatetimeIndex) -> tuple[np.ndarray, float]:
    month = np.asarray(index.month - 1, dtype=np.float64)
    return month + (np.asarray(index.day, dtype=np.float64) - 1) / np.asarray(index.days_in_month), 12.0


# name -> (position within its cycle, cycle length)
CALENDAR_FEATURES = {
    "hour_of_day": _hour_of_day,
    "day_of_week": _day_of_week,
    "month_of_year": _month_of_year,
}


class CovariateError(ValueError):
    """A covariate declaration that cannot be used; the message names the covariate."""


@dataclass(frozen=True)
class Covariates:
    """The covariate names of a model, by role, in the order of their channels in the graph."""

    past: tuple[str, ...] = ()
    future: tuple[str, ...] = ()
    calendar: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [*self.past, *self.future]
        for name in names:
            if not isinstance(name, str) or not name or name != name.strip():
                raise CovariateError(f"covariate name {name!r} must be non-empty text without surrounding spaces")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise CovariateError(f"covariates {repeated} are declared twice; each name takes one role")
        unknown = [c for c in self.calendar if c not in CALENDAR_FEATURES]
        if unknown:
            raise CovariateError(f"calendar features {unknown} are unknown; use {sorted(CALENDAR_FEATURES)}")
        if len(set(self.calendar)) != len(self.calendar):
            raise CovariateError(f"calendar features {list(self.calendar)} repeat a name")

    @property
    def empty(self) -> bool:
        return not (self.past or self.future or self.calendar)

    @property
    def observed(self) -> tuple[str, ...]:
        """The names sent aligned with the values: past and future ones."""
        return (*self.past, *self.future)

    def to_json(self) -> dict[str, list[str]]:
        return {"past": list(self.past), "future": list(self.future), "calendar": list(self.calendar)}

    @classmethod
    def from_json(cls, data: object) -> Covariates:
        if not isinstance(data, dict) or set(data) - set(ROLES):
            raise CovariateError(f"covariates must be an object with keys {list(ROLES)}; got {data!r}")
        roles = {}
        for role in ROLES:
            names = data.get(role, [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise CovariateError(f"covariates.{role} must be a list of names; got {names!r}")
            roles[role] = tuple(names)
        return cls(**roles)


NONE = Covariates()


def calendar_for(freq: str) -> tuple[str, ...]:
    """The calendar features a frequency can carry: hour and weekday below a day, weekday and month for days,
    month for weeks and months; none for coarser data (a quarter or a year has no cycle in these)."""
    offset = pd.tseries.frequencies.to_offset(freq)
    if isinstance(offset, pd.offsets.Tick) and offset.nanos < pd.Timedelta(days=1).value:
        return ("hour_of_day", "day_of_week")
    base = offset.name.split("-")[0]
    if base in ("D", "B", "C"):
        return ("day_of_week", "month_of_year")
    if base in ("W", "MS", "ME", "M", "BMS", "BME", "SMS", "SME"):
        return ("month_of_year",)
    return ()


def calendar_matrix(index: pd.DatetimeIndex, names: Sequence[str]) -> np.ndarray:
    """(len(index), 2 * len(names)) float32: sine and cosine of each feature's position in its cycle."""
    columns = []
    for name in names:
        position, cycle = CALENDAR_FEATURES[name](index)
        angle = position * (2 * math.pi / cycle)
        columns += [np.sin(angle), np.cos(angle)]
    if not columns:
        return np.zeros((len(index), 0), dtype=np.float32)
    return np.stack(columns, axis=1).astype(np.float32)


def calendar_channels(names: Sequence[str]) -> list[str]:
    """The channel names of the calendar input, for metadata routes: hour_of_day.sin, hour_of_day.cos, ..."""
    return [f"{name}.{part}" for name in names for part in ("sin", "cos")]


def probe_covariates(cov: Covariates, batch: int, length: int, horizon: int, seed: int = 0) -> list[np.ndarray]:
    """Covariate inputs (contract.signature order) for probe runs: random walks of varied level and scale for
    past and future channels, the calendar of an hourly index from a varied start."""
    rng = np.random.default_rng(seed + 7919 * batch + length)
    out = []
    for names, steps in ((cov.past, length), (cov.future, length + horizon)):
        if names:
            walk = np.cumsum(rng.normal(size=(batch, steps, len(names))), axis=1)
            level = rng.uniform(-20, 200, size=(batch, 1, len(names)))
            out.append((level + 10.0 ** rng.uniform(-1, 2, size=(batch, 1, len(names))) * walk).astype(np.float32))
    if cov.calendar:
        starts = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 24 * 365, size=batch), unit="h")
        rows = [calendar_matrix(pd.date_range(s, periods=length + horizon, freq="h"), cov.calendar) for s in starts]
        out.append(np.stack(rows))
    return out
