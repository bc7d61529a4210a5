"""The one guarded path from a request to a model. Every route and protocol decodes its body into a
`ForecastJob`, calls the `ModelService` of the version it resolved, and renders the `ForecastResult`.

What happens in between is written here once, so a route added later inherits all of it:

    check     series and points per request, the horizon, the levels and quantiles, unique ids
    window    the artifact's input rules: minimum length, cut to the trained window, finite values, magnitude
    time      future timestamps from `timestamps` or `start` + `freq` (app.timeaxis)
    covariate the card's covariates by name and role: none missing, none unknown, lengths that match, the
              calendar computed from the time information (contract.covariates)
    calibrate with `calibration: "history"` or "auto", the widths rescaled on forecasts of each series' past
    admit     the answer's memory, charged to the request's ticket (app.admission)
    predict   the batcher: concurrent requests share onnxruntime runs; a failed run is retried per request
    finish    finite outputs only, conformal intervals at the requested levels, quantiles from the same table
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from app import admission
from app.batcher import Batcher, Window
from app.calibration import calibrate
from app.errors import InvalidInput, PayloadTooLarge
from app.jobs import CALIBRATIONS, Calibration, ForecastJob, ForecastResult, SeriesInput
from app.runtime import Runtime
from app.stats import ModelStats
from app.timeaxis import future_index
from contract.card import ModelCard
from contract.covariates import calendar_matrix
from contract.intervals import spread as window_spread
from contract.intervals import unit as interval_unit
from contract.windows import MAX_ABS_VALUE, last_window

MAX_LEVELS = 20


@dataclass(frozen=True)
class Limits:
    max_series_per_request: int
    max_points_per_series: int


@dataclass(frozen=True)
class Plan:
    """A job that passed every check: what to run, and how to answer it."""

    horizon: int
    levels: list[float]
    windows: list[Window]  # float32, each at most the trained window (app.batcher.Window)
    future: list[pd.DatetimeIndex | None]


@dataclass
class ModelService:
    """One loaded model version: its session, card and batcher, behind the checks every request passes."""

    name: str
    version: str
    runtime: Runtime
    batcher: Batcher
    limits: Limits
    _widths: dict[float, np.ndarray] = field(default_factory=dict)

    @property
    def card(self) -> ModelCard:
        return self.runtime.card

    @property
    def stats(self) -> ModelStats:
        return self.batcher.stats

    async def forecast(self, job: ForecastJob) -> ForecastResult:
        plan = self.check(job)
        calibration = None
        if job.calibration != "model":  # forecasts of the series' past first: a job of their own, as guarded
            levels = sorted({*plan.levels, *(quantile_level(q) for q in job.quantiles if q != 0.5)})
            calibration = await calibrate(self, job.series, plan.horizon, levels, required=job.calibration == "history")
        per_step = 1 + 2 * len(plan.levels) + len(job.quantiles)
        self._admit(len(plan.windows), plan.horizon, per_step, any(f is not None for f in plan.future))
        started = time.perf_counter()
        try:
            forecasts, scales = await self.batcher.submit(plan.windows)
            result = self._finish(job, plan, forecasts, scales, calibration)
        except Exception:
            self.stats.fail.add(time.perf_counter() - started)
            raise
        self.stats.success.add(time.perf_counter() - started)
        return result

    def check(self, job: ForecastJob) -> Plan:
        """Everything a request must satisfy before it may reach the model; raises InvalidInput (422) or
        PayloadTooLarge (413) naming what to change."""
        card, limits = self.card, self.limits
        if not job.series:
            raise InvalidInput("no series were sent; send at least one")
        if len(job.series) > limits.max_series_per_request:
            raise PayloadTooLarge(
                f"{len(job.series)} series in one request; the limit is {limits.max_series_per_request} "
                "(GATECAST_MAX_SERIES_PER_REQUEST): split the request"
            )
        horizon = self.horizon(job.horizon)
        if job.calibration not in CALIBRATIONS:
            raise InvalidInput(f"calibration {job.calibration!r} is not known: use one of {list(CALIBRATIONS)}")
        levels = check_levels(job.levels)
        check_quantiles(job.quantiles)
        check_unique_ids([s.id for s in job.series])
        if not card.covariates.empty:
            return self._plan_with_covariates(job.series, horizon, levels)
        for s in job.series:
            if s.covariates or s.future_covariates or s.calendar is not None:
                sent = sorted({*(s.covariates or {}), *(s.future_covariates or {})})
                raise InvalidInput(
                    f"series {s.id!r}: covariates {sent} are not read: {self.name} is univariate (it reads the "
                    "values alone); remove them, or use a model that declares them (GET /models)"
                )
        windows: list[Window] = list(self._windows(job.series))
        future = [
            future_index(s.id, len(s.values), horizon, card.freq, s.timestamps, s.start, s.freq) for s in job.series
        ]
        return Plan(horizon, levels, windows, future)

    def horizon(self, asked: int | None) -> int:
        """The horizon a request asked for (None: the model's own), refused when the model cannot forecast it."""
        card = self.card
        horizon = card.horizon if asked is None else asked
        if not 1 <= horizon <= card.horizon:
            raise InvalidInput(f"horizon {horizon} is out of range: {self.name} forecasts 1 to {card.horizon} steps")
        return horizon

    def _plan_with_covariates(self, series: Sequence[SeriesInput], horizon: int, levels: list[float]) -> Plan:
        """Series by series: the window, and its covariate inputs in contract.signature order."""
        card = self.card
        cov, ahead = card.covariates, card.horizon
        windows: list[Window] = []
        future: list[pd.DatetimeIndex | None] = []
        for s in series:
            values = self._window(s)
            t = len(values)
            inputs: list[np.ndarray] = [values]
            sent = dict(s.covariates or {})
            sent_ahead = dict(s.future_covariates or {})
            self._check_names(s.id, sent, sent_ahead)
            if cov.past:
                inputs.append(np.stack([self._observed(s, name, sent[name])[-t:] for name in cov.past], axis=1))
            if cov.future:
                columns = []
                for name in cov.future:
                    later = self._ahead(s.id, name, sent_ahead[name], ahead)
                    columns.append(np.concatenate([self._observed(s, name, sent[name])[-t:], later]))
                inputs.append(np.stack(columns, axis=1))
            # The model reads all `ahead` steps of future time; the answer shows the `horizon` asked for.
            stamps = future_index(s.id, len(s.values), ahead, card.freq, s.timestamps, s.start, s.freq)
            if cov.calendar and s.calendar is not None:
                inputs.append(self._client_calendar(s, ahead)[-(t + ahead) :])
            elif cov.calendar:
                if stamps is None:
                    raise InvalidInput(
                        f"series {s.id!r}: {self.name} reads calendar features ({', '.join(cov.calendar)}) computed "
                        "from time; send `timestamps` (one per value) or `start` (and `freq`)"
                    )
                index = pd.date_range(end=stamps[-1], periods=t + ahead, freq=stamps.freq)
                inputs.append(calendar_matrix(index, cov.calendar))
            windows.append(tuple(a.astype(np.float32, copy=False) for a in inputs))
            future.append(stamps[:horizon] if stamps is not None else None)
        return Plan(horizon, levels, windows, future)

    def _client_calendar(self, s: SeriesInput, ahead: int) -> np.ndarray:
        calendar = np.asarray(s.calendar, dtype=np.float64)
        want = (len(s.values) + ahead, 2 * len(self.card.covariates.calendar))
        if calendar.shape != want:
            raise InvalidInput(f"series {s.id!r}: calendar has shape {list(calendar.shape)}; it must be {list(want)}")
        if not np.all(np.abs(calendar) <= 1.0 + 1e-6):
            raise InvalidInput(f"series {s.id!r}: calendar channels are sines and cosines: every value in [-1, 1]")
        return calendar

    def _check_names(self, series_id: str, sent: Mapping[str, object], sent_ahead: Mapping[str, object]) -> None:
        cov = self.card.covariates
        known = f"{self.name} reads covariates past {list(cov.past)}, future {list(cov.future)}"
        missing = [n for n in cov.observed if n not in sent]
        if missing:
            raise InvalidInput(f"series {series_id!r}: covariates {missing} are missing; {known}")
        unknown = [n for n in sent if n not in cov.observed]
        if unknown:
            raise InvalidInput(f"series {series_id!r}: covariates {unknown} are not known to this model; {known}")
        missing = [n for n in cov.future if n not in sent_ahead]
        if missing:
            raise InvalidInput(
                f"series {series_id!r}: future_covariates {missing} are missing: give their values for the "
                f"{self.card.horizon} steps ahead"
            )
        unknown = [n for n in sent_ahead if n not in cov.future]
        if unknown:
            past = [n for n in unknown if n in cov.past]
            why = f" ({past} are known up to the forecast origin only)" if past else ""
            raise InvalidInput(
                f"series {series_id!r}: future_covariates {unknown} are not read as future covariates{why}; "
                f"{self.name}'s future covariates are {list(cov.future)}"
            )

    def _observed(self, s: SeriesInput, name: str, column: np.ndarray | Sequence[float]) -> np.ndarray:
        values = self._finite(s.id, name, column)
        if len(values) != len(s.values):
            raise InvalidInput(
                f"series {s.id!r}: covariate {name!r} has {len(values)} values and the series {len(s.values)}; "
                "send one covariate value per value"
            )
        return values

    def _ahead(self, series_id: str, name: str, column: np.ndarray | Sequence[float], ahead: int) -> np.ndarray:
        values = self._finite(series_id, name, column)
        if len(values) != ahead:
            raise InvalidInput(
                f"series {series_id!r}: future covariate {name!r} has {len(values)} values; {self.name} reads "
                f"{ahead}, one per step it forecasts (a shorter `horizon` only cuts the answer)"
            )
        return values

    @staticmethod
    def _finite(series_id: str, name: str, column: np.ndarray | Sequence[float]) -> np.ndarray:
        values = np.asarray(column, dtype=np.float64)
        if values.ndim != 1:
            raise InvalidInput(f"series {series_id!r}: covariate {name!r} must be a list of numbers")
        if len(values) and not float(np.abs(values).max()) <= MAX_ABS_VALUE:
            bad = int(np.flatnonzero(~(np.abs(values) <= MAX_ABS_VALUE))[0])
            raise InvalidInput(
                f"series {series_id!r}: covariate {name!r} value {bad} is {values[bad]}; covariates must be finite "
                f"and below {MAX_ABS_VALUE:.2g} in magnitude"
            )
        return values

    def _windows(self, series: Sequence[SeriesInput]) -> list[np.ndarray]:
        """Every series' window, as float32. Several series of one length, sent as JSON lists, are converted and
        checked as one array (a third of the time of series by series at 32 x 168); anything else, and every
        refusal, goes series by series, so the error names the series."""
        first = series[0].values
        n = len(first)
        if (
            len(series) > 1
            and self.card.min_window <= n <= self.limits.max_points_per_series
            and all(isinstance(s.values, list) and len(s.values) == n for s in series)
        ):
            values = np.asarray([s.values for s in series], dtype=np.float64)
            window = values[:, -self.card.trained_window :]
            if np.abs(values).max() <= MAX_ABS_VALUE and not (self.card.positive_only and window.min() <= 0):
                return list(window.astype(np.float32))
        return [self._window(s) for s in series]

    def _window(self, series: SeriesInput) -> np.ndarray:
        n = len(series.values)
        if n > self.limits.max_points_per_series:
            raise PayloadTooLarge(
                f"series {series.id!r} has {n} values; the limit is {self.limits.max_points_per_series} "
                "(GATECAST_MAX_POINTS_PER_SERIES). Only the last input window is used: send the recent part"
            )
        card = self.card
        if n < card.min_window:
            raise InvalidInput(
                f"series {series.id!r} has {n} values; this model needs at least {card.min_window} "
                f"(it was trained on {card.trained_window})"
            )
        values = np.asarray(series.values)  # a list becomes float64; an array (OIP) stays as sent, uncopied
        if values.dtype.kind != "f":
            values = values.astype(np.float64)
        # One reduction for the common case: the largest magnitude is NaN or inf exactly when a value is.
        window = last_window(values, card.trained_window)
        if not float(np.abs(values).max()) <= MAX_ABS_VALUE:  # float(): a float16 array would cast the limit
            self._refuse_values(series.id, values, window)
        if card.positive_only and not float(window.min()) > 0:
            bad = len(values) - len(window) + int(np.argmin(window > 0))
            raise InvalidInput(
                f"series {series.id!r}: value {bad} is {values[bad]}; model {card.name!r} forecasts the logarithm "
                f"of the series and needs every value of its last {card.trained_window} to be > 0"
            )
        return window.astype(np.float32)

    @staticmethod
    def _refuse_values(series_id: str, values: np.ndarray, window: np.ndarray) -> None:
        """Raises for a non-finite value anywhere, or a magnitude the float32 model cannot carry in the window;
        large values before the window are never read, so they pass."""
        if not np.isfinite(values).all():
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise InvalidInput(f"series {series_id!r}: value {bad} is {values[bad]}; every value must be finite")
        peak = float(np.abs(window.astype(np.float64)).max())
        if peak > MAX_ABS_VALUE:
            raise InvalidInput(
                f"series {series_id!r} holds values up to {peak:.3g}; the model computes in float32 and forecasts "
                f"must stay below {MAX_ABS_VALUE:.2g}: rescale the series (e.g. divide by 1e6) and scale back"
            )

    def _admit(self, series: int, horizon: int, per_step: int, timestamps: bool) -> None:
        ticket = admission.current_ticket.get()
        if ticket is not None:
            cost = admission.answer_cost(series, horizon, per_step, timestamps)
            ticket.charge(cost, lambda: f"an answer of {series} series x {horizon} steps x {per_step} values")

    def _finish(
        self,
        job: ForecastJob,
        plan: Plan,
        forecasts: list[np.ndarray],
        scales: list[np.ndarray],
        calibration: Calibration | None,
    ) -> ForecastResult:
        horizon = plan.horizon
        mean = np.stack(forecasts)[:, :horizon].astype(np.float64)  # (B, H)
        scale = np.asarray(scales, dtype=np.float64).reshape(-1)  # (B,) the graph's
        floor = self.card.conformal.scale_floor
        if floor:  # the unit of the widths, as calibration computed it (contract.intervals)
            values = [w[0] if isinstance(w, tuple) else w for w in plan.windows]
            scale = interval_unit(scale, window_spread(values), floor)
        # float32 values summed in float64 cannot overflow: the sum is finite exactly when every value is.
        if not math.isfinite(float(mean.sum()) + float(scale.sum())):
            finite = np.isfinite(mean).all(axis=1) & np.isfinite(scale)
            bad = job.series[int(np.flatnonzero(~finite)[0])].id
            raise InvalidInput(
                f"the forecast of series {bad!r} is not finite: its values are too large or too spread for float32; "
                "rescale the series and scale the forecast back"
            )

        def half_width(level: float) -> np.ndarray:  # (B, H)
            unit = scale if calibration is None else scale * calibration.widening[level]
            return self._width(level)[None, :horizon] * unit[:, None]

        intervals = {}
        for level in plan.levels:
            width = half_width(level)
            intervals[level] = (mean - width, mean + width)
        # Quantile q is a bound of the symmetric conformal interval at level |2q - 1|: the lower one below the
        # median, the upper one above it, the mean at 0.5.
        quantiles = {}
        for q in sorted(job.quantiles):
            if q == 0.5:
                quantiles[0.5] = mean.copy()
                continue
            offset = half_width(quantile_level(q))
            quantiles[float(q)] = mean - offset if q < 0.5 else mean + offset
        ids = [s.id for s in job.series]
        return ForecastResult(
            self.name,
            self.version,
            horizon,
            plan.levels,
            ids,
            mean,
            scale,
            intervals,
            plan.future,
            quantiles,
            calibration,
        )

    def half_width(self, level: float) -> np.ndarray:
        """Half-width of the interval at `level` (percent) per step of the model's horizon, in units of a
        forecast's `scale`."""
        return self._width(level)

    def _width(self, level: float) -> np.ndarray:
        """Conformal half-width per step in units of the window's scale (cached per level)."""
        width = self._widths.get(level)
        if width is None:
            width = np.asarray(self.card.conformal.half_width_factors(level / 100))
            if len(self._widths) < 256:
                self._widths[level] = width
        return width


def check_levels(levels: Sequence[float]) -> list[float]:
    if len(levels) > MAX_LEVELS:
        raise InvalidInput(f"{len(levels)} levels were asked for; ask for at most {MAX_LEVELS}")
    for level in levels:
        if not math.isfinite(level) or not 0 < level < 100:
            raise InvalidInput(f"level {level} is out of range: levels are percentages strictly between 0 and 100")
    if len(set(levels)) != len(levels):
        raise InvalidInput(f"level {list(levels)} repeats a value; list each level once")
    return sorted(float(level) for level in levels)


def quantile_level(q: float) -> float:
    """The level (percent) of the symmetric interval that quantile q bounds: 0.1 and 0.9 -> 80."""
    return round(abs(2 * q - 1) * 100, 9)


def level_key(level: float) -> str:
    """The one spelling of a level in every answer's keys: 80 -> '80', 99.5 -> '99.5'."""
    return str(int(level)) if float(level).is_integer() else str(level)


def check_quantiles(quantiles: Sequence[float]) -> None:
    if len(quantiles) > MAX_LEVELS:
        raise InvalidInput(f"{len(quantiles)} quantiles were asked for; ask for at most {MAX_LEVELS}")
    for q in quantiles:
        if not math.isfinite(q) or not 0 < q < 1:
            raise InvalidInput(f"quantile {q} is out of range: quantiles are probabilities strictly between 0 and 1")
    if len(set(quantiles)) != len(quantiles):
        raise InvalidInput(f"quantiles {list(quantiles)} repeat a value; list each quantile once")


def check_unique_ids(ids: list[str]) -> None:
    if len(set(ids)) == len(ids):
        return
    seen: set[str] = set()
    for series_id in ids:
        if series_id in seen:
            raise InvalidInput(f"series id {series_id!r} appears more than once; ids must be unique within a request")
        seen.add(series_id)
