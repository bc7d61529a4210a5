"""`"calibration": "history"` and `"auto"`: interval widths rescaled on forecasts of the series' own past
(app.calibration)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.calibration import HORIZONS, READINGS, checks_for, readings
from app.main import create_app
from app.settings import Settings
from tests.synthetic import seasonal_dataset, seasonal_series, tiny_config
from training.pipeline import build_artifact

MIN_WINDOW, HORIZON = 30, 12  # the tiny model's (tests/synthetic.tiny_config)


@pytest.fixture
def client(repository: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_repository=repository))) as c:
        yield c


def trending(n: int, seed: int = 3) -> list[float]:
    """A straight rise with noise: unlike the seasonal series the tiny model learned, and its intervals on it
    are far too wide (they cover every value that follows)."""
    rng = np.random.default_rng(seed)
    return (50 + 0.3 * np.arange(n) + rng.normal(0, 0.5, n)).round(4).tolist()


def noisy(n: int, seed: int = 3) -> list[float]:
    """The tiny model's own kind of series."""
    return seasonal_series(n, seed=seed).round(4).tolist()


def post(client: TestClient, series: list[dict[str, Any]], **options: Any) -> Any:
    return client.post("/forecast", json={"model": "tiny", "series": series, **options})


def test_the_widening_is_the_conformal_quantile_of_the_historys_own_misses(client: TestClient) -> None:
    """Computed again from plain forecasts, one per past origin: the level-% quantile (rank ceil((n+1) level))
    of each value's miss over the model's half-width, for every forecast that predicted it."""
    values = trending(150)
    answer = post(client, [{"id": "x", "values": values}], level=[80, 95], calibration="history")
    assert answer.status_code == 200, answer.text
    got = answer.json()["forecasts"][0]
    origins = range(MIN_WINDOW, len(values))
    past = post(client, [{"id": str(c), "values": values[:c]} for c in origins], level=[80, 95]).json()["forecasts"]
    plain = post(client, [{"id": "x", "values": values}], level=[80, 95]).json()["forecasts"][0]
    for level in ("80", "95"):
        ratios = []
        for c, f in zip(origins, past, strict=True):
            steps = min(HORIZON, len(values) - c)
            mean, hi = np.asarray(f["mean"][:steps]), np.asarray(f["intervals"][level]["hi"][:steps])
            ratios.extend(np.abs(np.asarray(values[c : c + steps]) - mean) / (hi - mean))
        ratios.sort()
        want = ratios[math.ceil((len(ratios) + 1) * int(level) / 100) - 1]
        assert got["calibration"]["checks"] == len(ratios) == checks_for(len(origins), HORIZON)
        assert got["calibration"]["widening"][level] == pytest.approx(want, rel=1e-4)
        half = np.subtract(got["intervals"][level]["hi"], got["mean"])
        model_half = np.subtract(plain["intervals"][level]["hi"], plain["mean"])
        np.testing.assert_allclose(half, model_half * want, rtol=1e-4)
    assert got["mean"] == plain["mean"]  # the forecast itself is the model's
    assert got["calibration"]["widening"]["80"] < 0.9  # narrower than the model's: it covered every value
    assert "calibration" not in plain


def test_it_holds_coverage_where_the_models_widths_do_not(client: TestClient) -> None:
    """On a series unlike its training data the model's 80% intervals cover every value that follows; the
    history-calibrated ones about 80%."""
    values = trending(1700)
    origins = list(range(1100, 1700 - HORIZON, 7))
    hits = {"model": 0, "history": 0}
    for mode in hits:
        for start in range(0, len(origins), 8):  # 8 series a request: 8 x 1024 past forecasts, under the limit
            batch = origins[start : start + 8]
            series = [{"id": str(o), "values": values[:o]} for o in batch]
            answer = post(client, series, level=[80], calibration=mode)
            assert answer.status_code == 200, answer.text
            for o, f in zip(batch, answer.json()["forecasts"], strict=True):
                actual = np.asarray(values[o : o + HORIZON])
                lo, hi = f["intervals"]["80"]["lo"], f["intervals"]["80"]["hi"]
                hits[mode] += int(np.count_nonzero((lo <= actual) & (actual <= hi)))
    checks = len(origins) * HORIZON
    assert hits["model"] / checks > 0.95
    assert 0.75 <= hits["history"] / checks <= 0.85, hits["history"] / checks


def test_quantiles_are_bounds_of_the_same_calibrated_intervals(client: TestClient) -> None:
    series = [{"id": "x", "values": noisy(200)}]
    f = post(client, series, level=[80], quantiles=[0.1, 0.5, 0.9], calibration="history").json()["forecasts"][0]
    assert f["quantiles"]["0.9"] == f["intervals"]["80"]["hi"] and f["quantiles"]["0.1"] == f["intervals"]["80"]["lo"]
    only = post(client, series, quantiles=[0.05, 0.95], calibration="history").json()["forecasts"][0]
    assert set(only["calibration"]["widening"]) == {"90"}


def test_only_the_last_readings_are_scored(client: TestClient) -> None:
    values = noisy(READINGS + 400)
    f = post(client, [{"id": "x", "values": values}], level=[80], calibration="history").json()["forecasts"][0]
    assert f["calibration"]["checks"] == checks_for(READINGS, HORIZON)


def test_a_long_horizon_scores_a_longer_history(tmp_path: Path) -> None:
    """Far steps miss in slow episodes, which the last READINGS values hold few of: a model whose HORIZONS
    horizons are longer than READINGS scores that many values."""
    horizon = READINGS // HORIZONS + 10
    config = tiny_config("far", epochs=1)
    config = replace(config, model=replace(config.model, horizon=horizon))
    build_artifact(config, seasonal_dataset(3000), tmp_path / "far" / "1" / "model.onnx")
    assert readings(horizon) == HORIZONS * horizon > READINGS
    values = noisy(readings(horizon) + 300)
    with TestClient(create_app(Settings(model_repository=tmp_path, grpc_port=0))) as client:
        body = {"model": "far", "level": [80], "calibration": "history", "series": [{"id": "x", "values": values}]}
        answer = client.post("/forecast", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["forecasts"][0]["calibration"]["checks"] == checks_for(readings(horizon), horizon)


def test_csv_asks_for_it_in_the_query(client: TestClient) -> None:
    values = noisy(120)
    csv = "unique_id,ds,y\n" + "".join(
        f"s,2024-01-{1 + i // 24:02d} {i % 24:02d}:00:00,{v}\n" for i, v in enumerate(values)
    )
    r = client.post(
        "/forecast?model=tiny&level=80&calibration=history", content=csv, headers={"content-type": "text/csv"}
    )
    as_json = post(client, [{"id": "s", "values": values}], level=[80], calibration="history").json()["forecasts"][0]
    assert r.status_code == 200 and r.json()["forecasts"][0]["intervals"] == as_json["intervals"]


@pytest.mark.parametrize(
    ("body", "status", "wanted"),
    [
        pytest.param({"series": [{"id": "x", "values": [1.0] * 200}]}, 422, "ask for `level`", id="no-levels"),
        pytest.param(
            {"level": [95], "series": [{"id": "x", "values": [1.0 + i % 5 for i in range(32)]}]},
            422,
            "series 'x': calibrating the 95% interval on its history needs 19 scored forecast steps and its 32 "
            "values give 3 (the first 30 are the first window): send at least 4 more values",
            id="short-history",
        ),
        pytest.param(
            {"level": [99.99], "horizon": 1, "series": [{"id": "x", "values": [1.0] * 2000}]},
            422,
            "the 99.99% interval cannot be calibrated on a history",
            id="level-beyond-any-history",
        ),
        pytest.param(
            {"level": [80], "series": [{"id": "x", "values": [1.0] * 200}], "calibration": "past"},
            422,
            "calibration: Input should be 'model', 'history' or 'auto'",
            id="unknown-mode",
        ),
    ],
)
def test_what_it_cannot_do_is_refused_by_name(
    client: TestClient, body: dict[str, Any], status: int, wanted: str
) -> None:
    r = client.post("/forecast", json={"model": "tiny", "calibration": "history", **body})
    assert r.status_code == status and wanted in r.json()["message"], r.text


def test_past_forecasts_count_against_the_request_limit(repository: Path) -> None:
    with TestClient(create_app(Settings(model_repository=repository, max_windows_per_request=100))) as c:
        r = post(c, [{"id": "x", "values": noisy(200)}], level=[80], calibration="history")
    assert r.status_code == 413
    assert 'calibration "history" forecasts from 170 past origins here' in r.json()["message"]


def test_the_csv_query_refuses_an_unknown_mode(client: TestClient) -> None:
    csv = "unique_id,ds,y\n" + "".join(f"s,2024-01-{1 + i // 24:02d} {i % 24:02d}:00:00,{i % 7}\n" for i in range(60))
    r = client.post(
        "/forecast?model=tiny&level=80&calibration=bogus", content=csv, headers={"content-type": "text/csv"}
    )
    assert r.status_code == 422 and "calibration 'bogus' is not known" in r.json()["message"]


def test_auto_calibrates_the_series_that_can_be_and_keeps_the_models_widths_for_the_rest(client: TestClient) -> None:
    """ "auto" is "history" for a series long enough for the levels asked and the model's table for one that is
    not (checks 0, factor 1), in the same answer, where "history" refuses the request."""
    long, short = trending(150), [1.0 + i % 5 for i in range(32)]  # 32 values: 3 scored steps, 95% needs 19
    series = [{"id": "long", "values": long}, {"id": "short", "values": short}]
    answer = post(client, series, level=[80, 95], calibration="auto")
    assert answer.status_code == 200, answer.text
    auto = {f["id"]: f for f in answer.json()["forecasts"]}
    history = post(client, series[:1], level=[80, 95], calibration="history").json()["forecasts"][0]
    plain = post(client, series[1:], level=[80, 95]).json()["forecasts"][0]
    assert auto["long"]["intervals"] == history["intervals"] and auto["long"]["calibration"] == history["calibration"]
    assert auto["short"]["intervals"] == plain["intervals"]
    assert auto["short"]["calibration"] == {"checks": 0, "widening": {"80": 1.0, "95": 1.0}}
    assert post(client, series, level=[80, 95], calibration="history").status_code == 422


def test_auto_without_levels_is_the_plain_forecast(client: TestClient) -> None:
    series = [{"id": "x", "values": trending(150)}]
    auto = post(client, series, calibration="auto")
    assert auto.status_code == 200, auto.text
    assert auto.json()["forecasts"][0] == post(client, series).json()["forecasts"][0]


def test_auto_scores_fewer_values_a_series_rather_than_pass_the_request_limit(repository: Path) -> None:
    """Where "history" is refused (413), "auto" spends at most the request's window limit: 100 windows for 2
    series are their 2 forecasts and the last 49 origins of each."""
    series = [{"id": "a", "values": noisy(200, seed=1)}, {"id": "b", "values": noisy(200, seed=2)}]
    with TestClient(create_app(Settings(model_repository=repository, max_windows_per_request=100))) as c:
        assert post(c, series, level=[80], calibration="history").status_code == 413
        answer = post(c, series, level=[80], calibration="auto")
    assert answer.status_code == 200, answer.text
    for f in answer.json()["forecasts"]:
        assert f["calibration"]["checks"] == checks_for(49, HORIZON)
        assert f["calibration"]["widening"]["80"] != 1.0
