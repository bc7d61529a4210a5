"""The unmodified nixtla client (TimeGPT's SDK, from PyPI) against `gatecast serve`."""

from __future__ import annotations

import gzip
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import zstandard
from nixtla import NixtlaClient
from nixtla._http import ApiError

from harness.live import running_server
from tests.synthetic import seasonal_series

ROOT = Path(__file__).resolve().parents[4]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_artifact: Path, covariate_artifact: Path) -> Iterator[str]:
    repo = tmp_path_factory.mktemp("timegpt") / "models"
    for name, artifact in (("tiny", tiny_artifact), ("tinycov", covariate_artifact)):
        (repo / name / "1").mkdir(parents=True)
        shutil.copy(artifact, repo / name / "1" / "model.onnx")
    env = {"GATECAST_API_KEYS": "k-1", "GATECAST_DEFAULT_MODEL": "tiny", "GATECAST_MAX_BODY_BYTES": "4000000"}
    with running_server(repo, **env) as (url, _):
        yield url


def client(url: str, key: str = "k-1") -> NixtlaClient:
    return NixtlaClient(api_key=key, base_url=url, max_retries=1)


def frame(n: int = 240, ids: tuple[str, ...] = ("a", "b")) -> pd.DataFrame:
    parts = []
    for i, uid in enumerate(ids):
        y = seasonal_series(n, seed=10 + i)
        parts.append(pd.DataFrame({"unique_id": uid, "ds": pd.date_range("2024-01-01", periods=n, freq="h"), "y": y}))
    return pd.concat(parts, ignore_index=True)


def gatecast_forecast(
    url: str,
    values: np.ndarray,
    h: int,
    model: str = "tiny",
    calibration: str = "model",
    level: list | None = None,
    **extra: object,
) -> dict:
    series = [{"id": "s", "values": values.tolist(), **extra}]
    body = {"model": model, "horizon": h, "level": level or [80], "calibration": calibration, "series": series}
    r = httpx.post(f"{url}/forecast", json=body, headers={"x-api-key": "k-1"})
    assert r.status_code == 200, r.text
    return r.json()["forecasts"][0]


def sent(url: str, values: np.ndarray, h: int, model: str = "tiny") -> np.ndarray:
    """The values the client sends with `level`: the last 3 input sizes + max(horizon, h) (TimeGPT's conformal
    history, nixtla/_preprocessing._restrict_input_samples)."""
    params = httpx.get(f"{url}/model_params", params={"model": model}, headers={"x-api-key": "k-1"}).json()
    return values[-(3 * params["detail"]["input_size"] + max(params["detail"]["horizon"], h)) :]


def test_forecast_equals_gatecasts_own(server: str) -> None:
    df = frame()
    out = client(server).forecast(df, h=12, model="tiny", level=[80])
    assert list(out.columns) == ["unique_id", "ds", "TimeGPT", "TimeGPT-hi-80", "TimeGPT-lo-80"]
    for uid, part in out.groupby("unique_id"):
        values = sent(server, df[df.unique_id == uid].y.to_numpy(), 12)
        own = gatecast_forecast(server, values, 12, calibration="auto")
        np.testing.assert_allclose(part.TimeGPT, own["mean"], rtol=1e-6)
        np.testing.assert_allclose(part["TimeGPT-lo-80"], own["intervals"]["80"]["lo"], rtol=1e-5)
        assert own["calibration"]["checks"] > 0
        assert part.ds.iloc[0] == pd.Timestamp("2024-01-11 00:00")


def test_timegpt_model_names_mean_the_default_model_and_quantiles_work(server: str) -> None:
    df = frame(ids=("a",))
    by_default = client(server).forecast(df, h=6, quantiles=[0.1, 0.5, 0.9])  # model="timegpt-2.1"
    named = client(server).forecast(df, h=6, model="tiny")
    np.testing.assert_allclose(by_default["TimeGPT-q-50"], named.TimeGPT)
    assert (by_default["TimeGPT-q-10"] < by_default["TimeGPT-q-50"]).all()
    assert (by_default["TimeGPT-q-90"] > by_default["TimeGPT-q-50"]).all()
    assert client(server).list_models() == ["tiny", "tinycov"]


def test_cross_validation_rows_cutoffs_and_actuals(server: str) -> None:
    df = frame()
    out = client(server).cross_validation(df, h=12, n_windows=3, model="tiny", level=[90])
    assert len(out) == 2 * 3 * 12 and out.cutoff.nunique() == 3
    assert out.groupby("unique_id").cutoff.max().eq(pd.Timestamp("2024-01-10 11:00")).all()
    merged = out.merge(df, on=["unique_id", "ds"], suffixes=("", "_sent"))
    np.testing.assert_allclose(merged.y, merged.y_sent)
    first = out[(out.unique_id == "a")].iloc[:12]
    cut = int(((df.unique_id == "a") & (df.ds <= first.cutoff.iloc[0])).sum())
    own = gatecast_forecast(server, df[df.unique_id == "a"].y.to_numpy()[:cut], 12)
    np.testing.assert_allclose(first.TimeGPT, own["mean"], rtol=1e-6)


def test_intervals_are_calibrated_on_the_history_sent_unless_the_model_table_is_asked(server: str) -> None:
    """As TimeGPT's are: by default (calibration "auto") the intervals /forecast calibrates on the values the
    client sends with `level`; model_parameters={"calibration": "model"} gives the model's own table, "history"
    the same as the default on a history long enough."""
    df = frame(n=400, ids=("a",))
    values = sent(server, df.y.to_numpy(), 12)
    by_default = client(server).forecast(df, h=12, model="tiny", level=[80, 95])
    history = client(server).forecast(
        df, h=12, model="tiny", level=[80, 95], model_parameters={"calibration": "history"}
    )
    table = client(server).forecast(df, h=12, model="tiny", level=[80, 95], model_parameters={"calibration": "model"})
    calibrated = gatecast_forecast(server, values, 12, calibration="history", level=[80, 95])
    own = gatecast_forecast(server, values, 12, level=[80, 95])
    for level in ("80", "95"):
        for side in ("lo", "hi"):
            column = f"TimeGPT-{side}-{level}"
            np.testing.assert_allclose(by_default[column], calibrated["intervals"][level][side], rtol=1e-5)
            np.testing.assert_allclose(history[column], calibrated["intervals"][level][side], rtol=1e-5)
            np.testing.assert_allclose(table[column], own["intervals"][level][side], rtol=1e-5)
    np.testing.assert_allclose(by_default.TimeGPT, table.TimeGPT, rtol=1e-6)
    width = (by_default["TimeGPT-hi-80"] - by_default["TimeGPT-lo-80"]).to_numpy()
    assert not np.allclose(width, (table["TimeGPT-hi-80"] - table["TimeGPT-lo-80"]).to_numpy(), rtol=1e-3)


def test_a_history_too_short_to_calibrate_keeps_the_models_table_unless_history_is_asked(server: str) -> None:
    df = frame(n=32, ids=("a",))  # the first window and 2 values: 3 scored steps, 95% needs 19
    by_default = client(server).forecast(df, h=12, model="tiny", level=[95])
    own = gatecast_forecast(server, df.y.to_numpy(), 12, level=[95])
    np.testing.assert_allclose(by_default["TimeGPT-hi-95"], own["intervals"]["95"]["hi"], rtol=1e-5)
    with pytest.raises(ApiError) as refused:
        client(server).forecast(df, h=12, model="tiny", level=[95], model_parameters={"calibration": "history"})
    assert refused.value.status_code == 422 and "send at least 4 more values" in refused.value.body["detail"]


@pytest.mark.parametrize(
    ("call", "parameters", "words"),
    [
        ("forecast", {"temperature": 0.5}, "model_parameters ['temperature'] are not read here"),
        ("forecast", {"calibration": "recent"}, "calibration 'recent' is not known"),
        ("forecast", {"calibration": 1}, 'model_parameters["calibration"] is 1; expected a string'),
        ("cross_validation", {"calibration": "history"}, "only forecast reads ['calibration']"),
        ("detect_anomalies_online", {"calibration": "history"}, "only forecast reads ['calibration']"),
    ],
)
def test_model_parameters_gatecast_does_not_read_are_refused_by_name(
    server: str, call: str, parameters: dict, words: str
) -> None:
    with pytest.raises(ApiError) as refused:
        extra = {"detection_size": 24} if call == "detect_anomalies_online" else {}
        getattr(client(server), call)(
            frame(ids=("a",)), h=12, model="tiny", level=[80], model_parameters=parameters, **extra
        )
    assert refused.value.status_code == 422 and words in refused.value.body["detail"], refused.value.body


def test_add_history_gives_in_sample_forecasts(server: str) -> None:
    out = client(server).forecast(frame(ids=("a",)), h=12, model="tiny", add_history=True)
    assert len(out) > 12 and out.ds.is_monotonic_increasing and out.TimeGPT.notna().all()


def spiky(n: int = 300, at: int = 250) -> pd.DataFrame:
    df = frame(n, ids=("a",))
    df.loc[at, "y"] += 40.0
    return df


def test_online_anomaly_detection_flags_an_injected_spike(server: str) -> None:
    out = client(server).detect_anomalies_online(spiky(), h=12, detection_size=100, level=99, model="tiny")
    assert len(out) == 100
    flagged = out[out.anomaly]
    assert pd.Timestamp("2024-01-11 10:00") in set(flagged.ds)
    assert len(flagged) <= 5, flagged


def test_batch_anomaly_detection_flags_an_injected_spike(server: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the client announces the method's rename in 1.0
        out = client(server).detect_anomalies(spiky(), level=99, model="tiny")
    assert len(out) == 300 - 30
    assert pd.Timestamp("2024-01-11 10:00") in set(out[out.anomaly].ds)
    assert out.anomaly.mean() <= 0.05


def test_covariates_map_by_position_to_the_models(server: str) -> None:
    n = 240
    df = frame(n, ids=("a",))
    rng = np.random.default_rng(0)
    df["plan"] = rng.normal(size=n)
    df["load"] = rng.normal(size=n)
    future = pd.DataFrame(
        {"unique_id": "a", "ds": pd.date_range(df.ds.iloc[-1] + pd.Timedelta(hours=1), periods=12, freq="h")}
    )
    future["plan"] = rng.normal(size=12)
    out = client(server).forecast(df, h=12, X_df=future, hist_exog_list=["load"], model="tinycov")
    own = gatecast_forecast(
        server,
        df.y.to_numpy(),
        12,
        model="tinycov",
        start="2024-01-01T00:00:00",
        freq="h",
        covariates={"load": df.load.tolist(), "plan": df.plan.tolist()},
        future_covariates={"plan": future.plan.tolist()},
    )
    np.testing.assert_allclose(out.TimeGPT, own["mean"], rtol=1e-5)
    with pytest.raises(ApiError) as refused:
        client(server).forecast(df[["unique_id", "ds", "y"]], h=12, model="tinycov")
    assert refused.value.status_code == 422 and "future ['plan']" in refused.value.body["detail"]


@pytest.mark.parametrize(
    ("options", "status", "words"),
    [
        ({"h": 48}, 422, "horizon 48 is out of range"),
        ({"h": 12, "finetune_steps": 5, "finetune_loss": "poisson"}, 422, "not a loss gatecast trains with"),
        ({"h": 12, "finetune_steps": 5}, 503, "GATECAST_TRAINING=off"),
        ({"h": 12, "model": "nope"}, 404, "nope"),
    ],
)
def test_what_gatecast_cannot_do_is_refused_with_what_to_do(
    server: str, options: dict, status: int, words: str
) -> None:
    with pytest.raises(ApiError) as refused:
        client(server).forecast(frame(ids=("a",)), **{"model": "tiny", **options})
    assert refused.value.status_code == status and words in refused.value.body["detail"]


@pytest.mark.parametrize("route", ["/v2/forecast", "/v2/anomaly_detection", "/v2/cross_validation"])
def test_sizes_beyond_any_series_are_a_422_not_an_overflow(server: str, route: str) -> None:
    body = {"model": "tiny", "h": 6, "freq": "h", "series": {"sizes": [2**70, 3], "y": [1.0, 2.0, 3.0]}}
    r = httpx.post(f"{server}{route}", json=body, headers={"authorization": "Bearer k-1"})
    assert r.status_code == 422 and "series.sizes" in r.json()["detail"], r.text


def test_a_series_too_short_to_score_is_refused_by_name(server: str) -> None:
    df = pd.concat([spiky(), frame(n=20, ids=("short",))])
    with pytest.raises(ApiError) as refused:
        client(server).detect_anomalies(df, model="tiny", freq="h")
    # TimeGPT's protocol carries no ids: series are named by position (the second one here).
    detail = refused.value.body["detail"]
    assert refused.value.status_code == 422 and "series '#1' has 20 values" in detail and "at least 31" in detail


def test_the_clients_plot_draws_gatecasts_forecast(server: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    df = frame(ids=("a",))
    forecast = client(server).forecast(df, h=12, model="tiny", level=[80])
    figure = client(server).plot(df, forecast, level=[80], engine="matplotlib")
    lines = [line.get_label() for ax in figure.axes for line in ax.get_lines()]
    assert "TimeGPT" in lines and "y" in lines


def test_keys_are_gatecasts(server: str) -> None:
    assert client(server).validate_api_key() is True
    assert client(server, key="wrong").validate_api_key() is False
    with pytest.raises(ApiError) as refused:
        client(server, key="wrong").forecast(frame(ids=("a",)), h=6, model="tiny")
    assert refused.value.status_code == 401


def test_large_payloads_arrive_zstd_compressed(server: str) -> None:
    """Over 1 MB the client compresses with zstd (it cannot be told not to). With covariates it sends every
    value (no trimming to the input size): 20 series x 4,000 rows x 3 columns is about 2.6 MB of JSON."""
    df = frame(n=4000, ids=tuple(f"s{i:02d}" for i in range(20)))
    rng = np.random.default_rng(1)
    df["plan"], df["load"] = rng.normal(size=len(df)), rng.normal(size=len(df))
    last = df.groupby("unique_id").ds.max()
    future = pd.DataFrame(
        [(uid, t + pd.Timedelta(hours=k + 1)) for uid, t in last.items() for k in range(12)],
        columns=["unique_id", "ds"],
    )
    future["plan"] = rng.normal(size=len(future))
    whole = client(server).forecast(df, h=12, X_df=future, hist_exog_list=["load"], model="tinycov")
    recent = client(server).forecast(
        df.groupby("unique_id").tail(200), h=12, X_df=future, hist_exog_list=["load"], model="tinycov"
    )
    assert whole.unique_id.nunique() == 20
    np.testing.assert_allclose(whole.TimeGPT, recent.TimeGPT, rtol=1e-6)


def test_compressed_bodies_are_bounded_and_checked(server: str) -> None:
    body = b'{"series": [{"id": "a", "values": [' + b",".join([b"1.5"] * 100) + b"]}]}"
    headers = {"x-api-key": "k-1", "content-type": "application/json"}
    plain = httpx.post(f"{server}/forecast", content=body, headers=headers)
    for coding, packed in (("zstd", zstandard.ZstdCompressor().compress(body)), ("gzip", gzip.compress(body))):
        r = httpx.post(f"{server}/forecast", content=packed, headers={**headers, "content-encoding": coding})
        assert r.status_code == 200 and r.json() == plain.json(), r.text
    bomb = zstandard.ZstdCompressor().compress(b" " * 5_000_000)  # a few hundred bytes that inflate past the limit
    r = httpx.post(f"{server}/forecast", content=bomb, headers={**headers, "content-encoding": "zstd"})
    assert r.status_code == 413 and "inflates to more than" in r.json()["message"]
    r = httpx.post(f"{server}/forecast", content=b"not zstd", headers={**headers, "content-encoding": "zstd"})
    assert r.status_code == 400 and "not valid zstd" in r.json()["message"]
    r = httpx.post(f"{server}/forecast", content=body, headers={**headers, "content-encoding": "br"})
    assert r.status_code == 415
    assert httpx.get(f"{server}/v2/health/ready").status_code == 200


def test_missing_values_are_refused_by_position(server: str) -> None:
    y = [1.0] * 60
    y[7] = None  # the client writes NaN as null
    body = {"series": {"y": y, "sizes": [60]}, "model": "tiny", "h": 6, "freq": "h"}
    r = httpx.post(f"{server}/v2/forecast", json=body, headers={"authorization": "Bearer k-1"})
    assert r.status_code == 422 and "value 7 is missing (NaN)" in r.json()["detail"], r.text


def test_the_api_pages_x_df_example_runs_against_the_fixture_it_names(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/api.md's X_df block, as written, against a server on tests/fixtures/models (tinycov), as the page says."""
    page = (ROOT / "docs" / "api.md").read_text()
    block = page.split("<!-- xdf-example:")[1].split("<!-- end xdf-example -->")[0]
    code = block.split("```python\n")[1].split("```")[0]
    ns: dict[str, Any] = {}
    with running_server(ROOT / "tests" / "fixtures" / "models") as (url, _):
        exec(compile(code.replace("http://localhost:8000", url), "docs/api.md", "exec"), ns)  # noqa: S102
        printed = capsys.readouterr().out
        client, df, x_df = ns["client"], ns["df"], ns["X_df"]
        asked = {"h": 12, "model": "tinycov", "hist_exog_list": ["load"]}
        on = client.forecast(df, X_df=x_df, **asked)["TimeGPT"].to_numpy()
        off = client.forecast(df, X_df=x_df.assign(plan=0.0), **asked)["TimeGPT"].to_numpy()
    assert "TimeGPT-lo-80" in printed and "2024-03-05 00:00:00" in printed, printed
    assert not np.allclose(on, off), "the planned step ahead changed nothing: X_df was not read"


def test_every_answer_names_the_model_and_version_that_made_it(server: str) -> None:
    """TimeGPT's bodies have no field for it: a `gatecast-model` header does, for a named model and the default."""
    y = [float(i % 24) for i in range(200)]
    headers = {"authorization": "Bearer k-1"}
    for model in ("tiny", "timegpt-1"):  # named, and TimeGPT's name for the default (GATECAST_DEFAULT_MODEL=tiny)
        body = {"series": {"y": y, "sizes": [200]}, "model": model, "h": 6, "freq": "h"}
        for route in ("/v2/forecast", "/v2/cross_validation", "/v2/anomaly_detection"):
            r = httpx.post(f"{server}{route}", json=body, headers=headers)
            assert r.status_code == 200 and r.headers["gatecast-model"] == "tiny@1", (route, r.text)
