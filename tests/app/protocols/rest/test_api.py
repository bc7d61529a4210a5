"""In-process API tests with the lifespan running (models loaded and warmed), on a tiny synthetic model."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.synthetic import seasonal_series


@pytest.fixture
def client(repository: Path) -> Iterator[TestClient]:
    settings = Settings(
        model_repository=repository,
        model_control=True,
        max_body_bytes=2_000_000,
        max_series_per_request=500,
        max_points_per_series=5000,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def values(n: int = 60, seed: int = 0) -> list[float]:
    return [round(float(v), 4) for v in seasonal_series(n, seed=seed)]


def onnx_forecast(path: Path, window: list[float]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"values": np.asarray([window], dtype=np.float32)})[0][0]


def test_forecast_equals_the_onnx_model_run_directly(client: TestClient, repository: Path) -> None:
    v = values(48)
    r = client.post("/forecast", json={"series": [{"id": "a", "values": v}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny" and body["version"] == "1" and body["horizon"] == 12
    # Exact: the answer writes each float32 as the shortest decimal that reads back to the same float32.
    np.testing.assert_array_equal(
        np.asarray(body["forecasts"][0]["mean"], dtype=np.float32), onnx_forecast(repository / "tiny/1/model.onnx", v)
    )
    assert all(len(repr(x).lstrip("-").replace(".", "").lstrip("0")) <= 9 for x in body["forecasts"][0]["mean"])


def test_longer_series_use_the_last_window(client: TestClient) -> None:
    v = values(200)
    long = client.post("/forecast", json={"series": [{"id": "a", "values": v}]}).json()
    tail = client.post("/forecast", json={"series": [{"id": "a", "values": v[-48:]}]}).json()
    assert long["forecasts"][0]["mean"] == tail["forecasts"][0]["mean"]


def test_intervals_nest_by_level_and_surround_the_mean(client: TestClient) -> None:
    r = client.post("/forecast", json={"series": [{"id": "a", "values": values()}], "level": [95, 50, 80]})
    f = r.json()["forecasts"][0]
    assert r.json()["level"] == [50, 80, 95]
    mean = np.array(f["mean"])
    lo = {k: np.array(v["lo"]) for k, v in f["intervals"].items()}
    hi = {k: np.array(v["hi"]) for k, v in f["intervals"].items()}
    assert np.all(lo["95"] <= lo["80"]) and np.all(lo["80"] <= lo["50"]) and np.all(lo["50"] <= mean)
    assert np.all(hi["95"] >= hi["80"]) and np.all(hi["80"] >= hi["50"]) and np.all(hi["50"] >= mean)


def test_quantiles_are_the_bounds_of_the_conformal_intervals(client: TestClient) -> None:
    body = {"series": [{"id": "a", "values": values()}], "level": [80], "quantiles": [0.9, 0.1, 0.5, 0.975]}
    r = client.post("/forecast", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    f = answer["forecasts"][0]
    assert answer["quantiles"] == [0.1, 0.5, 0.9, 0.975] and list(f["quantiles"]) == ["0.1", "0.5", "0.9", "0.975"]
    assert f["quantiles"]["0.1"] == f["intervals"]["80"]["lo"] and f["quantiles"]["0.9"] == f["intervals"]["80"]["hi"]
    assert f["quantiles"]["0.5"] == f["mean"]
    wide = client.post("/forecast", json={"series": body["series"], "level": [95]}).json()["forecasts"][0]
    assert f["quantiles"]["0.975"] == wide["intervals"]["95"]["hi"]
    plain = client.post("/forecast", json={"series": body["series"]}).json()
    assert "quantiles" not in plain and "quantiles" not in plain["forecasts"][0]  # only when asked
    csv = client.post(
        "/forecast?h=3&quantiles=0.1,0.9",
        content=long_csv(["a"]),
        headers={"content-type": "text/csv", "accept": "text/csv"},
    )
    assert csv.status_code == 200, csv.text
    assert csv.text.splitlines()[0] == "unique_id,ds,forecast,model,version,forecast-q-0.1,forecast-q-0.9"


@pytest.mark.parametrize(
    ("quantiles", "message"),
    [([0.0], "strictly between 0 and 1"), ([1.5], "strictly between 0 and 1"), ([0.2, 0.2], "repeat a value")],
)
def test_quantiles_out_of_range_are_refused(client: TestClient, quantiles: list[float], message: str) -> None:
    r = client.post("/forecast", json={"series": [{"id": "a", "values": values()}], "quantiles": quantiles})
    assert r.status_code == 422 and message in r.json()["message"], r.text


def test_horizon_alias_and_truncation(client: TestClient) -> None:
    full = client.post("/forecast", json={"series": [{"id": "a", "values": values()}]}).json()
    short = client.post("/forecast", json={"h": 5, "series": [{"id": "a", "values": values()}]}).json()
    assert short["horizon"] == 5 and short["forecasts"][0]["mean"] == full["forecasts"][0]["mean"][:5]


def test_future_timestamps_from_start_and_freq(client: TestClient) -> None:
    r = client.post(
        "/forecast",
        json={"h": 3, "series": [{"id": "a", "values": values(48), "start": "2024-01-01T00:00:00", "freq": "15min"}]},
    )
    assert r.json()["forecasts"][0]["timestamps"] == [
        "2024-01-01T12:00:00",
        "2024-01-01T12:15:00",
        "2024-01-01T12:30:00",
    ]


def test_future_timestamps_inferred_from_timestamps(client: TestClient) -> None:
    stamps = [t.isoformat() for t in pd.date_range("2024-03-01", periods=48, freq="D")]
    r = client.post("/forecast", json={"h": 2, "series": [{"id": "a", "values": values(48), "timestamps": stamps}]})
    assert r.json()["forecasts"][0]["timestamps"] == ["2024-04-18T00:00:00", "2024-04-19T00:00:00"]


def test_many_series_in_one_request_keep_their_order(client: TestClient) -> None:
    series = [{"id": f"s{i}", "values": values(48, seed=i)} for i in range(20)]
    body = client.post("/forecast", json={"series": series}).json()
    assert [f["id"] for f in body["forecasts"]] == [f"s{i}" for i in range(20)]
    single = client.post("/forecast", json={"series": [series[7]]}).json()
    np.testing.assert_allclose(body["forecasts"][7]["mean"], single["forecasts"][0]["mean"], rtol=1e-5)


def test_series_of_one_length_are_checked_together_with_the_same_verdicts(client: TestClient) -> None:
    """Several series of one length take the one-array path (app.service._windows): a value the model cannot
    carry in a window is still refused naming its series; a large value before the window is never read."""
    v = values(60)
    outside = [1e39] * 12 + v[12:]  # the window is the last 48
    inside = v[:-1] + [1e39]
    ok = client.post("/forecast", json={"series": [{"id": "a", "values": v}, {"id": "b", "values": outside}]})
    assert ok.status_code == 200, ok.text
    alone = client.post("/forecast", json={"series": [{"id": "b", "values": v[12:]}]}).json()
    assert ok.json()["forecasts"][1]["mean"] == alone["forecasts"][0]["mean"]
    r = client.post("/forecast", json={"series": [{"id": "a", "values": v}, {"id": "b", "values": inside}]})
    assert r.status_code == 422 and "series 'b' holds values up to 1e+39" in r.json()["message"]


def test_csv_in_and_csv_out(client: TestClient) -> None:
    frames = [
        pd.DataFrame(
            {"unique_id": uid, "ds": pd.date_range("2024-01-01", periods=50, freq="h"), "y": values(50, seed=i)}
        )
        for i, uid in enumerate(["x", "y"])
    ]
    body = pd.concat(frames).to_csv(index=False)
    r = client.post("/forecast?h=4&level=80", content=body, headers={"content-type": "text/csv", "accept": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    out = pd.read_csv(io.StringIO(r.text))
    assert list(out.columns) == ["unique_id", "ds", "forecast", "model", "version", "forecast-lo-80", "forecast-hi-80"]
    assert list(out["unique_id"]) == ["x"] * 4 + ["y"] * 4
    default = client.get("/models").json()  # no model asked: each row names the one that answered
    assert set(zip(out["model"], out["version"].astype(str), strict=True)) == {(default["default"], "1")}, default
    assert out["ds"].iloc[0] == "2024-01-03 02:00:00"
    as_json = client.post("/forecast", json={"h": 4, "series": [{"id": "x", "values": values(50, seed=0)}]}).json()
    np.testing.assert_allclose(out["forecast"][:4], as_json["forecasts"][0]["mean"], rtol=1e-6)


def error(r, status: int, fragment: str) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    body = r.json()
    assert fragment in body["message"], body
    assert "Traceback" not in r.text


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        pytest.param(
            {"series": [{"id": "a", "values": [1.0] * 10}]},
            422,
            "has 10 values; this model needs at least 30",
            id="too-short",
        ),
        pytest.param(
            {"h": 13, "series": [{"id": "a", "values": values()}]}, 422, "forecasts 1 to 12", id="horizon-over-max"
        ),
        pytest.param({"h": 0, "series": [{"id": "a", "values": values()}]}, 422, "horizon 0", id="horizon-zero"),
        pytest.param({"h": 2.5, "series": [{"id": "a", "values": values()}]}, 422, "h:", id="horizon-float"),
        pytest.param(
            {"level": [100], "series": [{"id": "a", "values": values()}]}, 422, "between 0 and 100", id="level-100"
        ),
        pytest.param({"level": [80, 80], "series": [{"id": "a", "values": values()}]}, 422, "repeats", id="level-dup"),
        pytest.param(
            {"model": "nope", "series": [{"id": "a", "values": values()}]}, 404, "not loaded", id="unknown-model"
        ),
        pytest.param(
            {"model": "tiny@9", "series": [{"id": "a", "values": values()}]},
            404,
            "no version '9'",
            id="unknown-version",
        ),
        pytest.param({"series": []}, 422, "series:", id="empty-series"),
        pytest.param({"series": [{"id": "a", "values": []}]}, 422, "values", id="empty-values"),
        pytest.param({"series": [{"id": "a", "values": [1.0, "2"] * 30}]}, 422, "series.0.values.1", id="string-value"),
        pytest.param({"series": [{"id": "a", "values": [1.0, None] * 30}]}, 422, "series.0.values.1", id="null-value"),
        pytest.param(
            {"series": [{"id": "a", "values": values()}, {"id": "a", "values": values()}]},
            422,
            "more than once",
            id="dup-ids",
        ),
        pytest.param({"series": [{"id": "a", "values": [1e300] * 60}]}, 422, "rescale", id="near-1e308"),
        pytest.param(
            {"series": [{"id": "a", "values": values(48), "timestamps": ["2024-01-01T00:00:00"]}]},
            422,
            "48 values but 1 timestamp;",
            id="timestamps-length",
        ),
        pytest.param(
            {"series": [{"id": "a", "values": values(), "start": "2024-01-01", "freq": "fortnightly"}]},
            422,
            "not a pandas offset alias",
            id="bad-freq",
        ),
        pytest.param({"series": [{"id": "a", "values": values(), "extra": 1}]}, 422, "extra", id="unknown-field"),
        pytest.param(
            {"series": [{"id": f"s{i}", "values": [1.0]} for i in range(501)]},
            413,
            "limit is 500",
            id="too-many-series",
        ),
        pytest.param({"series": [{"id": "a", "values": [1.0] * 5001}]}, 413, "limit is 5000", id="too-many-points"),
    ],
)
def test_bad_input_gets_a_clear_error(
    client: TestClient, payload: dict[str, object], status: int, fragment: str
) -> None:
    error(client.post("/forecast", json=payload), status, fragment)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values_are_refused(client: TestClient, token: str) -> None:
    body = '{"series": [{"id": "a", "values": [1.0, ' + token + ", 2.0]}]}"
    r = client.post("/forecast", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["message"] == "series.0.values.1: Input should be a finite number"


def test_malformed_json_is_400(client: TestClient) -> None:
    error(
        client.post("/forecast", content=b'{"series": [', headers={"content-type": "application/json"}),
        400,
        "not valid JSON",
    )


def test_wrong_content_type_is_415(client: TestClient) -> None:
    error(
        client.post("/forecast", content=b"hello", headers={"content-type": "text/plain"}),
        415,
        "application/json or text/csv",
    )


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    error(
        client.post("/forecast", content=b"x" * 2_100_000, headers={"content-type": "application/json"}),
        413,
        "limit is 2000000",
    )


def test_bad_csv_is_422_with_the_reason(client: TestClient) -> None:
    body = "unique_id,ds,y\na,2024-01-01 00:00,1\na,2024-01-01 00:00,2\n"
    error(client.post("/forecast", content=body, headers={"content-type": "text/csv"}), 422, "more than once")


def test_csv_columns_the_model_does_not_read_are_refused_by_name(client: TestClient) -> None:
    """Never answered as if they were absent: a forecast that ignored a covariate would look like it used it."""
    frame = pd.DataFrame(
        {"unique_id": "a", "ds": pd.date_range("2024-01-01", periods=50, freq="h"), "y": values(50), "HUFL": 1.0}
    )
    r = client.post("/forecast", content=frame.to_csv(index=False), headers={"content-type": "text/csv"})
    error(r, 422, "covariates ['HUFL'] are not read: tiny is univariate")
    r = client.post("/forecast", content=frame.drop(columns="HUFL").to_csv(), headers={"content-type": "text/csv"})
    error(r, 422, "index=False")


def test_models_routes_report_metadata_and_provider(client: TestClient) -> None:
    listing = client.get("/models").json()
    assert listing["default"] == "tiny" and listing["failed"] == {}
    info = client.get("/models/tiny").json()
    v = info["versions"][0]
    assert info["default_version"] == "1"
    assert v["provider"] == "CPUExecutionProvider" and v["cell"] == "gru"
    assert v["input_window"] == {"min": 30, "trained": 48} and v["horizon"] == 12
    assert "scores" in v["metrics"]
    assert client.get("/models/nope").status_code == 404


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/v2/health/live").status_code == 200
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json()["models"] == {"tiny": ["1"]}


def test_reload_swaps_to_a_new_version_and_keeps_the_old_on_a_bad_file(client: TestClient, repository: Path) -> None:
    before = client.post("/forecast", json={"series": [{"id": "a", "values": values()}]}).json()
    # A new version appears: after load it becomes the default, version 1 stays addressable.
    shutil.copytree(repository / "tiny" / "1", repository / "tiny" / "2")
    r = client.post("/v2/repository/models/tiny/load")
    assert r.status_code == 200 and r.json()["versions"] == ["1", "2"]
    assert client.post("/forecast", json={"series": [{"id": "a", "values": values()}]}).json()["version"] == "2"
    # Version 2 is overwritten by garbage: the reload fails, says why, and version 2 keeps serving.
    (repository / "tiny" / "2" / "model.onnx").write_bytes(b"not an onnx file")
    r = client.post("/v2/repository/models/tiny/load")
    assert r.status_code == 422 and "version 2" in r.json()["error"] and "keep serving" in r.json()["error"]
    after = client.post("/forecast", json={"model": "tiny@2", "series": [{"id": "a", "values": values()}]})
    assert after.status_code == 200 and after.json()["forecasts"][0]["mean"] == before["forecasts"][0]["mean"]
    assert "tiny@2" in client.get("/models").json()["failed"]
    # Unload removes it.
    assert client.post("/v2/repository/models/tiny/unload").status_code == 200
    assert client.post("/forecast", json={"series": [{"id": "a", "values": values()}]}).status_code == 404


def test_model_control_is_off_by_default(repository: Path) -> None:
    with TestClient(create_app(Settings(model_repository=repository))) as c:
        r = c.post("/v2/repository/models/tiny/load")
        assert r.status_code == 403 and "GATECAST_MODEL_CONTROL" in r.json()["error"]


@pytest.mark.parametrize(
    ("name", "status", "fragment"),
    [
        pytest.param("..", 404, "no route POST /v2/repository/load", id="dot-dot"),  # the client resolves it
        pytest.param("..%2F..%2Fetc", 404, "no route POST", id="encoded-slashes"),  # a path with more segments
        pytest.param("a b", 422, "model name 'a b' is not valid", id="space"),
        pytest.param(".hidden", 422, "model name '.hidden' is not valid", id="hidden"),
    ],
)
def test_model_names_cannot_leave_the_repository(client: TestClient, name: str, status: int, fragment: str) -> None:
    r = client.post(f"/v2/repository/models/{name}/load")
    assert r.status_code == status and fragment in r.json()["error"], r.text


def test_a_corrupt_file_is_refused_and_the_others_serve(repository: Path) -> None:
    (repository / "broken" / "1").mkdir(parents=True)
    (repository / "broken" / "1" / "model.onnx").write_bytes(b"\x08\x01garbage")
    with TestClient(create_app(Settings(model_repository=repository))) as c:
        assert c.get("/v2/health/ready").json()["failed"].keys() == {"broken@1"}
        assert c.post("/forecast", json={"series": [{"id": "a", "values": values()}]}).status_code == 200
        assert 'gatecast_model_load_failures_total{model="broken"}' in c.get("/metrics").text


def test_metrics_follow_prometheus_conventions(client: TestClient) -> None:
    client.post("/forecast", json={"series": [{"id": "a", "values": values()}]})
    client.post("/forecast", json={"series": []})
    text = client.get("/metrics").text
    assert (
        'gatecast_http_request_duration_seconds_bucket{le="0.0005",method="POST",route="/forecast",status_class="2xx"}'
        in text
    )
    assert 'status_class="4xx"' in text
    for name in (
        "gatecast_inference_duration_seconds_bucket",
        "gatecast_queue_wait_seconds_bucket",
        "gatecast_batch_size_series_bucket",
        "gatecast_series_forecast_total",
        "gatecast_errors_total",
        "gatecast_requests_in_flight",
        "gatecast_model_loaded",
    ):
        assert name in text, name
    assert 'gatecast_model_loaded{model="tiny",provider="CPUExecutionProvider",version="1"} 1.0' in text


def test_openapi_examples_work_when_pasted(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    example = schema["components"]["schemas"]["ForecastRequest"]["examples"][0]
    example["model"] = "tiny"
    example["horizon"] = 12
    r = client.post("/forecast", json=example)
    assert r.status_code == 200, r.text
    assert "text/csv" in schema["paths"]["/forecast"]["post"]["requestBody"]["content"]


def test_a_watched_repository_picks_up_new_and_changed_files(repository: Path) -> None:
    import time

    with TestClient(create_app(Settings(model_repository=repository, repository_poll_s=0.1))) as c:
        shutil.copytree(repository / "tiny" / "1", repository / "tiny" / "2")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and [v["version"] for v in c.get("/models/tiny").json()["versions"]] != [
            "1",
            "2",
        ]:
            time.sleep(0.1)
        assert [v["version"] for v in c.get("/models/tiny").json()["versions"]] == ["1", "2"]
        # a broken overwrite is tried once, refused, and version 2 keeps serving
        (repository / "tiny" / "2" / "model.onnx").write_bytes(b"broken")
        while time.monotonic() < deadline and "tiny@2" not in c.get("/models").json()["failed"]:
            time.sleep(0.1)
        assert "tiny@2" in c.get("/models").json()["failed"]
        r = c.post("/forecast", json={"model": "tiny@2", "series": [{"id": "a", "values": values()}]})
        assert r.status_code == 200


def test_the_openapi_csv_example_works_when_pasted(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(model_repository=Path(__file__).resolve().parents[4] / "models"))) as c:
        schema = c.get("/openapi.json").json()
        example = schema["paths"]["/forecast"]["post"]["requestBody"]["content"]["text/csv"]["example"]
        r = c.post("/forecast", content=example, headers={"content-type": "text/csv"})
        assert r.status_code == 200, r.text


IDS = ["007", "7", "NA", "null", "=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", " plain"]


def long_csv(ids: list[str]) -> str:
    frames = [
        pd.DataFrame(
            {"unique_id": uid, "ds": pd.date_range("2024-01-01", periods=50, freq="h"), "y": values(50, seed=i)}
        )
        for i, uid in enumerate(ids)
    ]
    return pd.concat(frames).to_csv(index=False)


def test_csv_ids_are_text_exactly_as_sent_and_never_merge(client: TestClient) -> None:
    r = client.post("/forecast?h=2", content=long_csv(IDS), headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    assert [f["id"] for f in r.json()["forecasts"]] == IDS  # JSON answers carry ids unchanged


def test_csv_answers_escape_ids_a_spreadsheet_would_run_as_formulas(client: TestClient) -> None:
    r = client.post("/forecast?h=2", content=long_csv(IDS), headers={"content-type": "text/csv", "accept": "text/csv"})
    assert r.status_code == 200, r.text
    out = pd.read_csv(io.StringIO(r.text), dtype={"unique_id": str}, keep_default_na=False)
    answered = list(dict.fromkeys(out["unique_id"]))
    assert answered == ["007", "7", "NA", "null", "'=1+1", "'+SUM(A1)", "'-2+3", "'@cmd", "'\tx", " plain"]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in out["unique_id"])


def test_csv_levels_may_be_repeated_or_comma_separated(client: TestClient) -> None:
    body = long_csv(["a"])
    for query in ("level=80&level=95", "level=80,95"):
        r = client.post(f"/forecast?h=2&{query}", content=body, headers={"content-type": "text/csv"})
        assert r.status_code == 200, r.text
        assert r.json()["level"] == [80.0, 95.0]


def metric_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name)]


def test_every_route_is_labelled_by_its_template_and_unknown_paths_count_as_errors(client: TestClient) -> None:
    client.get("/openapi.json")
    client.get("/docs")
    client.get("/docs-assets/swagger-ui.css")
    client.get("/no-such-route")
    text = client.get("/metrics").text
    counted = " ".join(metric_lines(text, "gatecast_http_request_duration_seconds_count"))
    for route in ("/openapi.json", "/docs", "/docs-assets"):
        assert f'route="{route}"' in counted, route
    assert 'route="unmatched",status_class="4xx"' in counted
    assert metric_lines(text, 'gatecast_errors_total{reason="not_found"}')


def test_a_scrape_does_not_count_itself_in_flight(client: TestClient) -> None:
    assert metric_lines(client.get("/metrics").text, "gatecast_requests_in_flight ") == [
        "gatecast_requests_in_flight 0.0"
    ]


def test_a_scrape_publishes_what_its_worker_holds_now(client: TestClient) -> None:
    """In flight and memory admitted are counted in the process (app.metrics.ProcessValue) and written to
    their gauges when published: the worker answering a scrape publishes first."""
    from app import admission, metrics

    metrics.IN_FLIGHT.value += 3  # as three requests of this worker would, while the scrape runs
    metrics.MEMORY_ADMITTED.value += 4096
    try:
        text = client.get("/metrics").text
    finally:
        metrics.IN_FLIGHT.value -= 3
        metrics.MEMORY_ADMITTED.value -= 4096
    assert metric_lines(text, "gatecast_requests_in_flight ") == ["gatecast_requests_in_flight 3.0"]
    held = 4096 + admission.REQUEST_BYTES  # the scrape holds a ticket of its own
    assert metric_lines(text, "gatecast_memory_admitted_bytes ") == [f"gatecast_memory_admitted_bytes {held:.1f}"]


def test_openmetrics_is_served_to_scrapers_that_ask_for_it(client: TestClient) -> None:
    r = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")
    plain = client.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain") and "# EOF" not in plain.text


def test_batch_size_buckets_follow_the_configured_maximum() -> None:
    from app.metrics import BATCH_BUCKETS, batch_buckets
    from app.settings import get_settings

    assert batch_buckets(get_settings().max_batch_series) == BATCH_BUCKETS
    assert batch_buckets(64) == (1, 2, 4, 8, 16, 32, 64)
    assert batch_buckets(100) == (1, 2, 4, 8, 16, 32, 64, 100)
    assert batch_buckets(1) == (1,)


def test_the_directly_dispatched_model_routes_keep_their_templates_guards_and_error_shapes(client: TestClient) -> None:
    """/forecast and /v2/.../infer skip FastAPI's router (app.middleware.DirectRoute); everything around
    them must be as before: route labels, 405 with Allow, 404 for unknown models, the /v2 error shape."""
    series = {"model": "tiny", "series": [{"id": "a", "values": values()}]}
    assert client.post("/forecast", json=series).status_code == 200
    tensor = {"inputs": [{"name": "values", "datatype": "FP32", "shape": [1, 60], "data": values()}]}
    assert client.post("/v2/models/tiny/infer", json=tensor).status_code == 200
    assert client.post("/v2/models/tiny/versions/1/infer", json=tensor).status_code == 200
    missing = client.post("/v2/models/nope/infer", json=tensor)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    wrong_method = client.get("/forecast")
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["allow"]
    assert wrong_method.json()["error"] == "method_not_allowed"
    bad = client.post("/forecast", content=b"{", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"] == "malformed_json"
    counted = " ".join(metric_lines(client.get("/metrics").text, "gatecast_http_request_duration_seconds_count"))
    for route in ("/forecast", "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        assert f'route="{route}",status_class="2xx"' in counted, route
    assert 'route="/v2/models/{name}/infer",status_class="4xx"' in counted
