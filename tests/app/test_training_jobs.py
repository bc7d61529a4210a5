"""Training through the service: jobs on a real local Ray, fine-tuning with the unmodified nixtla client, a trainer
killed mid-job, a second replica serving what the first trained, and the refusals (keys, bad data, no extra)."""

from __future__ import annotations

import io
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from nixtla import NixtlaClient
from nixtla._http import ApiError

from harness.live import running_server
from tests.markers import needs_training
from tests.synthetic import seasonal_series

pytestmark = [pytest.mark.slow, needs_training]  # trainers run on Ray with the train extra
ADMIN = {"authorization": "Bearer admin-1"}
KEYS = {"GATECAST_API_KEYS": "k-1", "GATECAST_ADMIN_KEYS": "admin-1"}
# The tiny model of tests/synthetic.py as a config file, reading the data file sent with the job.
CONFIG = """
name = "{name}"
dataset = "ignored: the data part replaces it"
[model]
cell = "gru"
hidden_size = 8
num_layers = 1
dropout = 0.0
input_window = 48
min_window = 30
horizon = 12
interval_lag = 24
[train]
epochs = {epochs}
batch_size = 64
train_stride = 4
patience = {patience}
[evaluate]
stride = 6
stat_model = ""
"""


@pytest.fixture(scope="module")
def base_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with `tiny` and the checkpoint it was exported from, which fine-tuning warm-starts from."""
    from tests.synthetic import seasonal_dataset, tiny_config
    from training.finetune import save_weights
    from training.pipeline import build_artifact

    repo = tmp_path_factory.mktemp("training") / "models"
    path = repo / "tiny" / "1" / "model.onnx"
    built = build_artifact(tiny_config(), seasonal_dataset(), path)
    save_weights(built["model"], path.parent / "checkpoint.pt")
    return repo


@pytest.fixture(scope="module")
def server(base_repository: Path) -> Iterator[str]:
    env = {
        **KEYS,
        "GATECAST_TRAINING": "auto",
        "GATECAST_TRAINING_CPUS": "2",
        "GATECAST_REPOSITORY_POLL_S": "1",
        "GATECAST_FINETUNE_HISTORY_MODELS": "2",
    }
    with running_server(base_repository, **env) as (url, _):
        yield url


def client(url: str) -> NixtlaClient:
    return NixtlaClient(api_key="k-1", base_url=url, max_retries=1, timeout=180)


def history(n: int = 400, seed: int = 5) -> pd.DataFrame:
    y = 1.5 * seasonal_series(n, seed=seed) + 10
    return pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2024-01-01", periods=n, freq="h"), "y": y})


def long_csv(n: int = 1200, series: int = 1) -> bytes:
    parts = [
        pd.DataFrame(
            {
                "unique_id": f"s{i}",
                "ds": pd.date_range("2024-01-01", periods=n, freq="h"),
                "y": seasonal_series(n, seed=i),
            }
        )
        for i in range(series)
    ]
    out = io.StringIO()
    pd.concat(parts).to_csv(out, index=False)
    return out.getvalue().encode()


def submit(url: str, name: str, data: bytes, epochs: int = 2, patience: int = 2) -> dict[str, Any]:
    files = {
        "config": ("job.toml", CONFIG.format(name=name, epochs=epochs, patience=patience).encode()),
        "data": ("readings.csv", data),
    }
    r = httpx.post(f"{url}/jobs", files=files, headers=ADMIN, timeout=60)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/jobs/{r.json()['id']}"
    return dict(r.json())


def wait_for(url: str, job_id: str, states: set[str], deadline_s: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        record = httpx.get(f"{url}/jobs/{job_id}", headers=ADMIN).json()
        if record["state"] in states:
            return dict(record)
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not reach {states} within {deadline_s} s: {record}")


def models_of(url: str) -> set[str]:
    return {m["name"] for m in httpx.get(f"{url}/models", headers=ADMIN).json()["models"]}


def test_the_nixtla_clients_finetune_makes_lists_serves_and_deletes_a_model(server: str) -> None:
    nixtla = client(server)
    df = history()
    model_id = nixtla.finetune(df, model="tiny", finetune_steps=20, finetune_depth=5, output_model_id="my-tiny")
    assert model_id == "my-tiny"
    listed = {m.id: m for m in nixtla.finetuned_models()}
    assert listed["my-tiny"].base_model_id == "tiny" and listed["my-tiny"].steps == 20 and listed["my-tiny"].depth == 5
    assert nixtla.finetuned_model("my-tiny").freq == "h"
    base = nixtla.forecast(df, h=6, model="tiny")
    tuned = nixtla.forecast(df, h=6, finetuned_model_id="my-tiny")
    assert not np.allclose(base.TimeGPT, tuned.TimeGPT)
    cv = nixtla.cross_validation(df, h=6, n_windows=2, finetuned_model_id="my-tiny")
    assert len(cv) == 12
    assert nixtla.delete_finetuned_model("my-tiny")
    with pytest.raises(ApiError) as gone:
        nixtla.forecast(df, h=6, finetuned_model_id="my-tiny")
    assert gone.value.status_code == 404 and "my-tiny" in gone.value.body["detail"]
    assert "my-tiny" not in {m.id for m in nixtla.finetuned_models()}


def test_finetune_steps_in_forecast_trains_once_per_history(server: str) -> None:
    nixtla = client(server)
    df = history(seed=9)
    before = {m.id for m in nixtla.finetuned_models()}
    first = nixtla.forecast(df, h=6, model="tiny", finetune_steps=10)
    made = {m.id for m in nixtla.finetuned_models()} - before
    again = nixtla.forecast(df, h=6, model="tiny", finetune_steps=10)
    assert len(made) == 1 and {m.id for m in nixtla.finetuned_models()} - before == made
    np.testing.assert_allclose(first.TimeGPT, again.TimeGPT)
    assert not np.allclose(first.TimeGPT, nixtla.forecast(df, h=6, model="tiny").TimeGPT)


def test_models_made_on_histories_are_kept_up_to_the_limit(server: str) -> None:
    nixtla = client(server)
    for seed in (21, 22, 23):
        nixtla.forecast(history(n=200, seed=seed), h=6, model="tiny", finetune_steps=5)
    made = [m.id for m in nixtla.finetuned_models() if m.id.startswith("ft-history-")]
    assert len(made) == 2  # GATECAST_FINETUNE_HISTORY_MODELS: the oldest was deleted


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"finetune_loss": "poisson"}, "not a loss gatecast trains with"),
        ({"finetune_steps": 100_000}, "GATECAST_FINETUNE_MAX_STEPS"),
        ({"model": "nope"}, "nope"),
    ],
)
def test_finetune_refuses_what_it_cannot_do_by_name(server: str, options: dict[str, Any], words: str) -> None:
    with pytest.raises(ApiError) as refused:
        client(server).finetune(history(), **{"model": "tiny", "finetune_steps": 5, **options})
    assert refused.value.status_code in (404, 422) and words in refused.value.body["detail"]


def test_a_series_too_short_to_fine_tune_says_how_long_it_must_be(server: str) -> None:
    with pytest.raises(ApiError) as refused:
        client(server).finetune(history(n=40), model="tiny", finetune_steps=5)
    assert refused.value.status_code == 422 and "needs at least 55" in refused.value.body["detail"]


def test_a_job_trains_over_http_and_is_then_served(server: str) -> None:
    job = submit(server, "sensor", long_csv())
    assert job["state"] == "queued" and job["kind"] == "train"
    done = wait_for(server, job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    result = done["result"]
    assert result["model"] == "sensor" and result["version"] == "1"
    assert result["verdict"] and "validation" in result["verdict"]
    assert done["progress"]["epoch"] >= 1 and "val_loss" in done["progress"]
    body = {"model": "sensor", "horizon": 6, "series": [{"id": "x", "values": seasonal_series(96).tolist()}]}
    r = httpx.post(f"{server}/forecast", json=body, headers=ADMIN)
    assert r.status_code == 200 and len(r.json()["forecasts"][0]["mean"]) == 6, r.text
    again = wait_for(server, submit(server, "sensor", long_csv())["id"], {"succeeded", "failed"})
    assert again["result"]["version"] == "2"  # a name that exists gets its next version


def test_bad_data_fails_the_job_with_the_reason(server: str) -> None:
    job = submit(server, "broken", b"unique_id,ds,value\na,2024-01-01,1.0\n")
    done = wait_for(server, job["id"], {"succeeded", "failed"}, deadline_s=120)
    assert done["state"] == "failed" and "y" in done["error"], done
    assert "broken" not in models_of(server)


def test_a_trainer_killed_mid_job_leaves_it_failed_and_nothing_half_written(server: str, base_repository: Path) -> None:
    job = submit(server, "killed", long_csv(), epochs=500, patience=500)
    running = wait_for(server, job["id"], {"running"})
    deadline = time.monotonic() + 60
    while not running.get("progress") and time.monotonic() < deadline:
        time.sleep(0.3)
        running = httpx.get(f"{server}/jobs/{job['id']}", headers=ADMIN).json()
    os.kill(running["trainer"]["pid"], signal.SIGKILL)
    done = wait_for(server, job["id"], {"failed", "succeeded", "cancelled"}, deadline_s=60)
    assert done["state"] == "failed" and "trainer process stopped" in done["error"], done
    assert not (base_repository / "killed").exists()
    assert not any((base_repository / ".staging").glob("*")) if (base_repository / ".staging").exists() else True


def test_a_cancelled_job_stops_and_publishes_nothing(server: str, base_repository: Path) -> None:
    job = submit(server, "cancelled", long_csv(), epochs=500, patience=500)
    wait_for(server, job["id"], {"running"})
    r = httpx.delete(f"{server}/jobs/{job['id']}", headers=ADMIN)
    assert r.status_code == 202, r.text
    done = wait_for(server, job["id"], {"cancelled", "failed", "succeeded"}, deadline_s=90)
    assert done["state"] == "cancelled", done
    assert not (base_repository / "cancelled").exists()
    assert httpx.delete(f"{server}/jobs/{job['id']}", headers=ADMIN).status_code == 409


def test_a_second_replica_serves_the_model_the_first_trained(server: str, base_repository: Path) -> None:
    with running_server(base_repository, **KEYS, GATECAST_REPOSITORY_POLL_S="1") as (replica, _):
        job = submit(server, "shared", long_csv())
        assert wait_for(server, job["id"], {"succeeded", "failed"})["state"] == "succeeded"
        deadline = time.monotonic() + 30
        while "shared" not in models_of(replica) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert "shared" in models_of(replica)
        # The replica reads the same job records, though it runs no training itself.
        assert httpx.get(f"{replica}/jobs/{job['id']}", headers=ADMIN).json()["state"] == "succeeded"


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"authorization": "Bearer k-1"}, 401), ({}, 401), (ADMIN, 202)],
    ids=["api-key", "no-key", "admin-key"],
)
def test_jobs_need_an_admin_key(server: str, headers: dict[str, str], status: int) -> None:
    config = CONFIG.format(name="keyed", epochs=1, patience=1)
    r = httpx.post(f"{server}/jobs", files={"config": ("c.toml", config.encode())}, headers=headers)
    if status == 202:  # no data part and a dataset path that does not exist: accepted, then failed by the trainer
        assert r.status_code == 202, r.text
        done = wait_for(server, r.json()["id"], {"failed", "succeeded"}, deadline_s=120)
        assert done["state"] == "failed" and "ignored" in done["error"]
    else:
        assert r.status_code == status and "admin key" in r.json()["message"]


@pytest.mark.parametrize(
    ("files", "content_type", "status", "words"),
    [
        (None, "application/json", 415, "multipart/form-data"),
        ({"config": ("c.toml", b"name = [")}, None, 422, "not valid TOML"),
        ({"config": ("c.toml", b'name = "../x"\ndataset = "a.csv"')}, None, 422, "is not valid"),
        ({"config": ("c.toml", b'name = "x"'), "data": ("d.xlsx", b"1")}, None, 422, "not .csv or .parquet"),
        ({"config": ("c.toml", b'name = "x"'), "extra": ("e", b"1")}, None, 422, "['extra']"),
    ],
    ids=["json", "bad-toml", "bad-name", "bad-data-type", "unknown-part"],
)
def test_a_job_that_cannot_be_read_is_refused_by_name(
    server: str, files: dict[str, Any] | None, content_type: str | None, status: int, words: str
) -> None:
    headers = {**ADMIN, **({"content-type": content_type} if content_type else {})}
    r = httpx.post(f"{server}/jobs", files=files, headers=headers, content=None if files else b"{}")
    assert r.status_code == status and words in r.json()["message"], r.text


def test_an_unknown_job_is_404(server: str) -> None:
    r = httpx.get(f"{server}/jobs/train-000000000000", headers=ADMIN)
    assert r.status_code == 404 and "GET /jobs" in r.json()["message"]
