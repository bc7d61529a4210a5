"""The one forecasting entry point. Every protocol decodes a request into a job (app.forecast_jobs), resolves a model
version and calls `forecast` (a forecast after the last values) or `windows` (forecasts from past origins); both run
the same steps, in this order, so nothing can skip a guard. More: docs/design.md#appforecasting.
"""

from __future__ import annotations

import numpy as np

from app import admission, calibration, frequency
from app.cost import Cost, check_windows
from app.errors import InvalidInput, Overloaded
from app.forecast_jobs import CALIBRATIONS, ForecastJob, ForecastResult, WindowJob, Windows
from app.levels import check_levels, check_quantiles, quantile_level
from app.service import ModelService, Predicted


async def forecast(service: ModelService, job: ForecastJob) -> ForecastResult:
    """The forecast of each series after its last value, calibrated on its history when the job asks."""
    service.check_series(job.series)
    horizon = service.horizon(job.horizon)
    if job.calibration not in CALIBRATIONS:
        raise InvalidInput(f"calibration {job.calibration!r} is not known: use one of {list(CALIBRATIONS)}")
    levels = check_levels(job.levels)
    check_quantiles(job.quantiles)
    service.check_head(levels, job.quantiles, job.calibration)
    widths = sorted({*levels, *(quantile_level(q) for q in job.quantiles if q != 0.5)})  # levels answered
    ids = [s.id for s in job.series]
    lengths = [len(s.values) for s in job.series]
    past = None
    if job.calibration != "model":
        past = calibration.origins(
            ids,
            lengths,
            service.card.min_window,
            horizon,
            widths,
            required=job.calibration == "history",
            max_windows=service.limits.max_windows_per_request,
        )
    per_step = 1 + 2 * len(levels) + len(job.quantiles)
    timed = any(s.timestamps is not None or s.start is not None for s in job.series)
    cutoffs = None
    if past is not None:
        cutoffs = [np.append(c, n).astype(np.int64) for c, n in zip(past, lengths, strict=True)]
    cost = service.cost(lengths, cutoffs, horizon, per_step, horizon * len(ids) if timed else 0)
    _admit(service, cost, "the forecast" if past is None else "the forecast with its calibration on history")
    predicted = await _run(service, job, cutoffs, horizon)
    warnings = frequency.mismatch_warnings(service.name, service.card, job.series)
    if cutoffs is None:
        result = predicted.service.answer(predicted.predicted, levels, job.quantiles)
        result.warnings = warnings
        return result
    service = predicted.service
    plan = predicted.predicted.plan
    ends = np.cumsum([len(c) for c in cutoffs])
    last = ends - 1  # each series' forecast: its last window
    firsts = ends - np.asarray([len(c) for c in cutoffs])
    values = [np.asarray(v, dtype=np.float64) for v in plan.values]
    mean, unit = predicted.predicted.mean, predicted.predicted.unit
    halves = [
        {level: service.half_width(level)[None, :horizon] * unit[f : e - 1, None] for level in widths}
        for f, e in zip(firsts, ends, strict=True)
    ]
    calibrated = calibration.factors(
        values,
        [np.asarray(c[:-1]) for c in cutoffs],
        [mean[f : e - 1] for f, e in zip(firsts, ends, strict=True)],
        halves,
        widths,
    )
    result = service.answer(predicted.predicted, levels, job.quantiles, rows=last, widening=calibrated.widening)
    result.calibration = calibrated
    result.warnings = warnings
    return result


async def windows(service: ModelService, job: WindowJob) -> Windows:
    """Forecasts of `job.horizon` steps from each of `job.cutoffs`, in one job; intervals at `job.levels`."""
    service.check_series(job.series)
    horizon = service.horizon(job.horizon)
    levels = check_levels(job.levels)
    lengths = [len(s.values) for s in job.series]
    cost = service.cost(lengths, job.cutoffs, horizon, 1 + 2 * len(levels))
    _admit(service, cost, "the window job")
    ran = await _run(service, job, list(job.cutoffs), horizon)
    plan = ran.predicted.plan
    result = ran.service.answer(ran.predicted, levels)
    result.warnings = frequency.mismatch_warnings(service.name, service.card, job.series)
    return Windows(plan.owner, plan.cutoffs, result, plan.indexes)


def _admit(service: ModelService, cost: Cost, what: str) -> None:
    """Refuses a job that runs more windows than a request may, and charges its memory to the request's
    ticket (a caller outside a request, a benchmark or a test, is not charged)."""
    check_windows(cost, service.limits.max_windows_per_request, what.capitalize())
    ticket = admission.current_ticket.get()
    if ticket is not None:
        ticket.charge(cost.memory, lambda: f"{what} ({cost.windows} windows, {cost.steps} time steps)")


class _Ran:
    def __init__(self, service: ModelService, predicted: Predicted) -> None:
        self.service, self.predicted = service, predicted


async def _run(
    service: ModelService, job: ForecastJob | WindowJob, cutoffs: list[np.ndarray] | None, horizon: int
) -> _Ran:
    """Plan and predict; once more on the copy that replaced `service` when it was retired meanwhile."""
    is_forecast = isinstance(job, ForecastJob)
    for attempt in range(2):
        plan = service.plan(job.series, cutoffs, horizon, forecast=is_forecast)
        try:
            return _Ran(service, await service.predict(plan))
        except Overloaded:
            replacement = service.replaced_by
            if attempt or replacement is None or not service.batcher.closed:
                raise
            service = replacement
    raise AssertionError("unreachable")
