"""`gatecast tune` (Ray Tune with Optuna's sampler, on a real local Ray) and `gatecast pipeline` with several configs
as parallel Ray tasks, on small synthetic data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.markers import needs_training
from tests.synthetic import seasonal_series

pytestmark = [pytest.mark.slow, needs_training]  # trainers run on Ray with the train extra
ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
name = "{name}"
dataset = "{data}"
[model]
cell = "gru"
hidden_size = 8
num_layers = 1
input_window = 48
min_window = 30
horizon = 12
[train]
epochs = 3
patience = 2
train_stride = 8
[evaluate]
stride = 12
stat_model = ""
"""


def write(folder: Path, name: str) -> Path:
    data = folder / "data.csv"
    if not data.exists():
        y = seasonal_series(900)
        pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2024-01-01", periods=900, freq="h"), "y": y}).to_csv(
            data, index=False
        )
    path = folder / f"{name}.toml"
    path.write_text(CONFIG.format(name=name, data=data))
    return path


def gatecast(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_tune_reports_every_trial_against_the_config_and_exports_the_best(tmp_path: Path) -> None:
    config = write(tmp_path, "tuned")
    done = gatecast("tune", str(config), "--trials", "3", "--max-epochs", "2", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "reports" / "tuned.tune" / "tune.json").read_text())
    assert report["trials"] == 3 and len(report["rows"]) == 3
    default = report["default"]
    assert default is not None and default["params"]["model.hidden_size"] == 8  # the config as written ran first
    assert report["best"]["val_mase"] <= default["val_mase"]
    assert all(row["val_mase"] is not None or not row["finished"] for row in report["rows"])
    page = (tmp_path / "reports" / "tuned.tune" / "tune.md").read_text()
    assert "Chosen on validation MASE only" in page and "The config as written" in page
    tuned = tmp_path / "reports" / "tuned.tune" / "tuned.toml"
    assert tuned.exists() and (tmp_path / "models" / "tuned" / "1" / "model.onnx").exists()
    assert "test MASE" in done.stdout  # the final run's summary, as gatecast pipeline prints it


def test_pipeline_runs_several_configs_as_parallel_ray_tasks(tmp_path: Path) -> None:
    configs = [str(write(tmp_path, name)) for name in ("first", "second")]
    done = gatecast("pipeline", *configs, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("first", "second"):
        assert (tmp_path / "models" / name / "1" / "model.onnx").exists()
        assert f"{name}: done in" in done.stdout
    assert "2 configs on" in done.stderr
