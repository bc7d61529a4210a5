"""Every training run compares the model with naive and seasonal naive on the validation split, says so when it
loses, and the verdict travels in the artifact to GET /models/{name}."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from training.data import Dataset, Series
from training.evaluate import SplitForecasts, validation_verdict


def _split(forecasts: np.ndarray, inputs: np.ndarray, actuals: np.ndarray) -> SplitForecasts:
    n = len(inputs)
    return SplitForecasts(inputs, actuals, forecasts, np.ones(n), np.zeros(n, dtype=int), np.arange(n), [])


def _walk() -> tuple[Dataset, np.ndarray, np.ndarray]:
    """A random walk: naive is the best forecast there is. Windows of 30 values, 4 steps ahead."""
    values = np.cumsum(np.random.default_rng(3).normal(size=600)) + 100
    dataset = Dataset("walk", "y", "D", 7, [Series("w", values, 300, 450, 600)])
    starts = range(300, 420)
    inputs = np.stack([values[s - 30 : s] for s in starts])
    actuals = np.stack([values[s : s + 4] for s in starts])
    return dataset, inputs, actuals


def test_a_model_worse_than_naive_gets_a_verdict_that_says_so() -> None:
    dataset, inputs, actuals = _walk()
    noisy = inputs[:, -1:] + np.random.default_rng(0).normal(scale=3.0, size=actuals.shape)  # naive, plus noise
    out = validation_verdict(_split(noisy, inputs, actuals), dataset, 7, 4)
    assert out["beats_naive"] is False
    assert out["verdict"].startswith("LOSES to naive on validation")
    assert out["mase"]["model"] > out["mase"]["naive"]
    assert "worse" in out["verdict"] and out["windows"] == len(inputs)


def test_a_model_better_than_both_baselines_beats_them() -> None:
    dataset, inputs, actuals = _walk()
    out = validation_verdict(_split(actuals + 0.01, inputs, actuals), dataset, 7, 4)  # all but perfect
    assert out["beats_naive"] is True and out["verdict"].startswith("beats naive and seasonal naive")
    assert out["mase"]["model"] < min(out["mase"]["naive"], out["mase"]["seasonal_naive"])


@pytest.mark.parametrize("weight", [0.95, 1.0])
def test_a_blend_that_is_all_naive_is_called_the_naive_forecast(weight: float) -> None:
    """A weight near 1: the exported model is naive's forecast, and the verdict says that, not that it beats it."""
    dataset, inputs, actuals = _walk()
    naive = np.repeat(inputs[:, -1:], 4, axis=1)
    out = validation_verdict(_split(naive, inputs, actuals), dataset, 7, 4, blend=(weight, 1))
    assert out["verdict"].startswith(f"is the naive forecast: the naive blend gave naive weight {weight:.2f}")
    seasonal = validation_verdict(_split(naive, inputs, actuals), dataset, 7, 4, blend=(weight, 7))
    assert seasonal["verdict"].startswith("is the seasonal naive forecast")
    below = validation_verdict(_split(actuals + 0.01, inputs, actuals), dataset, 7, 4, blend=(0.9, 1))
    assert below["verdict"].startswith("beats naive")


def test_a_run_that_loses_warns_and_the_artifact_carries_the_verdict(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.synthetic import tiny_config
    from training.pipeline import build_artifact

    dataset, _, _ = _walk()
    dataset = Dataset("walk", "y", "h", 24, dataset.series)
    path = tmp_path / "models" / "walk" / "1" / "model.onnx"
    with caplog.at_level(logging.WARNING, logger="gatecast.evaluate"):
        built = build_artifact(tiny_config("walk", epochs=1), dataset, path)
    validation = built["evaluation"]["validation"]
    assert validation["beats_naive"] is False  # one epoch on a random walk (seeded): 84% worse than naive here
    assert validation["mase"]["model"] > validation["mase"]["naive"]
    assert any("walk: LOSES to naive" in r.getMessage() for r in caplog.records)
    with TestClient(create_app(Settings(model_repository=tmp_path / "models"))) as c:
        shown = c.get("/models/walk").json()["versions"][0]["validation"]
    assert shown == validation


def test_artifacts_from_before_the_verdict_show_none(tmp_path: Path) -> None:
    """A schema-3 file as exported before the verdict (the committed model with its card set back)."""
    committed = Path(__file__).resolve().parents[2] / "models" / "vix-lstm" / "1" / "model.onnx"
    proto = onnx.load(str(committed))
    props = {p.key: p.value for p in proto.metadata_props}
    metrics = json.loads(props["gatecast.metrics"])
    del metrics["validation"]
    props.update({"gatecast.metrics": json.dumps(metrics), "gatecast.schema": "3"})
    del props["gatecast.transform"], props["gatecast.members"]
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    (tmp_path / "old" / "vix-lstm" / "1").mkdir(parents=True)
    onnx.save(proto, str(tmp_path / "old" / "vix-lstm" / "1" / "model.onnx"))
    with TestClient(create_app(Settings(model_repository=tmp_path / "old"))) as c:
        shown = c.get("/models/vix-lstm").json()["versions"][0]
    assert shown["validation"] is None and shown["transform"] == "none" and shown["members"] == []
