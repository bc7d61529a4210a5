"""The committed `gatecast pipeline` models against the base model fine-tuned on the same data, on each model's own
validation split: issue 45 asks, per model, whether fine-tuning from the base (the new core: patches, instance
normalisation, a quantile head) or the pipeline's own training wins, and to keep what wins.

Per dataset: the base fine-tuned (training.finetune_base, the path a user's fine-tuning job takes; 300 steps,
depth 5, seed 0) on every series' training split, which the pipeline models were fitted on too. The pipeline
models chose their epoch on this validation split (early stopping), which favours them a little here; the
fine-tuning chooses its step on the training split's held-out tail. Then, on the validation windows of each
committed model (its window, horizon and stride 1, so the same origins): the pipeline model's MASE
(training.evaluate's validation verdict, the series' in-sample seasonal-naive scale), and the base's and the
fine-tuned model's, each reading up to its own context before the same origins. The test split is not read.

  python -m bench.committed_validation [--models etth1-gru vix-gru ...] [--steps 300] [--lr 3e-4] [--scored]
  -> docs/benchmarks/committed-validation.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from contract.card import ModelCard
from training import artifacts, finetune_base
from training import data as datasets
from training.config import RunConfig
from training.evaluate import validation_scores
from training.patch_model import PatchForecaster
from training.train import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "models" / "gatecast-base" / "1" / "model.onnx"
CHECKPOINT = ROOT / "runs" / "gatecast-base" / "checkpoint.pt"
COMMITTED = ("etth1-gru", "etth1-lstm", "vix-gru", "vix-lstm", "vix-gru-cov", "m4-hourly-gru")
OUT = ROOT / "docs" / "benchmarks" / "committed-validation.json"


def validation_origins(series: datasets.Series, window: int, horizon: int) -> np.ndarray:
    """The origins training.data.windows takes on the validation split (stride 1): the pipeline model's own."""
    lo, hi = series.split("val")
    return np.arange(max(lo, window), hi - horizon + 1)


@torch.no_grad()
def patch_mase(model: PatchForecaster, dataset: datasets.Dataset, config: RunConfig) -> float:
    """The mean over validation windows of MASE, as training.evaluate.validation_verdict computes it."""
    season, horizon, window = config.season or dataset.season, config.model.horizon, config.model.input_window
    length = model.config.input_length
    errors = []
    for series in dataset.series:
        scale = datasets.mase_scale(series, season)
        for start in range(0, len(origins := validation_origins(series, window, horizon)), 512):
            part = origins[start : start + 512]
            x = np.full((len(part), length), np.nan, np.float32)
            for row, o in enumerate(part):
                context = series.values[max(0, o - length) : o]
                x[row, length - len(context) :] = context
            median = model(torch.from_numpy(x))[0][:, :horizon].double().numpy()
            actual = np.stack([series.values[o : o + horizon] for o in part])
            errors.append(np.mean(np.abs(actual - median), axis=1) / scale)
    return float(np.mean(np.concatenate(errors)))


def compare(names: list[str], steps: int, depth: int, seed: int, lr: float, scored: bool) -> dict[str, Any]:
    """Per model: MASE of the pipeline model, the base and the base fine-tuned with these settings (one fine-tuning
    per dataset and horizon); with `scored`, the fine-tuning's loss reads the model's horizon only."""
    card = ModelCard.from_props(dict(ort.InferenceSession(str(BASE)).get_modelmeta().custom_metadata_map))
    base = finetune_base.load_base(CHECKPOINT)
    configs = {n: RunConfig.load(ROOT / "training" / "configs" / f"{n}.toml") for n in names}
    tuned: dict[tuple[str, int | None], tuple[PatchForecaster, dict[str, Any]]] = {}
    found: dict[str, Any] = {}
    for name, config in configs.items():
        dataset = datasets.load_for(config)
        key = (config.dataset, config.model.horizon if scored else None)
        if key not in tuned:
            started = time.process_time()
            series = [s.values[: s.train_end] for s in dataset.series]
            model, summary = finetune_base.finetune(
                card, CHECKPOINT, series, steps, depth, seed, lambda _: None, lambda: False, lr, key[1]
            )
            summary["cpu_seconds"] = round(time.process_time() - started, 1)
            tuned[key] = (model, summary)
        pipeline_model, _ = load_checkpoint(artifacts.paths(config, ROOT).checkpoint, config.model)
        verdict = validation_scores(pipeline_model, config, dataset)
        run = {"settings": settings(steps, depth, seed, lr, scored), "mase": patch_mase(tuned[key][0], dataset, config)}
        found[name] = {
            "dataset": config.dataset,
            "windows": verdict["windows"],
            "mase": {
                "pipeline": verdict["mase"]["model"],
                "base": patch_mase(base, dataset, config),
                "naive": verdict["mase"]["naive"],
                "seasonal_naive": verdict["mase"]["seasonal_naive"],
            },
            "fine_tuned": [{**run, "fine_tuning": tuned[key][1]}],
        }
        mase = found[name]["mase"]
        print(
            f"{name}: validation MASE pipeline {mase['pipeline']:.3f}  base {mase['base']:.3f}  "
            f"fine-tuned ({run['settings']}) {run['mase']:.3f}  naive {mase['naive']:.3f}",
            flush=True,
        )
    return found


def settings(steps: int, depth: int, seed: int, lr: float, scored: bool) -> str:
    return f"{steps} steps, depth {depth}, lr {lr:g}, seed {seed}" + (", loss on the model's horizon" if scored else "")


def merge(previous: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """Each model's fine-tuning runs across invocations (a rerun with the same settings replaces its run), and the
    winner among the pipeline model, the base and every run."""
    out = dict(previous)
    for name, row in found.items():
        runs = {r["settings"]: r for r in previous.get(name, {}).get("fine_tuned", [])}
        runs.update({r["settings"]: r for r in row["fine_tuned"]})
        out[name] = {**row, "fine_tuned": list(runs.values())}
        scores = {"pipeline": row["mase"]["pipeline"], "base": row["mase"]["base"]}
        scores |= {f"fine-tuned ({r['settings']})": r["mase"] for r in runs.values()}
        out[name]["winner"] = min(scores, key=lambda k: scores[k])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(COMMITTED))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=finetune_base.LEARNING_RATE)
    parser.add_argument("--scored", action="store_true", help="the fine-tuning's loss reads the model's horizon only")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(2)
    found = compare(args.models, args.steps, args.depth, args.seed, args.lr, args.scored)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps(merge(previous, found), indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
