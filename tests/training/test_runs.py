"""Runs never overwrite what they did not produce; export embeds only its own checkpoint's evaluation;
`gatecast init` writes a working config from the data; the commands fail with a message, not a traceback."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training import artifacts, pipeline
from training.artifacts import NameTaken, StaleEvaluation
from training.config import RunConfig
from training.init import write_config

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "model": {"cell": "gru", "hidden_size": 8, "num_layers": 1, "input_window": 48, "min_window": 30, "horizon": 12},
    "train": {"epochs": 2, "batch_size": 64, "train_stride": 4},
    "evaluate": {"stride": 6, "stat_model": ""},
}


def sensor_csv(path: Path, hours: int = 24 * 40) -> Path:
    rng = np.random.default_rng(0)
    stamps = pd.date_range("2024-01-01", periods=hours, freq="h")
    y = 50 + 10 * np.sin(2 * np.pi * np.arange(hours) / 24) + rng.normal(0, 0.5, hours)
    pd.DataFrame({"unique_id": "pump", "ds": stamps, "y": y.round(3)}).to_csv(path, index=False)
    return path


def config_file(root: Path, file: str, name: str, data: Path, **extra: object) -> RunConfig:
    import tomllib

    path = root / file
    lines = [f'name = "{name}"', f'dataset = "{data}"']
    for section, values in {**TINY, **extra}.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v!r}".replace("'", '"') for k, v in values.items()]  # type: ignore[union-attr]
    path.write_text("\n".join(lines) + "\n")
    tomllib.loads(path.read_text())
    return RunConfig.load(path)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder holding a copy of a committed model, and a user's CSV."""
    shutil.copytree(ROOT / "models" / "vix-gru", tmp_path / "models" / "vix-gru")
    sensor_csv(tmp_path / "pump.csv")
    return tmp_path


def test_a_copied_config_that_keeps_a_committed_name_is_refused_before_training(project: Path) -> None:
    committed = project / "models" / "vix-gru" / "1" / "model.onnx"
    before = digest(committed)
    copy = config_file(project, "my.toml", "vix-gru", project / "pump.csv")
    with pytest.raises(NameTaken, match=r"models/vix-gru/1/model.onnx \(made from training/configs/vix-gru.toml\)"):
        pipeline.run_train(copy, project, progress=False)
    assert digest(committed) == before
    assert not (project / "runs" / "vix-gru").exists()


def test_a_run_owns_what_it_made_and_another_config_cannot_take_it(project: Path) -> None:
    mine = config_file(project, "pump.toml", "pump", project / "pump.csv")
    pipeline.run_all(mine, project, progress=False)
    assert artifacts.model_owner(project / "models" / "pump" / "1" / "model.onnx") == "pump.toml"
    pipeline.run_train(mine, project, progress=False)  # the same config may run again
    other = config_file(project, "other.toml", "pump", project / "pump.csv")
    with pytest.raises(NameTaken) as taken:
        pipeline.run_train(other, project, progress=False)
    assert any("runs/pump" in item and "pump.toml" in item for item in taken.value.taken)
    assert any("models/pump/1/model.onnx" in item for item in taken.value.taken)
    pipeline.run_all(other, project, progress=False, force=True)  # unless told to: then all of it is theirs
    assert artifacts.model_owner(project / "models" / "pump" / "1" / "model.onnx") == "other.toml"
    artifacts.claim(other, project)  # no longer taken for them


def test_export_refuses_an_evaluation_of_another_checkpoint(project: Path) -> None:
    config = config_file(project, "pump.toml", "pump", project / "pump.csv")
    pipeline.run_train(config, project, progress=False)
    with pytest.raises(FileNotFoundError, match="run `gatecast evaluate"):
        pipeline.run_export(config, project)
    pipeline.run_evaluate(config, project)
    saved = (project / "runs" / "pump" / "evaluation.json").read_text()
    pipeline.run_train(config, project, progress=False)  # a new checkpoint: the old evaluation is dropped
    assert not (project / "runs" / "pump" / "evaluation.json").exists()
    (project / "runs" / "pump" / "evaluation.json").write_text(saved)  # put back by hand: it is stale
    import torch

    ckpt = torch.load(project / "runs" / "pump" / "checkpoint.pt", weights_only=True)
    first = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][first] = ckpt["state_dict"][first] + 1.0
    torch.save(ckpt, project / "runs" / "pump" / "checkpoint.pt")
    with pytest.raises(StaleEvaluation, match="computed for another checkpoint"):
        pipeline.run_export(config, project)


def test_init_writes_every_key_with_freq_and_season_from_the_data(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    path = write_config("pump-1", Path("pump.csv"), project)
    text = path.read_text()
    config = RunConfig.load(path)
    assert (config.freq, config.season, config.model.horizon, config.model.interval_lag) == ("h", 24, 24, 24)
    assert config.model.input_window == (672 - 24) // 4  # a week (168) shrunk to fit 672 training points
    from training.config import keys_table

    for key, _, meaning in keys_table():
        assert meaning in text, key
    with pytest.raises(FileExistsError):
        write_config("pump-1", Path("pump.csv"), project)
    with pytest.raises(ValueError, match="the name 'vix-gru' is taken"):
        write_config("vix-gru", Path("pump.csv"), project)
    with pytest.raises(ValueError, match="is not valid"):
        write_config("../escape", Path("pump.csv"), project)


def test_init_names_extra_columns_and_sizes_to_short_weekly_series(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Competition-style weekly data (40 to 90 points a series) with a promotion flag, a temperature and a text
    column: no season or horizon longer than the series allow, the columns named with a guessed role and proposed
    as covariates, commented out, and every docs link of the file present in the checkout."""
    monkeypatch.chdir(project)
    rng = np.random.default_rng(0)
    rows = []
    for k, n in enumerate((40, 65, 90)):
        ds = pd.date_range("2020-01-05", periods=n, freq="W-SUN")
        rows.append(
            pd.DataFrame(
                {
                    "unique_id": f"store-{k}",
                    "ds": ds,
                    "y": 100 + rng.normal(0, 5, n).cumsum(),
                    "promo": rng.random(n) > 0.8,
                    "temperature": rng.normal(15, 5, n),
                    "region": "north",
                }
            )
        )
    pd.concat(rows).assign(promo=lambda f: f["promo"].astype(int)).to_csv("weekly.csv", index=False)
    path = write_config("weekly", Path("weekly.csv"), project)
    text = path.read_text()
    config = RunConfig.load(path)
    shortest = int(40 * 0.7)  # the default split keeps 70% of each series for training
    assert config.freq == "W-SUN" and config.season == 1  # 52 is longer than half of 28 training points
    assert config.model.horizon <= shortest // 6 and config.model.input_window + config.model.horizon <= shortest
    assert "promo (future), temperature (past), region (not numbers: cannot be a covariate)" in text
    assert '# future_covariates = ["promo"]  # found in weekly.csv' in text
    assert '# past_covariates = ["temperature"]  # found in weekly.csv' in text
    assert config.model.future_covariates == [] and config.model.past_covariates == []  # proposed, not used
    for link in re.findall(r"docs/[\w./-]+\.md", text):
        assert (ROOT / link).exists(), link


def test_training_that_stops_while_improving_says_so(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = config_file(project, "pump.toml", "pump", project / "pump.csv", train={"epochs": 1, "batch_size": 64})
    with caplog.at_level(logging.WARNING, logger="gatecast.train"):
        pipeline.run_train(config, project, progress=False)
    assert any("the epoch cap (1) stopped training" in r.getMessage() for r in caplog.records)
    pipeline.run_evaluate(config, project)
    report = (project / "reports" / "pump" / "report.md").read_text()
    assert "the epoch cap stopped it while validation was still improving" in report


def test_the_commands_end_with_a_message_not_a_traceback(project: Path) -> None:
    copy = config_file(project, "my.toml", "vix-gru", project / "pump.csv")
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "train", str(Path(copy.source)), "--root", str(project), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "gatecast train: the name 'vix-gru' is taken" in done.stderr and "Traceback" not in done.stderr
    assert "--force" in done.stderr


def test_quiet_leaves_warnings_and_errors_only(project: Path) -> None:
    config = config_file(project, "pump.toml", "pump", project / "pump.csv")
    for step in ("train", "evaluate", "export"):
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", step, str(Path(config.source)), "--root", str(project), "--quiet"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        assert all(" WARNING " in line or " ERROR " in line for line in lines), (step, lines)
    assert (project / "models" / "pump" / "1" / "model.onnx").exists()


def test_a_model_file_that_records_no_config_is_protected_too(project: Path) -> None:
    """Models from elsewhere (older exports, copied files) have no owner: they are taken as well."""
    import onnx

    path = project / "models" / "vix-gru" / "1" / "model.onnx"
    proto = onnx.load(str(path))
    kept = [p for p in proto.metadata_props if p.key != artifacts.CONFIG_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, str(path))
    copy = config_file(project, "my.toml", "vix-gru", project / "pump.csv")
    with pytest.raises(NameTaken, match=r"models/vix-gru/1/model.onnx \(which records no config"):
        artifacts.claim(copy, project)
