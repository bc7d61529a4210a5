"""A model with a quantile head (tinyq, a small base model) served: its levels, intervals and quantiles come from the
head, monotone, interpolated between declared levels and refused outside them; any frequency; the default model;
the conformal calibration still works on top."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from contract import quantiles as model_quantiles
from contract.card import BASE_MODEL, ContractError, ModelCard
from tests.build_fixtures import TINY, TINYQ
from tests.synthetic import seasonal_series

LEVELS = list(model_quantiles.DEFAULT_LEVELS)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """tinyq served as the base model, beside the hourly tiny model."""
    root = tmp_path / "models"
    for name, source in ((BASE_MODEL, TINYQ), ("tiny", TINY)):
        (root / name / "1").mkdir(parents=True)
        shutil.copy(source, root / name / "1" / "model.onnx")
    return root


@pytest.fixture
def client(repo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_repository=repo, max_points_per_series=5000))) as c:
        yield c


def head(window: list[float]) -> np.ndarray:
    session = ort.InferenceSession(str(TINYQ), providers=["CPUExecutionProvider"])
    return session.run(["quantiles"], {"values": np.asarray([window], dtype=np.float32)})[0][0]  # (H, Q)


def values(n: int = 120, seed: int = 0) -> list[float]:
    return [round(float(v), 4) for v in seasonal_series(n, seed=seed)]


def test_the_card_declares_the_levels_and_the_graph_answers_them_monotone() -> None:
    session = ort.InferenceSession(str(TINYQ), providers=["CPUExecutionProvider"])
    card = ModelCard.from_props(dict(session.get_modelmeta().custom_metadata_map))
    assert card.quantile_levels == LEVELS and card.any_freq and card.horizon == 48
    rng = np.random.default_rng(0)
    x = (100 + rng.normal(size=(16, 96)).cumsum(axis=1) * rng.uniform(0.1, 50, (16, 1))).astype(np.float32)
    forecast, _, q = session.run(None, {"values": x})
    assert q.shape == (16, 48, len(LEVELS))
    assert (np.diff(q, axis=-1) >= 0).all()
    np.testing.assert_allclose(forecast, q[..., LEVELS.index(0.5)], rtol=1e-6)


def test_a_card_whose_levels_lack_the_median_is_refused() -> None:
    session = ort.InferenceSession(str(TINYQ), providers=["CPUExecutionProvider"])
    props = dict(session.get_modelmeta().custom_metadata_map)
    props["gatecast.quantile_levels"] = "[0.1,0.9]"
    with pytest.raises(ContractError, match="quantile_levels.*0.5"):
        ModelCard.from_props(props)


def test_the_base_model_is_the_default_and_answers_from_its_head(client: TestClient) -> None:
    v = values()
    r = client.post(
        "/forecast",
        json={
            "horizon": 12,
            "level": [80, 95],
            "quantiles": [0.1, 0.25, 0.5, 0.9],
            "series": [{"id": "a", "values": v}],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == BASE_MODEL
    got = body["forecasts"][0]
    q = head(v)[:12]
    col = {level: q[:, i] for i, level in enumerate(LEVELS)}
    np.testing.assert_allclose(got["mean"], col[0.5], rtol=1e-5)
    np.testing.assert_allclose(got["intervals"]["80"]["lo"], col[0.1], rtol=1e-5)
    np.testing.assert_allclose(got["intervals"]["95"]["hi"], col[0.975], rtol=1e-5)
    np.testing.assert_allclose(got["quantiles"]["0.9"], col[0.9], rtol=1e-5)
    # between declared levels: linear between the two around it
    np.testing.assert_allclose(got["quantiles"]["0.25"], (col[0.2] + col[0.3]) / 2, rtol=1e-5)
    qs = np.asarray([got["quantiles"][k] for k in ("0.1", "0.25", "0.5", "0.9")])
    assert (np.diff(qs, axis=0) >= -1e-6).all()


@pytest.mark.parametrize(
    ("ask", "named"),
    [
        pytest.param({"level": [99]}, "level 99 needs quantiles 0.005 and 0.995", id="level-beyond-the-head"),
        pytest.param({"quantiles": [0.01]}, "quantile 0.01 lies outside", id="quantile-below"),
        pytest.param({"quantiles": [0.99]}, "quantile 0.99 lies outside", id="quantile-above"),
    ],
)
def test_what_lies_outside_the_declared_levels_is_refused_by_name(client: TestClient, ask: dict, named: str) -> None:
    r = client.post("/forecast", json={"horizon": 6, **ask, "series": [{"id": "a", "values": values()}]})
    assert r.status_code == 422
    assert named in r.json()["message"] and "0.025 to 0.975" in r.json()["message"]


def test_conformal_calibration_still_answers_levels_beyond_the_head(client: TestClient) -> None:
    r = client.post(
        "/forecast",
        json={"horizon": 6, "level": [99], "calibration": "history", "series": [{"id": "a", "values": values(400)}]},
    )
    assert r.status_code == 200, r.text
    got = r.json()["forecasts"][0]
    assert got["calibration"]["checks"] > 0
    assert all(
        lo < m < hi
        for lo, m, hi in zip(got["intervals"]["99"]["lo"], got["mean"], got["intervals"]["99"]["hi"], strict=True)
    )


def test_any_frequency_takes_the_series_own_and_needs_one_to_place_time(client: TestClient) -> None:
    v = values(100)
    weekly = client.post(
        "/forecast", json={"horizon": 3, "series": [{"id": "w", "values": v, "start": "2020-01-05", "freq": "W"}]}
    )
    assert weekly.status_code == 200, weekly.text
    assert weekly.json()["forecasts"][0]["timestamps"][0].startswith("2021-12-05")
    assert "warnings" not in weekly.json()
    no_freq = client.post("/forecast", json={"horizon": 3, "series": [{"id": "w", "values": v, "start": "2020-01-05"}]})
    assert no_freq.status_code == 422 and "send `freq`" in no_freq.json()["message"]


def test_horizons_up_to_the_card_and_no_further(client: TestClient) -> None:
    ok = client.post("/forecast", json={"horizon": 48, "series": [{"id": "a", "values": values()}]})
    assert ok.status_code == 200 and len(ok.json()["forecasts"][0]["mean"]) == 48
    over = client.post("/forecast", json={"horizon": 49, "series": [{"id": "a", "values": values()}]})
    assert over.status_code == 422 and "1 to 48" in over.json()["message"]


def test_a_constant_series_is_forecast_as_its_level(client: TestClient) -> None:
    r = client.post("/forecast", json={"horizon": 8, "level": [80], "series": [{"id": "c", "values": [7.5] * 64}]})
    assert r.status_code == 200, r.text
    got = r.json()["forecasts"][0]
    np.testing.assert_allclose(got["mean"], 7.5, rtol=1e-3)
    assert all(np.isfinite(got["intervals"]["80"]["lo"]))


def test_cross_validation_and_oip_answer_with_the_head_model(client: TestClient) -> None:
    v = values(200)
    cv = client.post(
        "/cross_validation",
        json={"model": BASE_MODEL, "horizon": 6, "n_windows": 3, "level": [80], "series": [{"id": "a", "values": v}]},
    )
    assert cv.status_code == 200, cv.text
    infer = client.post(
        f"/v2/models/{BASE_MODEL}/infer",
        json={"inputs": [{"name": "values", "shape": [1, 96], "datatype": "FP32", "data": v[-96:]}]},
    )
    assert infer.status_code == 200, infer.text
    out = {o["name"]: o for o in infer.json()["outputs"]}
    assert out["quantiles"]["shape"] == [1, 48, len(LEVELS)]
    np.testing.assert_allclose(np.reshape(out["quantiles"]["data"], (48, len(LEVELS))), head(v[-96:]), rtol=1e-5)
    meta = client.get(f"/v2/models/{BASE_MODEL}").json()
    assert meta["outputs"][-1] == {
        "name": "quantiles",
        "datatype": "FP32",
        "shape": [-1, 48, len(LEVELS)],
        "parameters": {"levels": LEVELS},
    }


def test_anomalies_at_a_level_beyond_the_head_use_the_conformal_widths(client: TestClient) -> None:
    r = client.post("/anomalies", json={"model": BASE_MODEL, "series": [{"id": "a", "values": values(200)}]})
    assert r.status_code == 200, r.text  # the default level, 99, lies beyond 0.025 ... 0.975
