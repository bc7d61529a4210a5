"""Covariates end to end: the contract (names, roles, calendar), training and export with them, and every API
(JSON, CSV, OIP v2) answering the same forecast for the same inputs, with a named 422 for anything else."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from contract.card import ContractError, ModelCard
from contract.covariates import CovariateError, Covariates, calendar_for, calendar_matrix
from tests.markers import needs_training
from tests.synthetic import covariate_dataset, covariate_series

H = 12  # the tiny covariate model's horizon
T = 48  # its trained window


# --- the contract ------------------------------------------------------------------------------------


def test_calendar_features_are_cyclic_sines_and_cosines() -> None:
    index = pd.date_range("2024-01-01 22:00", periods=4, freq="h")  # 22h, 23h, 0h, 1h
    m = calendar_matrix(index, ["hour_of_day"])
    assert m.shape == (4, 2) and m.dtype == np.float32
    np.testing.assert_allclose(m[:, 0] ** 2 + m[:, 1] ** 2, 1, rtol=1e-6)
    # 23h and 0h are as close as 0h and 1h: the cycle wraps
    assert np.linalg.norm(m[1] - m[2]) == pytest.approx(np.linalg.norm(m[2] - m[3]), rel=1e-5)
    assert calendar_matrix(index, []).shape == (4, 0)


def test_the_calendar_a_frequency_allows() -> None:
    assert calendar_for("h") == ("hour_of_day", "day_of_week")
    assert calendar_for("15min") == ("hour_of_day", "day_of_week")
    assert calendar_for("B") == ("day_of_week", "month_of_year")
    assert calendar_for("MS") == ("month_of_year",)
    assert calendar_for("YS") == ()


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ({"past": ("a",), "future": ("a",)}, "declared twice"),
        ({"calendar": ("minute_of_hour",)}, "unknown"),
        ({"past": (" a",)}, "surrounding spaces"),
    ],
)
def test_a_bad_declaration_is_refused_by_name(roles: dict[str, tuple[str, ...]], message: str) -> None:
    with pytest.raises(CovariateError, match=message):
        Covariates(**roles)


def test_schema_1_cards_read_as_univariate_and_schema_5_round_trips(
    tiny_artifact: Path, covariate_artifact: Path
) -> None:
    props = {p.key: p.value for p in onnx.load(str(covariate_artifact)).metadata_props}
    card = ModelCard.from_props(props)
    assert card.schema == "5"
    assert card.covariates == Covariates(("load",), ("plan",), ("hour_of_day", "day_of_week"))
    assert ModelCard.from_props(card.to_props()) == card
    # A schema-1 file (every committed model before covariates) has no covariates key and still loads.
    old = {p.key: p.value for p in onnx.load(str(tiny_artifact)).metadata_props}
    old["gatecast.schema"] = "1"
    del old["gatecast.covariates"]
    assert ModelCard.from_props(old).covariates.empty
    broken = {**props, "gatecast.covariates": json.dumps({"past": "load"})}
    with pytest.raises(ContractError, match="covariates"):
        ModelCard.from_props(broken)


# --- serving ----------------------------------------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path, covariate_artifact: Path, tiny_artifact: Path):  # type: ignore[no-untyped-def]
    repo = tmp_path / "models"
    for name, path in (("tinycov", covariate_artifact), ("tiny", tiny_artifact)):
        (repo / name / "1").mkdir(parents=True)
        shutil.copy(path, repo / name / "1" / "model.onnx")
    settings = Settings(model_repository=repo)
    with TestClient(create_app(settings)) as c:
        yield c


def series_payload(n: int = 60) -> dict[str, object]:
    """The last n points of the synthetic data, with their covariates and the planned steps ahead."""
    s = covariate_series()
    end = s.val_end
    return {
        "id": "s0",
        "values": s.values[end - n : end].tolist(),
        "start": s.timestamps[end - n].isoformat(),
        "covariates": {
            "load": s.covariates["load"][end - n : end].tolist(),
            "plan": s.covariates["plan"][end - n : end].tolist(),
        },
        "future_covariates": {"plan": s.covariates["plan"][end : end + H].tolist()},
    }


def forecast(client: TestClient, series: dict[str, object], **extra: object):  # type: ignore[no-untyped-def]
    return client.post("/forecast", json={"model": "tinycov", "series": [series], **extra})


def test_models_route_shows_the_covariates(client: TestClient) -> None:
    info = client.get("/models/tinycov").json()["versions"][0]
    assert info["covariates"] == {"past": ["load"], "future": ["plan"], "calendar": ["hour_of_day", "day_of_week"]}
    assert client.get("/models/tiny").json()["versions"][0]["covariates"] == {"past": [], "future": [], "calendar": []}


def test_json_forecast_reads_the_covariates(client: TestClient) -> None:
    payload = series_payload()
    r = forecast(client, payload, level=[80])
    assert r.status_code == 200, r.text
    mean = np.array(r.json()["forecasts"][0]["mean"])
    assert mean.shape == (H,) and np.isfinite(mean).all()
    # The answer depends on each role: change a past covariate, a future one, or the time, and it changes.
    for change in ("load", "plan", "start"):
        other = json.loads(json.dumps(payload))
        if change == "load":
            other["covariates"]["load"] = [v + 5 for v in other["covariates"]["load"]]
        elif change == "plan":
            other["future_covariates"]["plan"] = [5.0 - v for v in other["future_covariates"]["plan"]]
        else:
            other["start"] = (pd.Timestamp(other["start"]) + pd.Timedelta(hours=7)).isoformat()
        moved = np.array(forecast(client, other).json()["forecasts"][0]["mean"])
        assert not np.allclose(moved, mean), change


def test_a_shorter_horizon_cuts_the_answer_not_the_inputs(client: TestClient) -> None:
    full = forecast(client, series_payload()).json()["forecasts"][0]
    short = forecast(client, series_payload(), horizon=5).json()["forecasts"][0]
    np.testing.assert_allclose(short["mean"], full["mean"][:5], rtol=1e-6)
    assert short["timestamps"] == full["timestamps"][:5]


@pytest.mark.parametrize(
    ("edit", "wanted"),
    [
        (lambda p: p["covariates"].pop("load"), "covariates ['load'] are missing"),
        (lambda p: p["covariates"].update(rain=[0.0] * 60), "covariates ['rain'] are not known"),
        (lambda p: p["future_covariates"].pop("plan"), "future_covariates ['plan'] are missing"),
        (lambda p: p["future_covariates"].update(load=[0.0] * H), "['load'] are known up to the forecast origin only"),
        (lambda p: p["covariates"].update(load=[1.0] * 59), "covariate 'load' has 59 values and the series 60"),
        (
            lambda p: p["future_covariates"].update(plan=[1.0] * 5),
            "future covariate 'plan' has 5 values; tinycov reads 12",
        ),
        (lambda p: p.pop("start"), "calendar features (hour_of_day, day_of_week)"),
        (lambda p: p["covariates"].update(load=[1e300] * 60), "covariate 'load' value 0 is 1e+300"),
    ],
)
def test_covariates_that_do_not_fit_answer_422_naming_them(client: TestClient, edit, wanted: str) -> None:  # type: ignore[no-untyped-def]
    payload = series_payload()
    edit(payload)
    r = forecast(client, payload)
    assert r.status_code == 422, r.text
    assert wanted in r.json()["message"], r.json()["message"]


def test_a_univariate_model_refuses_covariates_by_name(client: TestClient) -> None:
    payload = series_payload()
    payload.pop("future_covariates")
    r = client.post("/forecast", json={"model": "tiny", "series": [payload]})
    assert r.status_code == 422
    assert "covariates ['load', 'plan'] are not read: tiny is univariate" in r.json()["message"]


def long_csv(payload: dict[str, object], future_rows: bool = True) -> str:
    n = len(payload["values"])  # type: ignore[arg-type]
    stamps = pd.date_range(str(payload["start"]), periods=n + H, freq="h")
    frame = pd.DataFrame(
        {
            "unique_id": "s0",
            "ds": stamps[:n],
            "y": payload["values"],
            "load": payload["covariates"]["load"],  # type: ignore[index]
            "plan": payload["covariates"]["plan"],  # type: ignore[index]
        }
    )
    if future_rows:
        ahead = pd.DataFrame({"unique_id": "s0", "ds": stamps[n:], "plan": payload["future_covariates"]["plan"]})  # type: ignore[index]
        frame = pd.concat([frame, ahead], ignore_index=True)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()


def test_csv_extra_columns_are_covariates_and_rows_ahead_carry_future_ones(client: TestClient) -> None:
    payload = series_payload()
    by_json = forecast(client, payload).json()["forecasts"][0]
    r = client.post("/forecast?model=tinycov", content=long_csv(payload), headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    by_csv = r.json()["forecasts"][0]
    np.testing.assert_allclose(by_csv["mean"], by_json["mean"], rtol=1e-5)
    assert by_csv["timestamps"] == by_json["timestamps"]


def test_csv_problems_are_named(client: TestClient) -> None:
    payload = series_payload()
    no_future = client.post(
        "/forecast?model=tinycov", content=long_csv(payload, future_rows=False), headers={"content-type": "text/csv"}
    )
    assert no_future.status_code == 422 and "future_covariates ['plan'] are missing" in no_future.json()["message"]
    holes = long_csv(payload).replace(f",{payload['covariates']['load'][3]},", ",,", 1)  # type: ignore[index]
    r = client.post("/forecast?model=tinycov", content=holes, headers={"content-type": "text/csv"})
    assert r.status_code == 422 and "column load: row 3" in r.json()["message"] and "is empty" in r.json()["message"]
    # Extra columns sent to a univariate model are refused by name, never dropped in silence.
    r = client.post(
        "/forecast?model=tiny", content=long_csv(payload, future_rows=False), headers={"content-type": "text/csv"}
    )
    assert r.status_code == 422 and "covariates ['load', 'plan'] are not read" in r.json()["message"]


def test_oip_v2_takes_one_input_per_role_and_agrees_with_json(client: TestClient) -> None:
    meta = client.get("/v2/models/tinycov").json()
    inputs = {t["name"]: t for t in meta["inputs"]}
    assert inputs["values"]["shape"] == [-1, -1]
    assert inputs["past_covariates"]["shape"] == [-1, -1, 1] and inputs["past_covariates"]["parameters"][
        "channels"
    ] == ["load"]
    assert inputs["future_covariates"]["shape"] == [-1, -1, 1]
    assert inputs["calendar"]["parameters"]["channels"] == [
        "hour_of_day.sin",
        "hour_of_day.cos",
        "day_of_week.sin",
        "day_of_week.cos",
    ]

    payload = series_payload()
    want = forecast(client, payload).json()["forecasts"][0]["mean"]
    n = len(payload["values"])  # type: ignore[arg-type]
    stamps = pd.date_range(str(payload["start"]), periods=n + H, freq="h")
    future = payload["covariates"]["plan"] + payload["future_covariates"]["plan"]  # type: ignore[index, operator]
    body = {
        "inputs": [
            {"name": "values", "datatype": "FP32", "shape": [1, n], "data": payload["values"]},
            {"name": "past_covariates", "datatype": "FP32", "shape": [1, n, 1], "data": payload["covariates"]["load"]},  # type: ignore[index]
            {"name": "future_covariates", "datatype": "FP32", "shape": [1, n + H, 1], "data": future},
            {
                "name": "calendar",
                "datatype": "FP32",
                "shape": [1, n + H, 4],
                "data": calendar_matrix(stamps, ["hour_of_day", "day_of_week"]).ravel().tolist(),
            },
        ]
    }
    r = client.post("/v2/models/tinycov/infer", json=body)
    assert r.status_code == 200, r.text
    got = next(o for o in r.json()["outputs"] if o["name"] == "forecast")["data"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

    body["inputs"] = body["inputs"][:2]  # future covariates and calendar left out
    r = client.post("/v2/models/tinycov/infer", json=body)
    assert r.status_code == 422, r.text
    assert (
        "takes exactly the inputs ['values', 'past_covariates', 'future_covariates', 'calendar']" in r.json()["error"]
    )


# --- training data ----------------------------------------------------------------------------------


@needs_training
def test_user_files_give_their_named_columns_as_covariates_gaps_filled_alike(tmp_path: Path) -> None:
    from training.data import load_long

    stamps = pd.date_range("2024-01-01", periods=24 * 20, freq="h")
    frame = pd.DataFrame(
        {"unique_id": "a", "ds": stamps, "y": np.arange(len(stamps)) * 1.0, "load": np.arange(len(stamps)) * 2.0}
    )
    frame["note"] = "text columns a config does not name are not read"
    path = tmp_path / "data.csv"
    frame.drop(index=[100, 101]).to_csv(path, index=False)
    series = load_long(path, covariates=Covariates(past=("load",))).series[0]
    assert len(series.values) == len(stamps)  # the two missing hours interpolated, in y and in the covariate
    np.testing.assert_allclose(series.covariates["load"], 2 * series.values)
    with pytest.raises(ValueError, match=r"covariate columns \['rain'\] are missing"):
        load_long(path, covariates=Covariates(past=("rain",)))


@needs_training
def test_training_refuses_what_the_data_cannot_give() -> None:
    from training.data import check_covariates

    dataset = covariate_dataset()
    with pytest.raises(ValueError, match=r"has no column \['rain'\]; its covariates: \['load', 'plan'\]"):
        check_covariates(dataset, Covariates(past=("rain",)))
    with pytest.raises(ValueError, match="do not vary at frequency 'h'"):
        check_covariates(dataset, Covariates(calendar=("month_of_year",)))
    dataset.series[0].timestamps = None
    with pytest.raises(ValueError, match="calendar features need dates"):
        check_covariates(dataset, Covariates(calendar=("hour_of_day",)))


@pytest.mark.data
def test_the_shared_data_sets_carry_their_covariates() -> None:
    from training.data import load_etth1, load_vix
    from training.model import ForecasterConfig
    from training.train import split_windows

    etth1 = load_etth1()
    config = ForecasterConfig(
        input_window=168, horizon=24, past_covariates=["HUFL", "LULL"], calendar=["hour_of_day", "day_of_week"]
    )
    test = split_windows(etth1, "test", 168, 24, stride=24, config=config)
    past, calendar = test.covariates
    assert past.shape == (len(test), 168, 2) and calendar.shape == (len(test), 168 + 24, 4)
    assert set(load_vix().series[0].covariates) == {"OPEN", "HIGH", "LOW"}


def test_history_calibration_forecasts_the_past_with_the_covariates_known_then(client: TestClient) -> None:
    """Each past forecast reads the covariates up to its origin, the planned future ones from the values sent
    after it (then the future_covariates), and time: its widening equals one computed from plain forecasts."""
    payload = series_payload(60)
    got = forecast(client, payload, level=[80], calibration="history")
    assert got.status_code == 200, got.text
    calibration = got.json()["forecasts"][0]["calibration"]
    values, load = payload["values"], payload["covariates"]["load"]  # type: ignore[index]
    plan = payload["covariates"]["plan"] + payload["future_covariates"]["plan"]  # type: ignore[index, operator]
    start = pd.Timestamp(payload["start"])  # type: ignore[arg-type]
    ratios = []
    for c in range(30, 60):  # the tiny model's min_window to the last value
        past = {
            "id": "s0",
            "values": values[:c],
            "start": start.isoformat(),
            "covariates": {"load": load[:c], "plan": plan[:c]},
            "future_covariates": {"plan": plan[c : c + H]},
        }
        f = forecast(client, past, level=[80]).json()["forecasts"][0]
        steps = min(H, 60 - c)
        mean, hi = np.asarray(f["mean"][:steps]), np.asarray(f["intervals"]["80"]["hi"][:steps])
        ratios.extend(np.abs(np.asarray(values[c : c + steps]) - mean) / (hi - mean))
    ratios.sort()
    assert calibration["checks"] == len(ratios)
    assert calibration["widening"]["80"] == pytest.approx(ratios[int(np.ceil((len(ratios) + 1) * 0.8)) - 1], rel=1e-4)
