"""Without the train extra, or with training switched off, the job and fine-tuning routes answer 503 naming what
to do, and write nothing; bad input is still refused by name first. In-process: no Ray is started."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import trainer_client
from app.main import create_app
from app.settings import Settings

FINETUNE = {
    "model": "tiny",
    "freq": "h",
    "finetune_steps": 5,
    "series": {"y": [float(v % 24) for v in range(200)], "sizes": [200], "start_datetime": ["2024-01-01T00:00:00"]},
}
CONFIG = b'name = "x"\ndataset = "/data/x.csv"\n'


def without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(trainer_client.importlib.util, "find_spec", lambda n, *a: None if n in modules else real(n, *a))


@pytest.fixture
def client(repository: Path, tmp_path: Path) -> Any:
    with TestClient(create_app(Settings(model_repository=repository, state_dir=tmp_path))) as c:
        yield c


def test_without_the_train_extra_jobs_and_fine_tuning_name_what_to_install(
    client: TestClient, repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without(monkeypatch, "torch", "ray")
    job = client.post("/jobs", content=CONFIG, headers={"content-type": "application/toml"})
    assert job.status_code == 503 and "pip install 'gatecast[train]'" in job.json()["message"], job.text
    assert "ray and torch are not installed" in job.json()["message"]
    tuned = client.post("/v2/finetune", json=FINETUNE)
    assert tuned.status_code == 503 and "pip install 'gatecast[train]'" in tuned.json()["detail"], tuned.text
    assert not (repository / ".jobs").exists()


def test_training_off_answers_503_naming_the_setting(repository: Path, tmp_path: Path) -> None:
    settings = Settings(model_repository=repository, state_dir=tmp_path, training="off")
    with TestClient(create_app(settings)) as c:
        r = c.post("/jobs", content=CONFIG, headers={"content-type": "application/toml"})
        assert r.status_code == 503 and "GATECAST_TRAINING=off" in r.json()["message"]
        forecast = c.post("/v2/forecast", json={**FINETUNE, "h": 6})
        assert forecast.status_code == 503 and "GATECAST_TRAINING=off" in forecast.json()["detail"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"finetune_loss": "mse"}, "not a loss gatecast trains with"),
        ({"finetune_depth": 7}, "finetune_depth"),
        ({"output_model_id": "../up"}, "output_model_id"),
        ({"output_model_id": "tiny"}, "already exists"),
        ({"freq": "D"}, "forecasts at 'h'"),
        ({"finetune_steps": 0}, "finetune_steps"),
    ],
)
def test_bad_fine_tuning_input_is_refused_before_any_job(
    client: TestClient, repository: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], words: str
) -> None:
    without(monkeypatch, "torch", "ray")  # a job would be 503: these must be refused before one is made
    r = client.post("/v2/finetune", json={**FINETUNE, **change})
    assert r.status_code in (409, 422) and words in r.json()["detail"], r.text
    assert not (repository / ".jobs").exists()


def test_a_running_job_whose_trainer_stopped_writing_is_failed_when_read(client: TestClient, repository: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from contract import jobs

    old = (datetime.now(UTC) - timedelta(seconds=jobs.STALE_S + 5)).isoformat(timespec="seconds")
    record = jobs.JobRecord("train-0123456789ab", "train", "running", old, old, {"name": "x"})
    record.trainer, record.heartbeat_at = {"host": "node-1", "pid": 4242}, old
    jobs.write(repository.resolve(), record)
    r = client.get("/jobs/train-0123456789ab")
    assert r.json()["state"] == "failed" and "node-1, pid 4242" in r.json()["error"], r.text
    assert jobs.read(repository.resolve(), "train-0123456789ab").state == "failed"  # written for every reader


def test_jobs_are_404_and_finetuned_models_empty_before_any_job(client: TestClient) -> None:
    assert client.get("/jobs").json() == {"jobs": []}
    assert client.get("/jobs/train-0123456789ab").status_code == 404
    assert client.get("/v2/finetuned_models").json() == {"finetuned_models": []}
    r = client.get("/v2/finetuned_models/tiny")
    assert r.status_code == 404 and "not a fine-tuned one" in r.json()["detail"]
    assert client.delete("/v2/finetuned_models/nope").status_code == 404
