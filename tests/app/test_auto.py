"""Model "auto" (app.auto): per series, the candidate with the lowest MASE on the series' own last windows answers,
and the answer says which and what naive scored; plus the warning for a model trained at another frequency."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app import auto, frequency
from app.forecast_jobs import SeriesInput
from app.main import create_app
from app.settings import Settings
from contract.card import BASE_MODEL
from tests.build_fixtures import TINY, TINYQ
from tests.synthetic import seasonal_series


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    root = tmp_path / "models"
    for name, source in ((BASE_MODEL, TINYQ), ("tiny", TINY)):
        (root / name / "1").mkdir(parents=True)
        shutil.copy(source, root / name / "1" / "model.onnx")
    with TestClient(create_app(Settings(model_repository=root, max_points_per_series=5000))) as c:
        yield c


def walk(n: int, seed: int) -> list[float]:
    return [round(float(v), 4) for v in 500 + np.random.default_rng(seed).normal(0, 3, n).cumsum()]


def test_each_series_names_its_model_and_every_candidates_backtest(client: TestClient) -> None:
    hourly = [round(float(v), 4) for v in seasonal_series(300, seed=3)]
    body = {
        "model": "auto",
        "horizon": 12,
        "level": [80],
        "series": [
            {"id": "walk", "values": walk(300, 1)},
            {"id": "hourly", "values": hourly, "start": "2024-01-01", "freq": "h"},
        ],
    }
    r = client.post("/forecast", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["model"] == "auto"
    walk_choice, hourly_choice = (f["model"] for f in answer["forecasts"])
    for choice in (walk_choice, hourly_choice):
        assert choice["backtest_windows"] == 3
        scores = choice["backtest_mase"]
        assert {"naive", BASE_MODEL} <= set(scores)
        naive = {k: v for k, v in scores.items() if k in ("naive", "seasonal_naive")}
        models = {k: v for k, v in scores.items() if k not in naive}
        if choice["name"] in naive:  # no model beat it on the series' own backtest
            assert all(v >= scores[choice["name"]] for v in models.values())
        elif choice["blended_with"]:  # the model beat the naive forecast, by less than the margin: their mean
            assert (1 - auto.MARGIN) * scores[choice["blended_with"]] <= scores[choice["name"]]
            assert scores[choice["name"]] < scores[choice["blended_with"]]
        else:  # a model answers alone only where it beat a naive forecast by the margin
            assert scores[choice["name"]] < (1 - auto.MARGIN) * max(naive.values())
    assert "tiny" not in walk_choice["backtest_mase"]  # no freq: only models of any frequency are candidates
    assert {"tiny", "seasonal_naive"} <= set(hourly_choice["backtest_mase"])  # the hourly model, season 24
    assert hourly_choice["season"] == 24
    for f in answer["forecasts"]:
        lo, hi = np.asarray(f["intervals"]["80"]["lo"]), np.asarray(f["intervals"]["80"]["hi"])
        assert len(f["mean"]) == 12 and (lo <= hi).all()
    assert answer["forecasts"][1]["timestamps"][0].startswith("2024-01-13T12:00")


def test_naive_wins_where_it_is_best_and_its_forecast_is_the_last_value(client: TestClient) -> None:
    flat_then_jump = [10.0] * 100 + [50.0] * 40  # the last value is exactly right on every backtest window
    r = client.post(
        "/forecast",
        json={"model": "auto", "horizon": 5, "level": [90], "series": [{"id": "s", "values": flat_then_jump}]},
    )
    assert r.status_code == 200, r.text
    f = r.json()["forecasts"][0]
    assert f["model"]["name"] == "naive" and f["model"]["backtest_mase"]["naive"] == 0
    assert f["mean"] == [50.0] * 5


def test_a_series_too_short_to_backtest_is_answered_by_the_base_model_and_says_so(client: TestClient) -> None:
    r = client.post("/forecast", json={"model": "auto", "horizon": 12, "series": [{"id": "s", "values": walk(18, 2)}]})
    assert r.status_code == 200, r.text
    choice = r.json()["forecasts"][0]["model"]
    assert choice == {
        "name": BASE_MODEL,
        "version": "1",
        "backtest_windows": 0,
        "backtest_mase": {},
        "season": 1,
        "blended_with": None,
    }


def test_auto_needs_a_horizon(client: TestClient) -> None:
    r = client.post("/forecast", json={"model": "auto", "series": [{"id": "s", "values": walk(100, 2)}]})
    assert r.status_code == 422 and "needs `horizon`" in r.json()["message"]


def test_a_csv_answer_names_the_model_of_each_series(client: TestClient) -> None:
    stamps = pd.date_range("2024-01-01", periods=200, freq="D")
    frame = pd.DataFrame({"unique_id": "d", "ds": stamps, "y": walk(200, 4)})
    r = client.post(
        "/forecast?model=auto&h=7",
        content=frame.to_csv(index=False),
        headers={"content-type": "text/csv", "accept": "text/csv"},
    )
    assert r.status_code == 200, r.text
    out = pd.read_csv(io.StringIO(r.text))
    assert "model" in out.columns and out["model"].nunique() == 1 and len(out) == 7


def test_a_model_trained_at_another_frequency_answers_with_a_warning(client: TestClient) -> None:
    weekly = {"id": "w", "values": [round(float(v), 3) for v in seasonal_series(100, seed=1)], "start": "2020-01-05"}
    r = client.post("/forecast", json={"model": "tiny", "horizon": 3, "series": [{**weekly, "freq": "W"}]})
    assert r.status_code == 200, r.text
    (warning,) = r.json()["warnings"]
    assert "'tiny' was trained at freq 'h' (season 24)" in warning and "'W' (season 52)" in warning
    assert "Gatecast-Warning" in r.headers and "freq 'h'" in r.headers["Gatecast-Warning"]
    same = client.post("/forecast", json={"model": "tiny", "horizon": 3, "series": [{**weekly, "freq": "h"}]})
    assert "warnings" not in same.json() and "Gatecast-Warning" not in same.headers
    stamps = pd.date_range("2020-01-05", periods=100, freq="W")
    csv = pd.DataFrame({"unique_id": "w", "ds": stamps, "y": weekly["values"]}).to_csv(index=False)
    from_stamps = client.post("/forecast?model=tiny&h=3", content=csv, headers={"content-type": "text/csv"})
    assert from_stamps.status_code == 200 and "season 52" in from_stamps.json()["warnings"][0]


@pytest.mark.parametrize(
    ("freq", "season"),
    [
        ("15min", 96),
        ("30min", 48),
        ("h", 24),
        ("D", 7),
        ("B", 5),
        ("W", 52),
        ("W-SUN", 52),
        ("MS", 12),
        ("QS", 4),
        ("YS", 1),
        (None, 1),
        ("nonsense", 1),
    ],
)
def test_seasons_of_the_frequencies_users_send(freq: str | None, season: int) -> None:
    assert frequency.season_of(freq) == season


def test_the_timegpt_route_takes_auto_and_carries_the_warning_in_a_header(client: TestClient) -> None:
    y = [round(float(v), 3) for v in seasonal_series(120, seed=2)]
    series = {"y": y, "sizes": [120], "start_datetime": ["2020-01-05"]}
    auto = client.post("/v2/forecast", json={"model": "auto", "h": 4, "freq": "W", "series": series, "level": [80]})
    assert auto.status_code == 200, auto.text
    assert len(auto.json()["mean"]) == 4 and "Gatecast-Warning" not in auto.headers
    hourly_model = client.post("/v2/forecast", json={"model": "tiny", "h": 4, "freq": "W", "series": series})
    assert hourly_model.status_code == 200, hourly_model.text
    assert "freq 'W'" in hourly_model.headers["Gatecast-Warning"]
    default = client.post(
        "/v2/forecast", json={"model": "timegpt-1-long-horizon", "h": 40, "freq": "W", "series": series}
    )
    assert default.status_code == 200 and len(default.json()["mean"]) == 40  # TimeGPT's names: the base model


@pytest.mark.parametrize(
    ("mase", "naive", "chosen"),
    [
        pytest.param({"naive": 1.0, "seasonal_naive": 0.9, "base": 0.8}, None, "seasonal_naive", id="within-margin"),
        pytest.param({"naive": 1.0, "seasonal_naive": 0.9, "base": 0.5}, None, "base", id="beyond-margin"),
        pytest.param({"naive": 1.0, "seasonal_naive": 0.9, "base": 0.85}, "naive", "naive", id="long-backtest-pick"),
        pytest.param({"base": 0.85}, None, "base", id="no-naive"),
    ],
)
def test_a_model_answers_only_where_it_beats_naive_by_the_margin(
    mase: dict[str, float], naive: str | None, chosen: str
) -> None:
    assert auto.MARGIN == 0.2 and auto.choose(mase, naive=naive) == chosen


def test_the_seasonality_test_calls_daily_cycles_seasonal_and_random_walks_not() -> None:
    t = np.arange(2000)
    rng = np.random.default_rng(0)
    cycle = 10 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, len(t))
    assert auto.is_seasonal(cycle, 24)
    assert auto.is_seasonal(cycle + np.cumsum(rng.normal(0, 0.2, len(t))), 24)  # a drifting level keeps the cycle
    walks = [np.cumsum(np.random.default_rng(seed).normal(0, 1, 2000)) for seed in range(20)]
    assert sum(auto.is_seasonal(w, 7) for w in walks) <= 4  # a 10% test: a few by chance at most
    assert not auto.is_seasonal(cycle[:60], 24)  # fewer than three seasons: no test, no season
    assert not auto.is_seasonal(np.full(500, 3.0), 24)


def test_the_naive_rules_differ_only_where_the_test_and_the_backtest_disagree() -> None:
    t = np.arange(1500)
    cycle = auto.prepare_series(0, SeriesInput("c", 50 + 10 * np.sin(2 * np.pi * t / 24), freq="h"), 24)
    walk_values = np.asarray(walk(1500, 4))
    walk_item = auto.prepare_series(0, SeriesInput("w", walk_values, freq="h"), 24)
    for rule in ("backtest", "acf", "both"):
        assert auto.naive_pick(cycle, 24, rule) == auto.SEASONAL
    assert auto.naive_pick(walk_item, 24, "acf") == auto.NAIVE
    assert auto.naive_pick(walk_item, 24, "both") == auto.NAIVE


def test_a_blended_answer_is_the_mean_of_the_models_and_the_naive_forecasts(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every series picks its naive forecast and is blended with the base model, whatever the backtest said.
    monkeypatch.setattr(auto, "choose", lambda mase, margin=auto.MARGIN, naive=None: naive or auto.NAIVE)
    monkeypatch.setattr(auto, "blend_partner", lambda mase, pick: BASE_MODEL)
    hourly = [round(float(v), 4) for v in seasonal_series(300, seed=3)]
    series = [
        {"id": "walk", "values": walk(300, 1)},
        {"id": "hourly", "values": hourly, "start": "2024-01-01", "freq": "h"},
    ]
    ask = {"horizon": 12, "level": [80], "quantiles": [0.1, 0.9], "series": series}
    blended = client.post("/forecast", json={**ask, "model": "auto"}).json()["forecasts"]
    alone = client.post("/forecast", json={**ask, "model": BASE_MODEL}).json()["forecasts"]
    for b, a, s in zip(blended, alone, series, strict=True):
        pick = b["model"]["blended_with"]
        assert b["model"]["name"] == BASE_MODEL and pick in (auto.NAIVE, auto.SEASONAL)
        item = auto.prepare_series(0, SeriesInput(s["id"], np.asarray(s["values"]), freq=s.get("freq")), 12)
        mean, bounds, at = auto.naive_answer(item, pick, 12, [80.0], [0.1, 0.9])
        np.testing.assert_allclose(b["mean"], 0.5 * (np.asarray(a["mean"]) + mean), rtol=1e-5)
        lo = np.asarray(a["intervals"]["80"]["lo"])
        np.testing.assert_allclose(b["intervals"]["80"]["lo"], 0.5 * (lo + bounds[80.0][0]), rtol=1e-5)
        q9 = np.asarray(a["quantiles"]["0.9"])
        np.testing.assert_allclose(b["quantiles"]["0.9"], 0.5 * (q9 + at[0.9]), rtol=1e-5)
    assert [b["model"]["blended_with"] for b in blended] == [auto.NAIVE, auto.SEASONAL]
    csv = client.post("/forecast", json={**ask, "model": "auto"}, headers={"accept": "text/csv"})
    assert set(pd.read_csv(io.StringIO(csv.text))["model"]) == {f"{BASE_MODEL}+naive", f"{BASE_MODEL}+seasonal_naive"}


@pytest.mark.parametrize(
    ("mase", "pick", "partner"),
    [
        pytest.param(
            {"naive": 1.0, "seasonal_naive": 0.9, "base": 0.8}, "seasonal_naive", "base", id="lead-under-margin"
        ),
        pytest.param({"naive": 1.0, "seasonal_naive": 0.9, "base": 0.95}, "seasonal_naive", None, id="model-lost"),
        pytest.param({"naive": 1.0, "seasonal_naive": 0.9, "base": 0.5}, "base", None, id="model-picked"),
        pytest.param({"naive": 1.0, "base": 0.9, "tiny": 0.85}, "naive", "tiny", id="best-model"),
        pytest.param({"naive": 1.0}, "naive", None, id="no-model"),
    ],
)
def test_the_model_is_averaged_in_only_where_it_beat_the_picked_naive_forecast(
    mase: dict[str, float], pick: str, partner: str | None
) -> None:
    assert auto.choose(mase, naive=pick if pick in mase and pick != "base" else None) == pick
    assert auto.blend_partner(mase, pick) == partner
