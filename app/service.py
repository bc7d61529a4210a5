"""The model service: one loaded model version, and the steps every request takes to reach it, called in order by
the forecasting entry point (app.forecasting): check the options, cost the windows (app.cost), plan them (each series
checked once: app.series_inputs), predict through the batcher, and answer with intervals and quantiles. It knows
models, not jobs: it never calls back into the entry point or calibration.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from app import cost as costs
from app import series_inputs
from app.batcher import Batcher, Window
from app.errors import InvalidInput, PayloadTooLarge, shown, shown_all
from app.forecast_jobs import ForecastResult, SeriesInput
from app.levels import level_key, quantile_level
from app.model_statistics import ModelStats
from app.runtime import Runtime
from app.timeaxis import future_index, value_index
from contract import quantiles as model_quantiles
from contract.card import ModelCard
from contract.intervals import spread as window_spread
from contract.intervals import unit as interval_unit
from contract.windows import MAX_ABS_VALUE
from contract.words import count

SPREAD_CHUNK = 1024  # windows whose spread is computed in one pass (contract.intervals), bounding its memory


@dataclass(frozen=True)
class Limits:
    max_series_per_request: int
    max_points_per_series: int
    max_windows_per_request: int = 10_000


@dataclass(frozen=True)
class Plan:
    """Windows that passed every check, and how to place their answers."""

    horizon: int
    ids: list[str]  # the series'
    windows: list[Window]  # one per origin, series by series, origins ascending; views of the series
    owner: np.ndarray  # (W,) the series of each window
    cutoffs: np.ndarray  # (W,) values known at each origin
    values: list[np.ndarray]  # per series: its values as float64 (actuals for scoring, history for calibration)
    future: list[pd.DatetimeIndex | None]  # per series: the timestamps of the forecast after its last value
    indexes: list[pd.DatetimeIndex | None]  # per series: its values' timestamps (window jobs with time)


@dataclass(frozen=True)
class Predicted:
    """The model's forecasts of a plan's windows, in the units of the series."""

    plan: Plan
    mean: np.ndarray  # (W, horizon) float64
    unit: np.ndarray  # (W,) float64, the unit of the intervals (the graph's scale, floored: contract.intervals)
    head: np.ndarray | None = None  # (W, horizon, Q) float64: a quantile model's quantiles at the card's levels


@dataclass
class ModelService:
    """One loaded model version: its session, card and batcher, behind the checks every request passes."""

    name: str
    version: str
    runtime: Runtime
    batcher: Batcher
    limits: Limits
    _widths: dict[float, np.ndarray] = field(default_factory=dict)
    # Set by the repository when a new copy of this version replaces this one (a rewritten file): a request that
    # resolved this copy before the swap is answered by the new one (app.forecasting), never refused.
    replaced_by: ModelService | None = None

    @property
    def card(self) -> ModelCard:
        return self.runtime.card

    @property
    def stats(self) -> ModelStats:
        return self.batcher.stats

    # --- check ------------------------------------------------------------------------------------------

    def check_series(self, series: Sequence[SeriesInput]) -> None:
        """Series per request, and unique ids: 422 or 413 naming what to change."""
        if not series:
            raise InvalidInput("no series were sent; send at least one")
        if len(series) > self.limits.max_series_per_request:
            raise PayloadTooLarge(
                f"{len(series)} series in one request; the limit is {self.limits.max_series_per_request} "
                "(GATECAST_MAX_SERIES_PER_REQUEST): split the request"
            )
        series_inputs.check_unique_ids([s.id for s in series])

    def horizon(self, asked: int | None) -> int:
        """The horizon a request asked for (None: the model's own), refused when the model cannot forecast it."""
        card = self.card
        horizon = card.horizon if asked is None else asked
        if not 1 <= horizon <= card.horizon:
            raise InvalidInput(f"horizon {horizon} is out of range: {self.name} forecasts 1 to {card.horizon} steps")
        return horizon

    # --- cost -------------------------------------------------------------------------------------------

    def cost(
        self,
        lengths: Sequence[int],
        cutoffs: Sequence[Sequence[int] | np.ndarray] | None,
        horizon: int,
        answered_per_step: int,
        answered_stamps: int = 0,
    ) -> costs.Cost:
        """What windows from `cutoffs` (None: one after the last value of each series) of series of these `lengths`
        will compute and hold, from the numbers alone."""
        trained = self.card.trained_window
        if cutoffs is None:
            windows = len(lengths)
            steps = sum(min(n, trained) for n in lengths)
        else:
            windows = sum(len(c) for c in cutoffs)
            steps = sum(int(np.minimum(np.asarray(c, dtype=np.int64), trained).sum()) for c in cutoffs)
        cost = costs.window_cost(lengths, windows, steps, horizon, self._channels, answered_per_step, answered_stamps)
        q = len(self.card.quantile_levels)
        if q:  # a quantile head's rows: float32 from the graph (cut to the horizon), float64 for the answer
            head = windows * horizon * (1 + q) * (4 + 8)
            cost = costs.Cost(cost.windows, cost.steps, cost.memory + head)
        return cost

    @functools.cached_property
    def _channels(self) -> int:
        """The covariate and calendar channels a window reads beside its values."""
        covariates = self.card.covariates
        return len(covariates.past) + len(covariates.future) + 2 * len(covariates.calendar)

    # --- plan -------------------------------------------------------------------------------------------

    def plan(
        self, series: Sequence[SeriesInput], cutoffs: Sequence[np.ndarray] | None, horizon: int, forecast: bool = True
    ) -> Plan:
        """The windows of a job: one at each of its `cutoffs` per series (None: one after its last value). A
        forecast (`forecast`) ends with the origin after the last value and places its answer in time; a window
        job (forecasts of the past alone) reads future covariates from the series' later values. Raises
        InvalidInput (422) or PayloadTooLarge (413) naming what to change."""
        if cutoffs is None and self.card.covariates.empty:
            stacked = self._stacked(series, horizon)
            if stacked is not None:
                return stacked
        ids, windows, owners, origins, values, futures, indexes = [], [], [], [], [], [], []
        for i, s in enumerate(series):
            cut = np.asarray([len(s.values)], dtype=np.int64) if cutoffs is None else cutoffs[i]
            prepared = self._prepare(s, cut, forecast=forecast, horizon=horizon)
            ids.append(s.id)
            windows.extend(prepared.windows)
            owners.append(np.full(len(cut), i, dtype=np.int64))
            origins.append(cut)
            values.append(prepared.values)
            futures.append(prepared.future)
            indexes.append(prepared.index)
        owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        flat = np.concatenate(origins).astype(np.int64) if origins else np.zeros(0, np.int64)
        return Plan(horizon, ids, windows, owner, flat, values, futures, indexes)

    def _stacked(self, series: Sequence[SeriesInput], horizon: int) -> Plan | None:
        """Univariate series of one length, sent as JSON lists, converted and checked as one array (a third of
        the time of series by series at 32 x 168, and the shortest path for one series); None for anything
        else, or any refusal, which then goes series by series, so that the error names the series."""
        card = self.card
        first = series[0].values
        n = len(first)
        if (
            not card.min_window <= n <= self.limits.max_points_per_series
            or not all(isinstance(s.values, list) and len(s.values) == n for s in series)
            or any(s.covariates or s.future_covariates or s.calendar is not None for s in series)
        ):
            return None
        values = np.asarray([s.values for s in series], dtype=np.float64)
        window = values[:, -card.trained_window :]
        if not (np.abs(values).max() <= MAX_ABS_VALUE and not (card.positive_only and window.min() <= 0)):
            return None
        b = len(series)
        future = [
            None
            if s.timestamps is None and s.start is None and s.freq is None
            else future_index(s.id, n, horizon, card.freq, s.timestamps, s.start, s.freq)
            for s in series
        ]
        return Plan(
            horizon,
            [s.id for s in series],
            list(window.astype(np.float32)),
            np.arange(b, dtype=np.int64),
            np.full(b, n, dtype=np.int64),
            list(values),
            future,
            [None] * b,
        )

    def _prepare(self, s: SeriesInput, cut: np.ndarray, forecast: bool, horizon: int) -> _Prepared:
        """One series, checked once, and its windows at `cut` as views of it."""
        card, n = self.card, len(s.values)
        if n > self.limits.max_points_per_series:
            raise PayloadTooLarge(
                f"series {shown(s.id)} has {n} values; the limit is {self.limits.max_points_per_series} "
                "(GATECAST_MAX_POINTS_PER_SERIES). Only the last input window is used: send the recent part"
            )
        if n < card.min_window:
            raise InvalidInput(
                f"series {shown(s.id)} has {count(n, 'value')}; this model needs at least {card.min_window} "
                f"(it was trained on {card.trained_window})"
            )
        if len(cut) and (int(cut[0]) < card.min_window or int(cut[-1]) > n):
            raise InvalidInput(
                f"series {shown(s.id)}: forecast origins must lie between value {card.min_window} and its {n} values"
            )
        if card.covariates.empty and (s.covariates or s.future_covariates or s.calendar is not None):
            sent = sorted({*(s.covariates or {}), *(s.future_covariates or {})})
            raise InvalidInput(
                f"series {shown(s.id)}: covariates {shown_all(sent)} are not read: {self.name} is univariate (it "
                "reads the values alone); remove them, or use a model that declares them (GET /models)"
            )
        values = np.asarray(s.values)  # a list becomes float64; an array (OIP) stays as sent, uncopied
        if values.dtype.kind != "f":
            values = values.astype(np.float64)
        trained = card.trained_window
        reads = np.minimum(cut, trained)  # (W,) values each window reads
        lo = int((cut - reads).min()) if len(cut) else n  # the first value any window reads
        series_inputs.check_values(card, s.id, values, lo, cut, reads)
        base = values[lo:].astype(np.float32)  # what the windows read, converted once; each window views it
        wide = values if values.dtype == np.float64 else values.astype(np.float64)
        ahead = card.horizon
        if forecast and int(cut[-1]) != n:
            raise AssertionError("a forecast's last origin follows the last value")  # the entry point's rule
        future = None
        if forecast or card.covariates.calendar:
            future = future_index(s.id, n, ahead, card.freq, s.timestamps, s.start, s.freq)
        index = None if forecast else value_index(s.id, n, card.freq, s.timestamps, s.start, s.freq)
        inputs = [base]
        if not card.covariates.empty:
            inputs.extend(series_inputs.covariate_inputs(card, self.name, s, lo, cut, forecast, future))
        windows: list[Window] = []
        for c, t in zip(cut.tolist(), reads.tolist(), strict=True):
            start, stop = c - t - lo, c - lo
            if len(inputs) == 1:
                windows.append(base[start:stop])
            else:  # covariate inputs with time first: past ones end at the origin, the others `ahead` later
                windows.append(series_inputs.window_inputs(inputs, start, stop, ahead))
        return _Prepared(windows, wide, future[:horizon] if forecast and future is not None else None, index)

    # --- predict ----------------------------------------------------------------------------------------

    async def predict(self, plan: Plan) -> Predicted:
        """The model's forecasts of every window of `plan`, through the batcher; refused when one is not finite."""
        started = time.perf_counter()
        try:
            predicted = await self._predict(plan)
        except Exception:
            self.stats.fail.add(time.perf_counter() - started)
            raise
        self.stats.success.add(time.perf_counter() - started)
        return predicted

    async def _predict(self, plan: Plan) -> Predicted:
        horizon = plan.horizon
        if not plan.windows:
            return Predicted(plan, np.zeros((0, horizon)), np.zeros(0))
        forecasts, scales = await self.batcher.submit(plan.windows, horizon if self.card.quantile_levels else None)
        head = None
        if forecasts.ndim == 3:  # a quantile model: the forecast, then its quantiles (app.runtime)
            head = forecasts[:, :horizon, 1:].astype(np.float64)  # (W, H, Q)
            forecasts = forecasts[:, :, 0]
        mean = forecasts[:, :horizon].astype(np.float64)  # (W, H)
        unit = np.asarray(scales, dtype=np.float64).reshape(-1)  # (W,) the graph's
        floor = self.card.conformal.scale_floor
        if floor:  # the unit of the widths, as calibration computed it (contract.intervals)
            values = [w[0] if isinstance(w, tuple) else w for w in plan.windows]
            spreads = np.concatenate(
                [window_spread(values[i : i + SPREAD_CHUNK]) for i in range(0, len(values), SPREAD_CHUNK)]
            )
            unit = interval_unit(unit, spreads, floor)
        # float32 values summed in float64 cannot overflow: the sum is finite exactly when every value is.
        if not math.isfinite(float(mean.sum()) + float(unit.sum()) + (float(head.sum()) if head is not None else 0.0)):
            finite = np.isfinite(mean).all(axis=1) & np.isfinite(unit)
            if head is not None:
                finite &= np.isfinite(head).all(axis=(1, 2))
            w = int(np.flatnonzero(~finite)[0])
            series = plan.ids[int(plan.owner[w])]
            origin = "" if plan.cutoffs[w] == len(plan.values[plan.owner[w]]) else f" from value {plan.cutoffs[w]}"
            raise InvalidInput(
                f"the forecast of series {shown(series)}{origin} is not finite: its values are too large or too "
                "spread for float32; rescale the series and scale the forecast back"
            )
        return Predicted(plan, mean, unit, head)

    # --- answer -----------------------------------------------------------------------------------------

    def answer(
        self,
        predicted: Predicted,
        levels: Sequence[float],
        quantiles: Sequence[float] = (),
        rows: np.ndarray | None = None,
        widening: Mapping[float, np.ndarray] | None = None,
    ) -> ForecastResult:
        """Intervals at `levels` and `quantiles` for the predicted `rows` (all when None), their half-widths
        multiplied per row by `widening[level]` when given."""
        mean, unit, head = predicted.mean, predicted.unit, predicted.head
        if rows is not None:
            mean, unit = mean[rows], unit[rows]
            head = head[rows] if head is not None else None
        if head is not None and widening is None:
            return self._answer_from_head(predicted, mean, unit, head, levels, quantiles)
        return self._answer_conformal(predicted, mean, unit, levels, quantiles, widening)

    def _answer_conformal(
        self,
        predicted: Predicted,
        mean: np.ndarray,
        unit: np.ndarray,
        levels: Sequence[float],
        quantiles: Sequence[float],
        widening: Mapping[float, np.ndarray] | None,
    ) -> ForecastResult:
        plan = predicted.plan
        horizon = mean.shape[1]

        def half_width(level: float) -> np.ndarray:  # (R, H)
            factor = unit if widening is None else unit * widening[level]
            width: np.ndarray = self._width(level)[None, :horizon] * factor[:, None]
            return width

        intervals = {}
        for level in levels:
            width = half_width(level)
            intervals[float(level)] = (mean - width, mean + width)
        # Quantile q is a bound of the symmetric conformal interval at level |2q - 1|: the lower one below the
        # median, the upper one above it, the mean at 0.5.
        answered_quantiles = {}
        for q in sorted(quantiles):
            if q == 0.5:
                answered_quantiles[0.5] = mean.copy()
                continue
            offset = half_width(quantile_level(q))
            answered_quantiles[float(q)] = mean - offset if q < 0.5 else mean + offset
        return self._result(plan, mean, unit, levels, intervals, answered_quantiles)

    def _result(
        self,
        plan: Plan,
        mean: np.ndarray,
        unit: np.ndarray,
        levels: Sequence[float],
        intervals: dict[float, tuple[np.ndarray, np.ndarray]],
        quantiles: dict[float, np.ndarray],
    ) -> ForecastResult:
        return ForecastResult(
            self.name,
            self.version,
            mean.shape[1],
            sorted(float(level) for level in levels),
            plan.ids,
            mean,
            unit,
            intervals,
            plan.future,
            quantiles,
        )

    def _answer_from_head(
        self,
        predicted: Predicted,
        mean: np.ndarray,
        unit: np.ndarray,
        head: np.ndarray,
        levels: Sequence[float],
        quantiles: Sequence[float],
    ) -> ForecastResult:
        """Intervals and quantiles read off the quantile head (contract.quantiles), at its levels or between them; a
        level beyond them (a window job's: forecasts refuse it, `check_head`) from the conformal table."""
        declared = self.card.quantile_levels
        intervals = {}
        for level in levels:
            lo, hi = model_quantiles.interval_bounds(level)
            if model_quantiles.covers(declared, lo) and model_quantiles.covers(declared, hi):
                intervals[float(level)] = (
                    model_quantiles.at(declared, head, lo),
                    model_quantiles.at(declared, head, hi),
                )
            else:  # a window job's level beyond the head (anomalies at 99%): the conformal table's widths
                width = self._width(level)[None, : mean.shape[1]] * unit[:, None]
                intervals[float(level)] = (mean - width, mean + width)
        answered = {float(q): model_quantiles.at(declared, head, q) for q in sorted(quantiles)}
        return self._result(predicted.plan, mean, unit, levels, intervals, answered)

    def check_head(self, levels: Sequence[float], quantiles: Sequence[float], calibration: str = "model") -> None:
        """A quantile model answers from its head (calibration "model") only what its levels span: a level or
        quantile beyond them is refused by name (422), with what to ask instead."""
        declared = self.card.quantile_levels
        if not declared or calibration != "model":
            return
        lo, hi = declared[0], declared[-1]
        widest = level_key(round((hi - lo) * 100, 9))
        for level in levels:
            a, b = model_quantiles.interval_bounds(level)
            if not (model_quantiles.covers(declared, a) and model_quantiles.covers(declared, b)):
                raise InvalidInput(
                    f"level {level_key(level)} needs quantiles {a:g} and {b:g}; {self.name} forecasts quantiles "
                    f"{lo:g} to {hi:g}: ask for levels up to {widest}, or calibration 'history' for conformal widths"
                )
        for q in quantiles:
            if not model_quantiles.covers(declared, q):
                raise InvalidInput(
                    f"quantile {q:g} lies outside the quantiles {self.name} forecasts ({lo:g} to {hi:g}); ask for "
                    "probabilities in that range, or calibration 'history' for conformal widths"
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


@dataclass(frozen=True)
class _Prepared:
    windows: list[Window]
    values: np.ndarray  # float64, the whole series
    future: pd.DatetimeIndex | None  # a forecast's timestamps (forecast jobs with time)
    index: pd.DatetimeIndex | None  # the values' timestamps (window jobs with time)
