"""Live feeds (app.streams) on the embedded store: the forecast after each append equals /forecast on the same
window, appends of many readings equal one-by-one appends, spikes are flagged, bad appends change nothing,
streams survive a restart, limits answer by name, and forecast quality reaches /metrics per model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.settings import Settings
from app.streams import adaptive
from harness.waiting import wait_for
from tests.synthetic import seasonal_series

MIN_WINDOW, WINDOW, HORIZON = 30, 48, 12  # the tiny model (tests/synthetic.tiny_config)


def make_app(repository: Path, state: Path, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(model_repository=repository, state_dir=state, **settings)))


@pytest.fixture
def client(repository: Path, tmp_path: Path) -> Iterator[TestClient]:
    with make_app(repository, tmp_path / "state") as c:
        yield c


def series(n: int, seed: int = 5) -> list[float]:
    return [round(float(v), 4) for v in seasonal_series(n, seed=seed)]


def put(client: TestClient, stream: str, **body: Any) -> Any:
    """Create (201) or update (200) a stream: the status says which it was."""
    existed = client.get(f"/streams/{stream}").status_code == 200
    r = client.put(f"/streams/{stream}", json={"model": "tiny", **body})
    assert r.status_code == (200 if existed else 201), r.text
    return r.json()


def append(client: TestClient, stream: str, values: list[float], **body: Any) -> Any:
    r = client.post(f"/streams/{stream}/points", json={"values": values, **body})
    assert r.status_code == 200, r.text
    return r.json()


def forecast(client: TestClient, values: list[float], level: list[float], **series: Any) -> Any:
    body = {"model": "tiny", "level": level, "series": [{"id": "x", "values": values, **series}]}
    r = client.post("/forecast", json=body)
    assert r.status_code == 200, r.text
    return r.json()["forecasts"][0]


def test_each_append_answers_the_forecast_of_forecast_on_the_same_window(client: TestClient) -> None:
    created = client.put("/streams/s1", json={"model": "tiny", "level": [80, 95], "start": "2024-01-01T00:00:00"})
    assert created.status_code == 201 and created.json()["points"] == 0
    values = series(60)
    for i, v in enumerate(values):
        out = append(client, "s1", [v])
        assert out["points"] == i + 1
        if i + 1 < MIN_WINDOW:
            assert out["forecast"] is None and out["needs"] == MIN_WINDOW - i - 1
            continue
        assert out["needs"] == 0
        alone = forecast(client, values[: i + 1], [80, 95], start="2024-01-01T00:00:00", freq="h")
        np.testing.assert_allclose(out["forecast"]["mean"], alone["mean"], rtol=1e-6)
        np.testing.assert_allclose(out["forecast"]["intervals"]["95"]["hi"], alone["intervals"]["95"]["hi"], rtol=1e-6)
        assert out["forecast"]["timestamps"] == alone["timestamps"]
    got = client.get("/streams/s1").json()
    assert got["points"] == 60 and got["recent"] == pytest.approx(values[-WINDOW:])
    assert got["last_timestamp"] == "2024-01-03T11:00:00"
    assert got["forecast"]["mean"] == out["forecast"]["mean"]


def test_many_readings_at_once_equal_one_at_a_time(client: TestClient) -> None:
    values = series(90, seed=8)
    values[70] += 40.0  # a spike, to compare anomalies too
    put(client, "one", level=[80])
    put(client, "many", level=[80])
    one_anomalies = []
    for v in values:
        one_anomalies += append(client, "one", [v])["anomalies"]
    many_anomalies = []
    for part in (values[:10], values[10:45], values[45:46], values[46:]):
        many_anomalies += append(client, "many", part)["anomalies"]
    a, b = client.get("/streams/one").json(), client.get("/streams/many").json()
    assert a["points"] == b["points"] == 90
    np.testing.assert_allclose(a["forecast"]["mean"], b["forecast"]["mean"], rtol=1e-6)
    assert [x["index"] for x in one_anomalies] == [x["index"] for x in many_anomalies]
    assert 70 in [x["index"] for x in one_anomalies]
    for x, y in zip(one_anomalies, many_anomalies, strict=True):
        assert x["lo"] == pytest.approx(y["lo"], rel=1e-6) and x["value"] == y["value"]


def test_a_spike_is_flagged_and_normal_readings_are_not(client: TestClient) -> None:
    put(client, "sensor", anomaly_level=99)
    values = series(200, seed=11)
    flagged = [a["index"] for v in values for a in append(client, "sensor", [v])["anomalies"]]
    assert len(flagged) <= 0.03 * (200 - MIN_WINDOW), flagged  # the synthetic series has no anomalies
    last = client.get("/streams/sensor").json()["forecast"]
    spike = last["mean"][0] + 20 * max(1.0, abs(last["mean"][0]))
    out = append(client, "sensor", [float(spike)])
    assert [a["index"] for a in out["anomalies"]] == [200]
    assert out["anomalies"][0]["score"] > 1 and out["anomalies"][0]["value"] == pytest.approx(spike)


def _state(client: TestClient, stream: str) -> Any:
    got = client.get(f"/streams/{stream}")
    assert got.status_code == 200
    return got.json()


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"values": [1.0], "timestamps": ["2024-01-02T11:00:00"]}, 409, "not after the last reading"),
        ({"values": [1.0], "timestamps": ["2024-01-01T00:00:00"]}, 409, "received already"),
        ({"values": [1.0], "timestamps": ["2024-01-02T13:00:00"]}, 422, "due at 2024-01-02T12:00:00"),
        ({"values": [1.0, 2.0], "timestamps": ["2024-01-02T12:00:00"]}, 422, "one timestamp per value"),
        ({"values": [1.0, 2.0], "timestamps": ["2024-01-02T12:00:00"] * 2}, 422, "due at 2024-01-02T13:00:00"),
        ({"values": [1.0], "timestamps": ["2024-01-02T12:00:00+01:00"]}, 422, "time zone"),
        ({"values": []}, 422, "values"),
        ({"values": ["1.0"]}, 422, "values.0"),
        ({"values": [True]}, 422, "values.0"),
        ({"values": [1.0], "covariates": {"load": [1.0]}}, 422, "univariate"),
        ({"values": [1.0], "extra": 1}, 422, "extra"),
        ({"values": [1.0] * 1001}, 413, "GATECAST_STREAM_MAX_APPEND"),
    ],
)
def test_bad_appends_are_refused_by_name_and_change_nothing(
    client: TestClient, body: dict[str, Any], status: int, words: str
) -> None:
    put(client, "s", level=[80], start="2024-01-01T00:00:00")
    append(client, "s", series(36))  # the last reading is at 2024-01-02T11:00
    assert client.put("/streams/s", json={"model": "tiny", "level": [95]}).status_code == 200  # settings may change
    before = _state(client, "s")
    r = client.post("/streams/s/points", json=body)
    assert r.status_code == status, r.text
    assert words in r.text
    assert _state(client, "s") == before


def test_non_finite_values_and_unknown_streams(client: TestClient) -> None:
    put(client, "s")
    before = _state(client, "s")
    json_body = {"content-type": "application/json"}
    r = client.post("/streams/s/points", content=b'{"values": [1.0, NaN]}', headers=json_body)
    assert r.status_code == 422 and "finite" in r.text
    r = client.post("/streams/s/points", content=b'{"values": [1e400]}', headers=json_body)
    assert r.status_code == 422
    r = client.post("/streams/s/points", content=b'{"values": [1.0', headers=json_body)
    assert r.status_code == 400 and r.json()["error"] == "malformed_json"
    r = client.post("/streams/s/points", content=b"y\n1.0\n", headers={"content-type": "text/csv"})
    assert r.status_code == 415 and "application/json" in r.text
    assert _state(client, "s") == before
    r = client.post("/streams/nope/points", json={"values": [1.0]})
    assert r.status_code == 404 and "PUT /streams/nope" in r.json()["message"]
    assert client.get("/streams/nope").status_code == 404
    assert client.delete("/streams/nope").status_code == 404
    r = client.put("/streams/bad%20id", json={"model": "tiny"})
    assert r.status_code == 422 and "not allowed" in r.text
    assert client.put("/streams/s2", json={"model": "nope"}).status_code == 404
    r = client.put("/streams/s2", json={"model": "tiny", "level": [100]})
    assert r.status_code == 422 and "level" in r.text
    r = client.put("/streams/s2", json={"model": "tiny", "horizon": 99})
    assert r.status_code == 422 and "horizon" in r.text
    r = client.put("/streams/s2", json={"model": "tiny", "freq": "fortnight"})
    assert r.status_code == 422 and "offset alias" in r.text
    r = client.put("/streams/s2", json={"model": "tiny", "adaptive": "yes"})
    assert r.status_code == 422 and "adaptive" in r.text
    assert client.get("/streams/s2").status_code == 404


def test_a_stream_without_its_own_freq_reports_the_models(client: TestClient) -> None:
    created = client.put("/streams/m", json={"model": "tiny", "start": "2024-01-01T00:00:00"})
    assert created.status_code == 201 and created.json()["freq"] == "h"  # tiny's, which it forecasts with
    assert client.get("/streams/m").json()["freq"] == "h"


def test_time_settings_are_fixed_once_readings_arrived(client: TestClient) -> None:
    put(client, "s", start="2024-01-01T00:00:00", freq="h")
    append(client, "s", [1.0])
    r = client.put("/streams/s", json={"model": "tiny", "freq": "D"})
    assert r.status_code == 409 and "DELETE it" in r.text
    r = client.put("/streams/s", json={"model": "tiny", "start": "2024-02-01T00:00:00"})
    assert r.status_code == 409
    assert _state(client, "s")["freq"] == "h"
    updated = client.put("/streams/s", json={"model": "tiny", "level": [90]})  # freq left out: kept
    assert updated.status_code == 200 and updated.json()["freq"] == "h" and updated.json()["level"] == [90.0]


def test_streams_survive_a_restart(repository: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    values = series(50)
    with make_app(repository, state) as c:
        put(c, "kept", level=[80])
        first = append(c, "kept", values)
    with make_app(repository, state) as c:
        got = _state(c, "kept")
        assert got["points"] == 50 and got["forecast"]["mean"] == first["forecast"]["mean"]
        out = append(c, "kept", [values[-1]])
        assert out["points"] == 51


def test_limits_listing_and_delete(repository: Path, tmp_path: Path) -> None:
    with make_app(repository, tmp_path / "state", max_streams=3) as c:
        for name in ("b", "a", "c"):
            put(c, name)
        r = c.put("/streams/d", json={"model": "tiny"})
        assert r.status_code == 409 and "GATECAST_MAX_STREAMS" in r.text
        assert c.put("/streams/a", json={"model": "tiny", "level": [90]}).status_code == 200  # updates still work
        page = c.get("/streams", params={"limit": 2}).json()
        assert page == {"streams": ["a", "b"], "next": "b", "total": 3}
        last = c.get("/streams", params={"after": "b", "limit": 2}).json()
        assert last == {"streams": ["c"], "next": None, "total": 3}
        assert c.get("/streams", params={"limit": 0}).status_code == 422
        assert c.delete("/streams/b").status_code == 204
        assert c.get("/streams/b").status_code == 404
        assert c.put("/streams/d", json={"model": "tiny"}).status_code == 201


def test_idle_streams_are_removed(repository: Path, tmp_path: Path) -> None:
    with make_app(repository, tmp_path / "state", stream_idle_ttl_s=1.0) as c:
        put(c, "idle")
        put(c, "busy")

        def idle_gone_while_busy_is_fed() -> bool:
            append(c, "busy", [1.0])  # an append every few milliseconds keeps it well inside its second
            return c.get("/streams/idle").status_code == 404

        assert wait_for(idle_gone_while_busy_is_fed)
        assert c.get("/streams/busy").status_code == 200
        assert wait_for(lambda: c.get("/streams/busy").status_code == 404)  # reading does not keep it alive
        assert c.put("/streams/busy", json={"model": "tiny"}).status_code == 201  # idle, so created anew
        assert _state(c, "busy")["points"] == 0


def _samples(client: TestClient, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = client.get("/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_forecast_quality_is_exported_per_model(client: TestClient) -> None:
    def total(name: str, **labels: str) -> float:
        want = {"model": "tiny", "version": "1", **labels}
        return sum(v for k, v in _samples(client, name).items() if all(dict(k).get(a) == b for a, b in want.items()))

    before = {n: total(n) for n in ("gatecast_stream_scored_total", "gatecast_stream_readings_total")}
    put(client, "q", level=[80])
    n = 80
    values = series(n, seed=2)
    for v in values[:40]:
        append(client, "q", [v])
    append(client, "q", values[40:])
    # Origins at 30..79 readings; the one at `at` predicted readings at..at+11 that arrived (before reading n).
    pairs = sum(min(HORIZON, n - at) for at in range(MIN_WINDOW, n))
    assert total("gatecast_stream_scored_total") - before["gatecast_stream_scored_total"] == pairs
    assert total("gatecast_stream_readings_total") - before["gatecast_stream_readings_total"] == n
    hits80 = total("gatecast_stream_interval_hits_total", level="80")
    hits99 = total("gatecast_stream_interval_hits_total", level="99")
    assert 0 < hits80 <= hits99 <= total("gatecast_stream_scored_total")
    assert total("gatecast_stream_abs_error_total") > 0
    assert not any("stream" in dict(k) for k in _samples(client, "gatecast_stream_scored_total"))


def test_a_covariate_model_reads_its_covariates_from_the_stream(tmp_path: Path, covariate_artifact: Path) -> None:
    import shutil

    from tests.synthetic import covariate_series

    repo = tmp_path / "models"
    (repo / "tinycov" / "1").mkdir(parents=True)
    shutil.copy(covariate_artifact, repo / "tinycov" / "1" / "model.onnx")
    data = covariate_series()
    y = data.values[:100].round(4).tolist()
    load, plan = (data.covariates[name][:100].round(4).tolist() for name in ("load", "plan"))
    start = "2024-01-01T00:00:00"
    with make_app(repo, tmp_path / "state") as c:
        info = c.get("/models/tinycov").json()["versions"][0]
        ahead = info["horizon"]
        c.put("/streams/cov", json={"model": "tinycov", "start": start})
        out = None
        for lo, hi in ((0, 50), (50, 64)):
            out = append(
                c,
                "cov",
                y[lo:hi],
                covariates={"load": load[lo:hi], "plan": plan[lo:hi]},
                future_covariates={"plan": plan[hi : hi + ahead]},
            )
        assert out is not None and out["forecast"] is not None
        body = {
            "model": "tinycov",
            "series": [
                {
                    "id": "x",
                    "values": y[:64],
                    "start": start,
                    "covariates": {"load": load[:64], "plan": plan[:64]},
                    "future_covariates": {"plan": plan[64 : 64 + ahead]},
                }
            ],
        }
        alone = c.post("/forecast", json=body)
        assert alone.status_code == 200, alone.text
        np.testing.assert_allclose(out["forecast"]["mean"], alone.json()["forecasts"][0]["mean"], rtol=1e-5)
        r = c.post("/streams/cov/points", json={"values": [1.0], "covariates": {"plan": [1.0]}})
        assert r.status_code == 422 and "load" in r.text


def test_streams_need_the_api_key_like_every_route(repository: Path, tmp_path: Path) -> None:
    with make_app(repository, tmp_path / "state", api_keys=["s3cret"]) as c:
        assert c.put("/streams/k", json={"model": "tiny"}).status_code == 401
        assert c.get("/streams").status_code == 401
        ok = c.put("/streams/k", json={"model": "tiny"}, headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 201
        assert c.post("/streams/k/points", json={"values": [1.0]}).status_code == 401
        assert c.get("/streams/k", headers={"x-api-key": "s3cret"}).json()["points"] == 0


@pytest.mark.data
def test_a_spike_in_real_etth1_is_flagged_and_the_false_alarm_rate_is_low(tmp_path: Path, capsys: Any) -> None:
    """The committed ETTh1 model on 500 readings of ETTh1's test split (taken as free of anomalies), then one
    reading far outside the forecast."""
    from tests.conftest import COMMITTED_MODELS
    from training.data import load_etth1

    values = load_etth1().series[0].values
    start = 14400 - 2880  # the test split
    with make_app(COMMITTED_MODELS, tmp_path / "state") as c:
        put(c, "ett", model="etth1-lstm", level=[95], anomaly_level=99)
        history = [round(float(v), 3) for v in values[start - 168 : start]]
        append(c, "ett", history, backfill=True)
        flagged = 0
        for lo in range(start, start + 500, 50):
            flagged += len(append(c, "ett", [round(float(v), 3) for v in values[lo : lo + 50]])["anomalies"])
        rate = flagged / 500
        with capsys.disabled():
            print(f"\nETTh1 test split, 500 readings: {flagged} flagged at 99% ({rate:.1%} false alarms)")
        assert rate <= 0.02
        last = _state(c, "ett")["forecast"]
        half = last["intervals"]["95"]["hi"][0] - last["mean"][0]
        out = append(c, "ett", [last["mean"][0] + 6 * half])
        assert [a["index"] for a in out["anomalies"]] == [500 + 168]


def _coverage(answers: list[tuple[int, Any]], values: list[float], level: str) -> float:
    """Share of readings inside the `level` interval of every answer that predicted them (answer i was given
    after reading i, so its step s predicts reading i + 1 + s)."""
    hits = checks = 0
    for i, forecast in answers:
        bounds = forecast["intervals"][level]
        for s, (lo, hi) in enumerate(zip(bounds["lo"], bounds["hi"], strict=True)):
            if i + 1 + s < len(values):
                hits += lo <= values[i + 1 + s] <= hi
                checks += 1
    return hits / checks


@pytest.mark.parametrize("kind", ["faster season", "level shifts"])
def test_adaptive_intervals_hold_their_coverage_on_series_unlike_the_model_s(client: TestClient, kind: str) -> None:
    # The tiny model learned a 24-step season with noise of sd 0.5. On a 7-step season its widths are far too
    # wide (everything is covered); with sudden level shifts its 95% interval is too narrow.
    rng = np.random.default_rng(3)
    t = np.arange(1000)
    if kind == "faster season":
        raw = 50 + 10 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.5, len(t))
    else:
        shifts = rng.normal(0, 5.0, len(t)) * (rng.random(len(t)) < 0.05)  # a jump every 20 readings or so
        raw = 50 + 10 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, len(t)) + np.cumsum(shifts)
    values = [round(float(v), 4) for v in raw]
    coverage = {}
    for stream, adapts in (("fixed", False), ("adaptive", True)):
        put(client, stream, level=[80, 95], adaptive=adapts)
        append(client, stream, values[:WINDOW], backfill=True)
        answers = [(i, append(client, stream, [values[i]])["forecast"]) for i in range(WINDOW, len(values))]
        settled = answers[400:]  # after the multipliers have had 400 readings to move from the model's widths
        coverage[stream] = {level: _coverage(settled, values, level) for level in ("80", "95")}
    info = _state(client, "adaptive")
    if kind == "faster season":  # the premise: the model's own widths cover everything
        assert coverage["fixed"]["80"] > 0.97 and info["widening"]["80"] < 0.7, (coverage, info)
    else:
        assert coverage["fixed"]["95"] < 0.88 and info["widening"]["95"] > 1.2, (coverage, info)
    assert abs(coverage["adaptive"]["80"] - 0.8) < 0.03 and abs(coverage["adaptive"]["95"] - 0.95) < 0.03, coverage
    assert info["adaptive"] and _state(client, "fixed")["widening"] == {"80": 1.0, "95": 1.0}
    # The answer's intervals carry the widening; /forecast on the same window answers the model's widths.
    alone = forecast(client, values, [80])["intervals"]["80"]
    mean = info["forecast"]["mean"][0]
    assert info["forecast"]["intervals"]["80"]["hi"][0] - mean == pytest.approx(
        info["widening"]["80"] * (alone["hi"][0] - mean), rel=1e-4
    )


def test_adaptive_multipliers_move_alike_for_one_append_of_many_and_many_of_one(client: TestClient) -> None:
    rng = np.random.default_rng(4)
    values = [round(float(v), 4) for v in 50 + 10 * np.sin(np.arange(160) / 3.8) + rng.normal(0, 2.0, 160)]
    put(client, "one", level=[80, 95], adaptive=True)
    put(client, "many", level=[80, 95], adaptive=True)
    for v in values:
        append(client, "one", [v])
    for part in (values[:40], values[40:41], values[41:120], values[120:]):
        append(client, "many", part)
    a, b = _state(client, "one"), _state(client, "many")
    assert a["widening"] == pytest.approx(b["widening"], rel=1e-9) and a["widening"]["80"] != 1.0
    for level in ("80", "95"):
        assert a["forecast"]["intervals"][level]["lo"] == pytest.approx(b["forecast"]["intervals"][level]["lo"])


def test_adaptive_multipliers_start_afresh_when_turned_off_or_bound_to_another_model(client: TestClient) -> None:
    rng = np.random.default_rng(5)
    values = [float(v) for v in 50 + 10 * np.sin(np.arange(120) / 3.8) + rng.normal(0, 2.0, 120)]
    put(client, "s", level=[80], adaptive=True)
    for v in values:
        append(client, "s", [v])
    assert _state(client, "s")["widening"]["80"] != 1.0
    put(client, "s", level=[80, 95], adaptive=True)  # a new level starts at the model's width; 80 keeps its own
    kept = _state(client, "s")["widening"]
    assert kept["80"] != 1.0 and kept["95"] == 1.0
    put(client, "s", model="tiny@1", level=[80], adaptive=True)  # another binding: another model's widths
    assert _state(client, "s")["widening"] == {"80": 1.0}
    for v in values[-20:]:
        append(client, "s", [v])
    assert _state(client, "s")["widening"]["80"] != 1.0
    put(client, "s", model="tiny@1", level=[80], adaptive=False)
    assert _state(client, "s")["widening"] == {"80": 1.0}
    put(client, "s", model="tiny@1", level=[80], adaptive=True)  # on again: one reading's step from the model's width
    out = append(client, "s", [values[-1]])["forecast"]
    widening = _state(client, "s")["widening"]["80"]
    assert abs(np.log(widening)) <= adaptive.RATE + 1e-12
    alone = forecast(client, [*values, *values[-20:], values[-1]][-WINDOW:], [80])["intervals"]["80"]
    assert out["intervals"]["80"]["hi"][0] - out["mean"][0] == pytest.approx(
        widening * (alone["hi"][0] - out["mean"][0]), rel=1e-4
    )
