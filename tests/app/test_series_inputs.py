"""app.series_inputs: one series checked against a model's card and turned into its window inputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from app import series_inputs
from app.errors import InvalidInput
from app.forecast_jobs import SeriesInput
from contract.card import ModelCard

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def card(name: str) -> ModelCard:
    graph = onnx.load(str(FIXTURES / name / "1" / "model.onnx"), load_external_data=False)
    return ModelCard.from_props({p.key: p.value for p in graph.metadata_props})


def test_values_must_be_finite_and_within_float32s_reach() -> None:
    tiny = card("tiny")
    values = np.arange(60, dtype=np.float64)
    cut, reads = np.array([60]), np.array([48])
    series_inputs.check_values(tiny, "a", values, 12, cut, reads)
    values[3] = np.nan  # before the window, and still refused: every value must be finite
    with pytest.raises(InvalidInput, match="series 'a': value 3 is nan"):
        series_inputs.check_values(tiny, "a", values, 12, cut, reads)
    values[3] = 0.0
    values[-1] = 1e39
    with pytest.raises(InvalidInput, match="rescale the series"):
        series_inputs.check_values(tiny, "a", values, 12, cut, reads)


def test_a_model_of_the_logarithm_names_the_first_value_it_cannot_read() -> None:
    log_model = dataclasses.replace(card("tiny"), transform="log")
    values = np.ones(60)
    values[[5, 20]] = 0.0  # value 5 lies before the window (never read), value 20 inside it
    with pytest.raises(InvalidInput, match=r"value 20 is 0.0; .* to be > 0"):
        series_inputs.check_values(log_model, "a", values, 12, np.array([60]), np.array([48]))


def covariate_series(**overrides: object) -> SeriesInput:
    n = 60
    fields: dict[str, object] = {
        "id": "s",
        "values": np.ones(n),
        "start": pd.Timestamp("2024-01-01").to_pydatetime(),
        "freq": "h",
        "covariates": {"load": np.ones(n), "plan": np.ones(n)},
        "future_covariates": {"plan": np.ones(12)},
    }
    fields.update(overrides)
    return SeriesInput(**fields)  # type: ignore[arg-type]


def inputs(s: SeriesInput, forecast: bool = True) -> list[np.ndarray]:
    """A forecast's window after the last value, or a window job's 12 values before it (its 12 steps are known)."""
    tinycov = card("tinycov")
    n = len(s.values)
    origin = n if forecast else n - tinycov.horizon
    future = pd.date_range("2024-01-01", periods=n + tinycov.horizon, freq="h")[n:]
    return series_inputs.covariate_inputs(tinycov, "tinycov", s, origin - 48, np.array([origin]), forecast, future)


def test_past_future_and_calendar_inputs_in_order_each_as_long_as_it_reads() -> None:
    past, future, calendar = inputs(covariate_series())
    assert past.shape == (48, 1)  # up to the origin
    assert future.shape == (48 + 12, 1)  # and the 12 steps it forecasts
    assert calendar.shape == (48 + 12, 4)  # hour of day and day of week, a sine and a cosine each


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"covariates": {"plan": np.ones(60)}}, r"covariates \['load'\] are missing"),
        ({"covariates": {"load": np.ones(60), "plan": np.ones(60), "x": np.ones(60)}}, "are not known to this model"),
        ({"future_covariates": {}}, r"future_covariates \['plan'\] are missing"),
        ({"future_covariates": {"plan": np.ones(12), "load": np.ones(12)}}, "known up to the forecast origin only"),
        ({"future_covariates": {"plan": np.ones(5)}}, "reads 12, one per step"),
        ({"covariates": {"load": np.ones(59), "plan": np.ones(60)}}, "has 59 values and the series 60"),
        ({"covariates": {"load": np.full(60, np.inf), "plan": np.ones(60)}}, "must be finite"),
    ],
)
def test_covariates_are_refused_by_name_with_what_to_send(overrides: dict[str, object], why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        inputs(covariate_series(**overrides))


def test_a_window_job_reads_future_covariates_from_later_values_and_needs_none_ahead() -> None:
    past, future, calendar = inputs(covariate_series(future_covariates=None), forecast=False)
    assert len(past) == len(future) == 48 + 12  # from the window's first value to its origin's 12th step


def test_calendar_features_need_time() -> None:
    s = covariate_series(start=None, freq=None)
    tinycov = card("tinycov")
    with pytest.raises(InvalidInput, match="send `timestamps`"):
        series_inputs.covariate_inputs(tinycov, "tinycov", s, 12, np.array([60]), True, None)


def test_ids_repeat_nowhere_in_a_request() -> None:
    series_inputs.check_unique_ids(["a", "b"])
    with pytest.raises(InvalidInput, match="'a' appears more than once"):
        series_inputs.check_unique_ids(["a", "b", "a"])


def test_window_inputs_are_views_with_time_first_inputs_reaching_ahead() -> None:
    values, ahead_input = np.arange(10.0), np.arange(13.0)
    window, later = series_inputs.window_inputs([values, ahead_input], 2, 6, 3)
    assert window.tolist() == [2, 3, 4, 5] and later.tolist() == [2, 3, 4, 5, 6, 7, 8]
    assert np.shares_memory(window, values) and np.shares_memory(later, ahead_input)
