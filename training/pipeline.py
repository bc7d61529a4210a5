"""train -> evaluate -> export for one config; the `gatecast train|evaluate|export` commands call these.

Each step first claims the run's name (training.artifacts): nothing another run produced is overwritten
without --force. Export also checks that the evaluation it embeds was computed for the checkpoint it exports.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from contract.card import Conformal, ModelCard
from training import artifacts, data
from training.config import RunConfig
from training.ensemble import AnyForecaster
from training.evaluate import evaluate, write_report
from training.export import ExportSpec, attach_metadata, build_card, export_onnx, validate, weights_sha256
from training.train import EpochHook, load_checkpoint, save_checkpoint, split_windows, train

log = logging.getLogger("gatecast.pipeline")


def run_train(
    config: RunConfig,
    root: Path = Path("."),
    progress: bool = True,
    force: bool = False,
    on_epoch: EpochHook | None = None,
) -> Path:
    p = artifacts.claim(config, root, force)
    dataset = data.load_for(config)
    result = train(config, dataset, progress=progress, on_epoch=on_epoch)
    save_checkpoint(result, config, p.checkpoint)
    artifacts.record(config, root)
    p.evaluation.unlink(missing_ok=True)  # an evaluation of the previous checkpoint no longer applies
    log.info(
        "%s: best epoch %d, val loss %.4f, %.0fs -> %s",
        config.name,
        result.best_epoch,
        result.best_val_loss,
        result.seconds,
        p.checkpoint,
    )
    return p.checkpoint


def run_evaluate(config: RunConfig, root: Path = Path("."), force: bool = False) -> dict[str, Any]:
    p = artifacts.claim(config, root, force)
    if not p.checkpoint.exists():
        raise FileNotFoundError(f"{p.checkpoint} does not exist: run `gatecast train {config.source}` first")
    model, ckpt = load_checkpoint(p.checkpoint, config.model)
    dataset = data.load_for(config)
    result, cal, test = evaluate(model, config, dataset)
    history = ckpt["history"]
    train_info = {
        "best_epoch": ckpt["best_epoch"],
        "best_val_loss": ckpt["best_val_loss"],
        "epochs_run": len(history),
        "seconds": ckpt["seconds"],
        "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])),
        "hit_cap": bool(ckpt.get("hit_cap", False)),
    }
    if "members" in ckpt:  # an ensemble: each member's record; `seconds` is the wall clock of them all
        train_info["members"] = [
            {
                "input_window": m["model_config"]["input_window"],
                "best_epoch": m["best_epoch"],
                "epochs_run": sum(1 for h in history if h.get("member") == k),
                "seconds": m["seconds"],
            }
            for k, m in enumerate(ckpt["members"])
        ]
    write_report(config, dataset, result, test, cal, train_info, p.report)
    evaluation = {"checkpoint_sha256": weights_sha256(model), "evaluation": result, "conformal": cal.__dict__}
    p.evaluation.write_text(json.dumps(evaluation))
    artifacts.record(config, root)
    log.info("%s: report -> %s", config.name, p.report / "report.md")
    return result


def run_export(config: RunConfig, root: Path = Path("."), spec: ExportSpec | None = None, force: bool = False) -> Path:
    spec = spec or ExportSpec()
    p = artifacts.claim(config, root, force)
    if not p.checkpoint.exists():
        raise FileNotFoundError(f"{p.checkpoint} does not exist: run `gatecast train {config.source}` first")
    model, _ = load_checkpoint(p.checkpoint, config.model)
    if not p.evaluation.exists():
        raise FileNotFoundError(f"{p.evaluation} does not exist: run `gatecast evaluate {config.source}` first")
    saved = json.loads(p.evaluation.read_text())
    checkpoint = weights_sha256(model)
    if saved.get("checkpoint_sha256") != checkpoint:
        raise artifacts.StaleEvaluation(
            f"{p.evaluation} was computed for another checkpoint than {p.checkpoint} "
            f"({str(saved.get('checkpoint_sha256'))[:12]} vs {checkpoint[:12]}): run `gatecast evaluate "
            f"{config.source}` again, then export"
        )
    dataset = data.load_for(config)
    mc = model.config
    real = split_windows(dataset, "test", 2 * mc.input_window, mc.horizon, stride=7, config=mc)
    if len(real) == 0:
        real = split_windows(dataset, "test", mc.input_window, mc.horizon, stride=7, config=mc)
    card = build_card(
        model,
        name=config.name,
        version=config.version,
        freq=dataset.freq,
        season=dataset.season,
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
        config=artifacts.config_id(config, root),
    )
    export_onnx(model, p.model, spec)
    attach_metadata(p.model, card)
    checks = validate(model, p.model, real, spec)
    log.info(
        "%s: exported %s (%.0f KB), %d parity checks passed",
        config.name,
        p.model,
        p.model.stat().st_size / 1024,
        checks,
    )
    return p.model


def run_all(
    config: RunConfig,
    root: Path = Path("."),
    progress: bool = True,
    force: bool = False,
    on_epoch: EpochHook | None = None,
) -> Path:
    run_train(config, root, progress, force, on_epoch)
    run_evaluate(config, root, force)
    return run_export(config, root, force=force)


def run_summary(config: RunConfig, root: Path = Path(".")) -> str:
    """The closing lines of a finished run (training.summary), from its report and its data."""
    from training.summary import summary

    return summary(config, artifacts.paths(config, root), data.load_for(config))


def build_artifact(config: RunConfig, dataset: data.Dataset, path: Path, progress: bool = False) -> dict[str, Any]:
    """Train, evaluate and export in memory (no runs/ or reports/): for tests and quick experiments."""
    result = train(config, dataset, progress=progress)
    evaluation, cal, _ = evaluate(result.model, config, dataset)
    card = export_evaluated(result.model, config, dataset, evaluation, cal, path)
    return {"evaluation": evaluation, "model": result.model, "card": card}


def export_evaluated(
    model: AnyForecaster,
    config: RunConfig,
    dataset: data.Dataset,
    evaluation: dict[str, Any],
    cal: Conformal,
    path: Path,
) -> ModelCard:
    """An evaluated model to `path` (ONNX with its card), checked against PyTorch on test windows; the card."""
    card = build_card(
        model,
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
    export_onnx(model, path)
    attach_metadata(path, card)
    real = split_windows(dataset, "test", config.model.input_window, config.model.horizon, config=config.model)
    validate(model, path, real)
    return card
