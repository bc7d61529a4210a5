"""POST /cross_validation and POST /anomalies: windows from past origins, through the model service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.runtime import Runtime
from app.settings import Settings
from tests.synthetic import seasonal_series


@pytest.fixture
def client(repository: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_repository=repository, max_windows_per_request=400))) as c:
        yield c


def series(n: int) -> list[float]:
    return [round(float(v), 4) for v in seasonal_series(n, seed=3)]


def forecast(client: TestClient, values: list[float], h: int, level: list[float] | None = None) -> dict:
    r = client.post("/forecast", json={"horizon": h, "level": level or [], "series": [{"id": "a", "values": values}]})
    assert r.status_code == 200, r.text
    return r.json()["forecasts"][0]


def test_cross_validation_windows_equal_forecasts_from_their_cutoffs(client: TestClient) -> None:
    v = series(150)
    body = {
        "h": 12,
        "n_windows": 3,
        "step_size": 6,
        "level": [80],
        "series": [{"id": "a", "values": v, "start": "2024-01-01T00:00:00", "freq": "h"}],
    }
    r = client.post("/cross_validation", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    windows = out["series"][0]["windows"]
    assert [w["cutoff"] for w in windows] == [125, 131, 137]  # the last window ends at the last value
    assert (
        windows[-1]["timestamps"][-1] == "2024-01-07T05:00:00"
        and windows[0]["cutoff_timestamp"] == "2024-01-06T05:00:00"
    )
    for w in windows:
        c = w["cutoff"] + 1
        assert w["actual"] == pytest.approx(v[c : c + 12])
        alone = forecast(client, v[:c], 12, [80])
        np.testing.assert_allclose(w["mean"], alone["mean"], rtol=1e-6)
        np.testing.assert_allclose(w["intervals"]["80"]["lo"], alone["intervals"]["80"]["lo"], rtol=1e-5)
        assert w["mae"] == pytest.approx(np.mean(np.abs(np.subtract(w["actual"], w["mean"]))), rel=1e-5)
        history = np.asarray(v[:c])
        assert w["mase"] == pytest.approx(w["mae"] / np.mean(np.abs(history[24:] - history[:-24])), rel=1e-5)
        inside = np.mean([lo <= a <= hi for a, lo, hi in zip(w["actual"], *w["intervals"]["80"].values(), strict=True)])
        assert w["coverage"]["80"] == pytest.approx(inside)
    assert out["overall"]["mae"] == pytest.approx(np.mean([w["mae"] for w in windows]), rel=1e-6)


def test_cross_validation_runs_its_windows_in_batches(repository: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = Runtime.run

    def counted(self: Runtime, values: np.ndarray, *covariates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(values))
        return real(self, values, *covariates)

    monkeypatch.setattr(Runtime, "run", counted)
    with TestClient(create_app(Settings(model_repository=repository))) as client:
        calls.clear()  # the warm-up's runs at load
        body = {"n_windows": 40, "step_size": 1, "series": [{"id": "a", "values": series(200)}]}
        r = client.post("/cross_validation", json=body)
    assert r.status_code == 200, r.text
    assert sum(calls) == 40 and len(calls) < 40, calls


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"n_windows": 20, "series": [{"id": "a", "values": series(100)}]}, 422, "need 270"),
        (
            {"n_windows": 500, "step_size": 1, "series": [{"id": "a", "values": series(600)}]},
            413,
            "500 forecast windows",
        ),
        ({"h": 99, "series": [{"id": "a", "values": series(100)}]}, 422, "horizon 99 is out of range"),
        ({"n_windows": 0, "series": [{"id": "a", "values": series(100)}]}, 422, "n_windows"),
        (
            {"series": [{"id": "a", "values": series(100), "covariates": {"x": [1.0] * 100}}]},
            422,
            "series 'a': covariates ['x']",
        ),
    ],
)
def test_cross_validation_refusals_say_what_to_change(client: TestClient, body: dict, status: int, words: str) -> None:
    r = client.post("/cross_validation", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]


def test_anomalies_flag_an_injected_spike_and_few_other_points(client: TestClient) -> None:
    v = series(400)
    v[300] += 40.0
    r = client.post("/anomalies", json={"level": 99, "series": [{"id": "a", "values": v}]})
    assert r.status_code == 200, r.text
    out = r.json()["series"][0]
    assert out["index"][0] == 30 and out["index"][-1] == 399  # every value with a full window before it
    assert 300 in out["anomalies"]
    assert len(out["anomalies"]) <= 0.05 * len(out["index"]), out["anomalies"]
    at = out["index"].index(300)
    alone = forecast(client, v[:300], 1, [99])
    assert out["mean"][at] == pytest.approx(alone["mean"][0], rel=1e-6)
    assert out["hi"][at] == pytest.approx(alone["intervals"]["99"]["hi"][0], rel=1e-5)
    assert out["score"][at] > 1 and out["anomaly"][at] is True


def test_anomalies_refuse_what_they_cannot_score(client: TestClient) -> None:
    r = client.post("/anomalies", json={"detection_size": 90, "series": [{"id": "a", "values": series(100)}]})
    assert r.status_code == 422 and "at least 120 values" in r.json()["message"]
    r = client.post("/anomalies", json={"level": 100, "series": [{"id": "a", "values": series(100)}]})
    assert r.status_code == 422 and "level 100" in r.json()["message"]
