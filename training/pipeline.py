"""train -> evaluate -> export for one config; the `gatecast train|evaluate|export` commands call these."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from contract.card import Conformal
from training import data
from training.config import RunConfig
from training.evaluate import evaluate, write_report
from training.export import ExportSpec, attach_metadata, build_card, export_onnx, validate
from training.train import load_checkpoint, save_checkpoint, split_windows, train

log = logging.getLogger("gatecast.pipeline")


def _paths(config: RunConfig, root: Path) -> dict[str, Path]:
    return {
        "checkpoint": root / "runs" / config.name / "checkpoint.pt",
        "evaluation": root / "runs" / config.name / "evaluation.json",
        "report": root / "reports" / config.name,
        "model": root / "models" / config.name / config.version / "model.onnx",
    }


def run_train(config: RunConfig, root: Path = Path("."), progress: bool = True) -> Path:
    dataset = data.load(config.dataset)
    result = train(config, dataset, progress=progress)
    path = _paths(config, root)["checkpoint"]
    save_checkpoint(result, config, path)
    log.info(
        "%s: best epoch %d, val loss %.4f, %.0fs -> %s",
        config.name,
        result.best_epoch,
        result.best_val_loss,
        result.seconds,
        path,
    )
    return path


def run_evaluate(config: RunConfig, root: Path = Path(".")) -> dict[str, Any]:
    paths = _paths(config, root)
    model, ckpt = load_checkpoint(paths["checkpoint"], config.model)
    dataset = data.load(config.dataset)
    result, cal, test = evaluate(model, config, dataset)
    history = ckpt["history"]
    train_info = {
        "best_epoch": ckpt["best_epoch"],
        "best_val_loss": ckpt["best_val_loss"],
        "epochs_run": len(history),
        "seconds": ckpt["seconds"],
        "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])),
    }
    write_report(config, dataset, result, test, cal, train_info, paths["report"])
    paths["evaluation"].write_text(json.dumps({"evaluation": result, "conformal": cal.__dict__}))
    log.info("%s: report -> %s", config.name, paths["report"] / "report.md")
    return result


def run_export(config: RunConfig, root: Path = Path("."), spec: ExportSpec | None = None) -> Path:
    spec = spec or ExportSpec()
    paths = _paths(config, root)
    model, _ = load_checkpoint(paths["checkpoint"], config.model)
    saved = json.loads(paths["evaluation"].read_text())
    dataset = data.load(config.dataset)
    real, _ = split_windows(dataset, "test", 2 * model.config.input_window, 1, stride=7)
    if len(real) == 0:
        real, _ = split_windows(dataset, "test", model.config.input_window, 1, stride=7)
    card = build_card(
        model,
        name=config.name,
        version=config.version,
        freq=config.freq or dataset.freq,
        season=config.season or dataset.season,
        target=dataset.target,
        dataset={
            "name": dataset.name,
            "description": dataset.description,
            "split": "train/val/test",
            "series": len(dataset.series),
        },
        cal=Conformal(**saved["conformal"]),
        metrics=saved["evaluation"],
        seed=config.seed,
        spec=spec,
    )
    path = paths["model"]
    export_onnx(model, path, spec)
    attach_metadata(path, card)
    checks = validate(model, path, real, spec)
    log.info(
        "%s: exported %s (%.0f KB), %d parity checks passed", config.name, path, path.stat().st_size / 1024, checks
    )
    return path


def run_all(config: RunConfig, root: Path = Path("."), progress: bool = True) -> Path:
    run_train(config, root, progress)
    run_evaluate(config, root)
    return run_export(config, root)


def build_artifact(config: RunConfig, dataset: data.Dataset, path: Path, progress: bool = False) -> dict[str, Any]:
    """Train, evaluate and export in memory (no runs/ or reports/): for tests and quick experiments."""
    result = train(config, dataset, progress=progress)
    evaluation, cal, _ = evaluate(result.model, config, dataset)
    card = build_card(
        result.model,
        name=config.name,
        version=config.version,
        freq=config.freq or dataset.freq,
        season=config.season or dataset.season,
        target=dataset.target,
        dataset={"name": dataset.name, "series": len(dataset.series)},
        cal=cal,
        metrics=evaluation,
        seed=config.seed,
    )
    export_onnx(result.model, path)
    attach_metadata(path, card)
    real, _ = split_windows(dataset, "test", config.model.input_window, 1)
    validate(result.model, path, real)
    return {"evaluation": evaluation, "model": result.model, "card": card}
