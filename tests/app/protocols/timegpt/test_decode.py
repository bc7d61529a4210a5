"""app.protocols.timegpt.decode: the nixtla client's flat arrays into gatecast's series, options refused by name."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import onnx
import pytest

from app.errors import InvalidInput
from app.protocols.timegpt import decode
from app.protocols.timegpt.schemas import TimeGPTRequest
from contract.card import ModelCard

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "models"


def service(name: str) -> Any:
    graph = onnx.load(str(FIXTURES / name / "1" / "model.onnx"), load_external_data=False)
    return SimpleNamespace(name=name, card=ModelCard.from_props({p.key: p.value for p in graph.metadata_props}))


def body(**fields: Any) -> TimeGPTRequest:
    series = {"y": [1.0, 2.0, 3.0, 10.0, 20.0], "sizes": [3, 2], **fields.pop("series", {})}
    return TimeGPTRequest.model_validate({"series": series, **fields})


def test_flat_values_split_by_sizes_into_series_named_in_the_clients_order() -> None:
    decoded = decode.series_inputs(body(), service("tiny"), future_h=None)
    assert [s.id for s in decoded] == ["#0", "#1"]
    assert [list(s.values) for s in decoded] == [[1.0, 2.0, 3.0], [10.0, 20.0]]


def test_sizes_that_do_not_add_up_and_gaps_are_refused_naming_the_series() -> None:
    with pytest.raises(InvalidInput, match="add up to 6 but series.y has 5 values"):
        decode.series_inputs(body(series={"sizes": [3, 3]}), service("tiny"), future_h=None)
    with pytest.raises(InvalidInput, match="series #1 \\(the 2nd unique_id, sorted\\): value 0 is missing"):
        decode.series_inputs(body(series={"y": [1.0, 2.0, 3.0, None, 20.0]}), service("tiny"), future_h=None)


def test_start_times_are_iso_8601_one_per_series() -> None:
    timed = body(series={"start_datetime": ["2024-01-01T00:00:00", "2024-02-01"]}, freq="h")
    first, _ = decode.series_inputs(timed, service("tiny"), future_h=None)
    assert first.start is not None and first.freq == "h"
    with pytest.raises(InvalidInput, match="has 1 entries for 2 series"):
        decode.series_inputs(body(series={"start_datetime": ["2024-01-01"]}), service("tiny"), future_h=None)
    with pytest.raises(InvalidInput, match="not an ISO 8601 time"):
        decode.series_inputs(body(series={"start_datetime": ["noon", "2024-01-01"]}), service("tiny"), None)


def test_covariate_columns_map_by_position_future_first_then_past() -> None:
    x = [[0.0] * 5, [1.0] * 5]  # plan (future), then load (past)
    timed = {"start_datetime": ["2024-01-01", "2024-01-01"], "X": x, "X_future": [[5.0] * 24]}
    first, _ = decode.series_inputs(body(series=timed, freq="h"), service("tinycov"), future_h=12)
    assert first.covariates is not None and list(first.covariates["plan"]) == [0.0] * 3
    assert list(first.covariates["load"]) == [1.0] * 3
    assert first.future_covariates is not None and len(first.future_covariates["plan"]) == 12
    with pytest.raises(InvalidInput, match="1 future and 0 past covariate columns were sent"):
        decode.series_inputs(body(series={"X": x[:1], "X_future": [[5.0] * 24]}), service("tinycov"), 12)


def test_hist_exog_says_which_columns_are_past() -> None:
    x = [[1.0] * 5, [0.0] * 5]  # load first, named past by hist_exog
    first, _ = decode.series_inputs(body(series={"X": x}, hist_exog=[0]), service("tinycov"), future_h=None)
    assert first.covariates is not None and list(first.covariates["load"]) == [1.0] * 3
    with pytest.raises(InvalidInput, match="points outside series.X's 2 columns"):
        decode.series_inputs(body(series={"X": x}, hist_exog=[5]), service("tinycov"), future_h=None)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"multivariate": True}, "multivariate=True is not available"),
        ({"feature_contributions": True}, "feature_contributions are not computed"),
        ({"series": {"categorical_exog": [0]}}, "categorical covariates are not read"),
        ({"finetune_steps": 5}, "this route does not fine-tune inside the call"),
        ({"model_parameters": {"calibration": "auto"}}, "are not read here"),
    ],
)
def test_what_gatecast_cannot_honour_is_refused_never_ignored(fields: dict[str, Any], why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        decode.refuse_unsupported(body(**fields))


def test_forecast_reads_calibration_and_only_as_a_string() -> None:
    reads = frozenset({"calibration"})
    assert decode.refuse_unsupported(body(model_parameters={"calibration": "model"}), reads) == {"calibration": "model"}
    with pytest.raises(InvalidInput, match="expected a string"):
        decode.refuse_unsupported(body(model_parameters={"calibration": 1}), reads)


def test_levels_from_the_clients_quantiles_and_level_zero_is_the_point_forecast() -> None:
    assert decode.levels([80, 80, 0]) == ([80.0], True)
    assert decode.levels(None) == ([], False)
    assert decode.one_level(None) == 99.0
    with pytest.raises(InvalidInput, match="anomaly detection takes one level"):
        decode.one_level([80, 95])
