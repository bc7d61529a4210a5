"""One series' values and covariates checked against a model's card and turned into its window inputs: values
finite and in float32's reach, covariates by name and role (none missing, none unknown, lengths that match), the
calendar from the series' time or the client's channels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from app.errors import InvalidInput, shown, shown_all
from app.forecast_jobs import SeriesInput
from contract.card import ModelCard
from contract.covariates import calendar_matrix
from contract.windows import MAX_ABS_VALUE
from contract.words import count


def check_values(
    card: ModelCard, series_id: str, values: np.ndarray, lo: int, cut: np.ndarray, reads: np.ndarray
) -> None:
    """Every value finite; the values the windows read below float32's reach and, for a model of the
    logarithm, above 0. Values before the first window are never read: only their finiteness matters."""
    if not len(values):
        return
    # One reduction for the common case: the largest magnitude is NaN or inf exactly when a value is.
    if float(np.abs(values).max()) <= MAX_ABS_VALUE and not card.positive_only:
        return
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise InvalidInput(f"series {shown(series_id)}: value {bad} is {values[bad]}; every value must be finite")
    read = values[lo:]
    peak = float(np.abs(read.astype(np.float64)).max()) if len(read) else 0.0
    if peak > MAX_ABS_VALUE:
        raise InvalidInput(
            f"series {shown(series_id)} holds values up to {peak:.3g}; the model computes in float32 and "
            f"forecasts must stay below {MAX_ABS_VALUE:.2g}: rescale the series (e.g. divide by 1e6) and scale back"
        )
    if card.positive_only:
        bad_before = np.concatenate([[0], np.cumsum(read <= 0)])  # non-positive values before each position
        ends, starts = cut - lo, cut - reads - lo
        hit = np.flatnonzero(bad_before[ends] - bad_before[starts] > 0)
        if len(hit):
            w = int(hit[0])
            at = lo + int(starts[w]) + int(np.argmax(read[starts[w] : ends[w]] <= 0))
            raise InvalidInput(
                f"series {shown(series_id)}: value {at} is {values[at]}; model {card.name!r} forecasts the "
                f"logarithm of the series and needs every value of its last {card.trained_window} to be > 0"
            )


def covariate_inputs(
    card: ModelCard,
    model: str,
    s: SeriesInput,
    lo: int,
    cut: np.ndarray,
    forecast: bool,
    future: pd.DatetimeIndex | None,
) -> list[np.ndarray]:
    """The covariate inputs over the values the windows read (from `lo`), in contract.signature order, time
    first: past covariates up to the last origin, future ones and the calendar `ahead` steps beyond it."""
    cov, ahead, n = card.covariates, card.horizon, len(s.values)
    sent = dict(s.covariates or {})
    sent_ahead = dict(s.future_covariates or {})
    _check_names(card, model, s.id, sent, sent_ahead, forecast)
    observed = {name: _observed(s, name, sent[name]) for name in cov.observed}
    inputs: list[np.ndarray] = []
    if cov.past:
        inputs.append(np.stack([observed[name][lo:] for name in cov.past], axis=1).astype(np.float32))
    if cov.future:
        columns = []
        for name in cov.future:
            later = sent_ahead.get(name)
            later = _ahead(model, s.id, name, later, ahead if forecast else None) if later is not None else None
            column = np.concatenate([observed[name], later]) if later is not None else observed[name]
            need = int(cut[-1]) + ahead if len(cut) else lo
            if len(column) < need:
                raise InvalidInput(
                    f"series {shown(s.id)}: the forecast from value {int(cut[-1])} reads future covariate "
                    f"{shown(name)} for {ahead} steps, past the {len(column)} values sent: send its "
                    "future_covariates for the steps after the last value, or ask for fewer windows"
                )
            columns.append(column[lo:need])
        inputs.append(np.stack(columns, axis=1).astype(np.float32))
    if cov.calendar:
        if s.calendar is not None:
            inputs.append(_client_calendar(card, s, ahead)[lo:].astype(np.float32))
        elif future is None:
            raise InvalidInput(
                f"series {shown(s.id)}: {model} reads calendar features ({', '.join(cov.calendar)}) "
                "computed from time; send `timestamps` (one per value) or `start` (and `freq`)"
            )
        else:
            index = pd.date_range(end=future[-1], periods=n - lo + ahead, freq=future.freq)
            inputs.append(calendar_matrix(index, cov.calendar).astype(np.float32))
    return inputs


def _client_calendar(card: ModelCard, s: SeriesInput, ahead: int) -> np.ndarray:
    calendar = np.asarray(s.calendar, dtype=np.float64)
    want = (len(s.values) + ahead, 2 * len(card.covariates.calendar))
    if calendar.shape != want:
        raise InvalidInput(f"series {shown(s.id)}: calendar has shape {list(calendar.shape)}; it must be {list(want)}")
    if not np.all(np.abs(calendar) <= 1.0 + 1e-6):
        raise InvalidInput(f"series {shown(s.id)}: calendar channels are sines and cosines: every value in [-1, 1]")
    return calendar


def _check_names(
    card: ModelCard,
    model: str,
    series_id: str,
    sent: Mapping[str, object],
    sent_ahead: Mapping[str, object],
    forecast: bool,
) -> None:
    cov = card.covariates
    known = f"{model} reads covariates past {list(cov.past)}, future {list(cov.future)}"
    where = f"series {shown(series_id)}"
    missing = [n for n in cov.observed if n not in sent]
    if missing:
        raise InvalidInput(f"{where}: covariates {missing} are missing; {known}")
    unknown = [n for n in sent if n not in cov.observed]
    if unknown:
        raise InvalidInput(f"{where}: covariates {shown_all(unknown)} are not known to this model; {known}")
    missing = [n for n in cov.future if n not in sent_ahead]
    if missing and forecast:
        raise InvalidInput(
            f"{where}: future_covariates {missing} are missing: give their values for the {card.horizon} steps ahead"
        )
    unknown = [n for n in sent_ahead if n not in cov.future]
    if unknown:
        past = [n for n in unknown if n in cov.past]
        why = f" ({past} are known up to the forecast origin only)" if past else ""
        raise InvalidInput(
            f"{where}: future_covariates {shown_all(unknown)} are not read as future covariates{why}; "
            f"{model}'s future covariates are {list(cov.future)}"
        )


def _observed(s: SeriesInput, name: str, column: np.ndarray | Sequence[float]) -> np.ndarray:
    """The one rule for a covariate sent beside the values, on every route: one finite value per value."""
    values = _finite(s.id, name, column)
    if len(values) != len(s.values):
        raise InvalidInput(
            f"series {shown(s.id)}: covariate {shown(name)} has {count(len(values), 'value')} and the series "
            f"{len(s.values)}; send one covariate value per value"
        )
    return values


def _ahead(
    model: str, series_id: str, name: str, column: np.ndarray | Sequence[float], ahead: int | None
) -> np.ndarray:
    """Future values of a future covariate: exactly `ahead` for a forecast, any number for a window job."""
    values = _finite(series_id, name, column)
    if ahead is not None and len(values) != ahead:
        raise InvalidInput(
            f"series {shown(series_id)}: future covariate {shown(name)} has {count(len(values), 'value')}; "
            f"{model} reads {ahead}, one per step it forecasts (a shorter `horizon` only cuts the answer)"
        )
    return values


def _finite(series_id: str, name: str, column: np.ndarray | Sequence[float]) -> np.ndarray:
    values = np.asarray(column, dtype=np.float64)
    if values.ndim != 1:
        raise InvalidInput(f"series {shown(series_id)}: covariate {shown(name)} must be a list of numbers")
    if len(values) and not float(np.abs(values).max()) <= MAX_ABS_VALUE:
        bad = int(np.flatnonzero(~(np.abs(values) <= MAX_ABS_VALUE))[0])
        raise InvalidInput(
            f"series {shown(series_id)}: covariate {shown(name)} value {bad} is {values[bad]}; covariates must "
            f"be finite and below {MAX_ABS_VALUE:.2g} in magnitude"
        )
    return values


def check_unique_ids(ids: list[str]) -> None:
    if len(set(ids)) == len(ids):
        return
    seen: set[str] = set()
    for series_id in ids:
        if series_id in seen:
            raise InvalidInput(
                f"series id {shown(series_id)} appears more than once; ids must be unique within a request"
            )
        seen.add(series_id)


def window_inputs(inputs: list[np.ndarray], start: int, stop: int, ahead: int) -> tuple[np.ndarray, ...]:
    """One window's inputs as views: the values and past covariates up to its origin, future covariates and the
    calendar `ahead` steps beyond it (their arrays are that much longer than the values')."""
    base = len(inputs[0])
    return tuple(a[start:stop] if len(a) <= base else a[start : stop + ahead] for a in inputs)
