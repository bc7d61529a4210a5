"""Fine-tuning a served model on a user's series: warm start from its checkpoint, N optimizer steps on windows of the
series sent, intervals recalibrated on their held-out tail, exported and validated like any run, and renamed into
the model repository in one step. More: docs/design.md#trainingfinetune.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from contract import generation, jobs
from contract.card import ModelCard
from training import finetune_base
from training.conformal import calibrate
from training.ensemble import AnyForecaster, Ensemble
from training.evaluate import predict
from training.export import attach_metadata, build_card, export_onnx, validate, weights_sha256
from training.model import Forecaster
from training.train import WindowSet, denormals_flushed, l1_loss, load_checkpoint, seed_everything

log = logging.getLogger("gatecast.finetune")

# TimeGPT's loss names -> gatecast's training losses (training.config.LOSSES); the others are refused by name.
LOSSES = {"default": None, "mae": "window"}  # None: the model's own (log for a log model, else window)
MIN_CALIBRATION_WINDOWS = 20
HOLDOUT_FRACTION = 0.2
LEARNING_RATE = 1e-3
BATCH_SIZE = 64
MAX_TRAINING_WINDOWS = 20_000
MAX_HELDOUT_WINDOWS = 5_000
CHECK_EVERY = 10  # steps between checks of the held-out tail (and of a cancel)
CHECKPOINT_FILE = "checkpoint.pt"


class FinetuneError(ValueError):
    """The request cannot be fine-tuned as sent; the message says what to change."""


@dataclass
class FinetuneSpec:
    base_dir: Path  # <repository>/<name>/<version>/ of the base model
    output_id: str
    series: list[np.ndarray]
    steps: int
    depth: int
    loss: str
    seed: int = 0
    created_by: str = "anonymous"
    # A quantile model's factors on its quantiles' distances from the median, per step and level, fitted on windows
    # outside the series (training.quantile_spread; bench.gifteval fits them on validation windows); None: as trained.
    spread: np.ndarray | None = None


def checkpoint_for(base_dir: Path, runs_dir: Path | None) -> Path:
    """The base model's checkpoint: beside its model file (fine-tuned models keep theirs there), else the run's."""
    beside = base_dir / CHECKPOINT_FILE
    if beside.exists():
        return beside
    name = base_dir.parent.name
    run = (runs_dir or base_dir.parent.parent.parent / "runs") / name / CHECKPOINT_FILE
    if run.exists():
        return run
    raise FinetuneError(
        f"model {name!r} has no checkpoint to fine-tune from ({beside} or {run}): fine-tuning needs the PyTorch "
        "weights the model was exported from; retrain it with gatecast pipeline, or set GATECAST_RUNS_DIR"
    )


def read_card(model_file: Path) -> ModelCard:
    props = {p.key: p.value for p in onnx.load(str(model_file), load_external_data=False).metadata_props}
    return ModelCard.from_props(props)


def trainable_groups(model: AnyForecaster) -> list[list[torch.nn.Parameter]]:
    """Parameter groups from the output inwards: every member's head, then recurrent layer L-1 ... 0."""
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    groups: list[list[torch.nn.Parameter]] = [[p for m in members for p in m.head.parameters()]]
    for layer in reversed(range(max(m.config.num_layers for m in members))):
        groups.append([p for m in members for n, p in m.rnn.named_parameters() if n.endswith(f"_l{layer}")])
    return [g for g in groups if g]


def freeze_to_depth(model: AnyForecaster, depth: int) -> int:
    """Train the ceil(depth x groups / 5) groups nearest the output; return how many parameters train."""
    return finetune_base.train_nearest(model, trainable_groups(model), depth)


def holdout_windows(
    series: list[np.ndarray], window: int, horizon: int, seed: int = 0
) -> tuple[WindowSet, WindowSet, np.ndarray]:
    """Training windows (targets end before the tail), tail windows, and each tail window's series index. At most
    MAX_TRAINING_WINDOWS and MAX_HELDOUT_WINDOWS, drawn evenly at random: steps x batch windows are all that
    training reads, and a long upload must not become gigabytes of copies."""
    train_at, tail_at = [], []  # (series, origin)
    for i, values in enumerate(series):
        origins = np.arange(window, len(values) - horizon + 1)
        if len(origins) == 0:
            continue
        held = max(1, round(HOLDOUT_FRACTION * len(origins)))
        first_held = origins[-held]
        tail_at += [(i, int(t)) for t in origins[-held:]]
        train_at += [(i, int(t)) for t in origins[origins + horizon <= first_held]]
    rng = np.random.default_rng(seed)
    train_at = _at_most(train_at, MAX_TRAINING_WINDOWS, rng)
    tail_at = _at_most(tail_at, MAX_HELDOUT_WINDOWS, rng)

    def stack(at: list[tuple[int, int]]) -> WindowSet:
        x = np.asarray([series[i][t - window : t] for i, t in at], dtype=np.float32).reshape(-1, window)
        y = np.asarray([series[i][t : t + horizon] for i, t in at], dtype=np.float32).reshape(-1, horizon)
        return WindowSet(x, y)

    return stack(train_at), stack(tail_at), np.asarray([i for i, _ in tail_at], dtype=np.int64)


def _at_most(at: list[tuple[int, int]], limit: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    if len(at) <= limit:
        return at
    keep = np.sort(rng.choice(len(at), size=limit, replace=False))
    return [at[k] for k in keep]


def window_length(card: ModelCard, series: list[np.ndarray]) -> int:
    """The trained window where the longest series allows training and tail windows of it, else shorter."""
    longest = max(len(s) for s in series)
    room = longest - 2 * card.horizon - 1  # a training window's target must end before a held-out one starts
    if room < card.min_window:
        raise FinetuneError(
            f"the longest series has {longest} values; fine-tuning {card.name} needs at least "
            f"{card.min_window + 2 * card.horizon + 1} (its shortest window, {card.min_window}, plus two horizons of "
            f"{card.horizon}: one to train on, one held out to check and calibrate)"
        )
    return min(card.trained_window, room)


def mase(model: AnyForecaster, tail: WindowSet, index: np.ndarray, scales: np.ndarray) -> float:
    forecasts, _ = predict(model, tail.x)
    return float(np.mean(np.mean(np.abs(tail.y - forecasts), axis=1) / scales[index]))


@torch.no_grad()
def heldout_loss(model: AnyForecaster, x: torch.Tensor, y: torch.Tensor, kind: str) -> float:
    model.eval()
    return float(step_loss(model, x, y, kind))


def _weights(model: AnyForecaster) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def step_loss(model: AnyForecaster, x: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """The training loss, per member for an ensemble (each reads its own last input_window steps)."""
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    losses = [l1_loss(m, x[:, -m.config.input_window :], y, kind=kind) for m in members if isinstance(m, Forecaster)]
    return torch.stack(losses).mean()


def finetune(
    spec: FinetuneSpec,
    repository: Path,
    runs_dir: Path | None = None,
    report: Callable[[dict[str, Any]], None] = lambda progress: None,
    cancelled: Callable[[], bool] = lambda: False,
    staging: Path | None = None,
) -> dict[str, Any]:
    """Fine-tune, export and publish `<repository>/<output_id>/1/`; return what the job's record keeps."""
    started = time.perf_counter()
    base_card = read_card(spec.base_dir / "model.onnx")
    if base_card.quantile_levels:
        return _finetune_quantile_model(spec, base_card, repository, runs_dir, report, cancelled, staging, started)
    if not base_card.covariates.empty:
        raise FinetuneError(f"{base_card.name} reads covariates; fine-tuning takes models without covariates")
    if spec.loss not in LOSSES:
        raise FinetuneError(
            f"finetune_loss {spec.loss!r} is not a loss gatecast trains with: use one of {sorted(LOSSES)} "
            "('default': the model's own training loss; 'mae': L1 on each window's scale)"
        )
    model, _ = load_checkpoint(checkpoint_for(spec.base_dir, runs_dir))
    if weights_sha256(model) != base_card.sha256:
        raise FinetuneError(
            f"the checkpoint of {base_card.name} is not the one its model file was exported from (sha256 differs): "
            "re-export the model, or retrain it"
        )
    kind = LOSSES[spec.loss] or ("log" if base_card.transform == "log" else "window")
    if base_card.transform == "log" and any(np.any(s <= 0) for s in spec.series):
        raise FinetuneError(f"{base_card.name} forecasts log values: every value must be > 0")
    horizon, season = base_card.horizon, max(1, base_card.season)
    window = window_length(base_card, spec.series)
    train_set, tail, tail_index = holdout_windows(spec.series, window, horizon, spec.seed)
    if len(train_set) == 0:
        raise FinetuneError("no series is long enough for a training window before its held-out tail")
    scales = np.array([_scale(s, season) for s in spec.series])
    before = mase(model, tail, tail_index, scales)

    generator = seed_everything(spec.seed)
    trained = freeze_to_depth(model, spec.depth)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    xt, yt = torch.from_numpy(train_set.x), torch.from_numpy(train_set.y)
    xh, yh = torch.from_numpy(tail.x), torch.from_numpy(tail.y)
    batch = min(BATCH_SIZE, len(xt))
    base_loss = heldout_loss(model, xh, yh, kind)
    best = (base_loss, 0, _weights(model))  # the base weights are a candidate too
    with denormals_flushed():
        for step in range(1, spec.steps + 1):
            model.train()
            idx = torch.randint(0, len(xt), (batch,), generator=generator)
            loss = step_loss(model, xt[idx], yt[idx], kind)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if step % CHECK_EVERY == 0 or step == spec.steps:
                held = heldout_loss(model, xh, yh, kind)
                if held < best[0]:
                    best = (held, step, _weights(model))
                elapsed = time.perf_counter() - started
                report(
                    {
                        "step": step,
                        "steps": spec.steps,
                        "loss": float(loss.detach()),
                        "heldout_loss": held,
                        "best_step": best[1],
                        "seconds": round(elapsed, 2),
                    }
                )
                if cancelled():
                    raise jobs.Cancelled()
    model.load_state_dict(best[2])
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    after = mase(model, tail, tail_index, scales)

    forecasts, unit = predict(model, tail.x)
    recalibrated = len(tail) >= MIN_CALIBRATION_WINDOWS
    conformal = calibrate(tail.y, forecasts, unit, tail.x) if recalibrated else base_card.conformal
    summary = {
        "base_model": f"{base_card.name}@{base_card.version}",
        "steps": spec.steps,
        "best_step": best[1],
        "depth": spec.depth,
        "loss": spec.loss,
        "trained_parameters": trained,
        "training_windows": len(train_set),
        "heldout_windows": len(tail),
        "heldout_loss_before": base_loss,
        "heldout_loss_after": best[0],
        "heldout_mase_before": before,
        "heldout_mase_after": after,
        "intervals": f"recalibrated on {len(tail)} held-out windows"
        if recalibrated
        else f"the base model's ({len(tail)} held-out windows are fewer than {MIN_CALIBRATION_WINDOWS})",
    }
    card = build_card(
        model,
        name=spec.output_id,
        version="1",
        freq=base_card.freq,
        season=base_card.season,
        target=base_card.target,
        dataset={"name": "fine-tuning series", "series": len(spec.series), "base": summary["base_model"]},
        cal=conformal,
        metrics={"finetune": summary},
        seed=spec.seed,
    )
    card.extra.update(
        jobs.finetune_props(base_card.name, base_card.version, spec.created_by, spec.steps, spec.depth, spec.loss)
    )
    publish(model, card, tail, repository, staging or repository / jobs.STAGING_DIR / spec.output_id)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    log.info(
        "%s: fine-tuned from %s in %d steps (%.1f s); held-out MASE %.4f -> %.4f",
        spec.output_id,
        summary["base_model"],
        spec.steps,
        summary["seconds"],
        before,
        after,
    )
    return {"model": spec.output_id, "version": "1", **summary}


def _finetune_quantile_model(
    spec: FinetuneSpec,
    base_card: ModelCard,
    repository: Path,
    runs_dir: Path | None,
    report: Callable[[dict[str, Any]], None],
    cancelled: Callable[[], bool],
    staging: Path | None,
    started: float,
) -> dict[str, Any]:
    """A model with a quantile head (the base model): its own loss, exported by training.finetune_base."""
    if spec.loss != "default":
        raise FinetuneError(
            f"finetune_loss {spec.loss!r} trains a point forecast; {base_card.name} trains its quantile head with "
            "pinball loss: use 'default'"
        )
    checkpoint = checkpoint_for(spec.base_dir, runs_dir)
    try:
        model, summary = finetune_base.finetune(
            base_card, checkpoint, spec.series, spec.steps, spec.depth, spec.seed, report, cancelled
        )
    except ValueError as exc:
        raise FinetuneError(str(exc)) from exc
    staging = staging or repository / jobs.STAGING_DIR / spec.output_id
    shutil.rmtree(staging, ignore_errors=True)
    extra = jobs.finetune_props(base_card.name, base_card.version, spec.created_by, spec.steps, spec.depth, spec.loss)
    finetune_base.export_finetuned(
        model, base_card, spec.output_id, summary, spec.seed, staging / "1", extra, spec.spread
    )
    target = repository / spec.output_id
    if target.exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise FinetuneError(
            f"model {spec.output_id!r} already exists in the repository: choose another output_model_id"
        )
    os.rename(staging, target)
    generation.advance(repository)  # every worker serves it before this call answers
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return {"model": spec.output_id, "version": "1", **summary}


def publish(model: AnyForecaster, card: ModelCard, real: WindowSet, repository: Path, staging: Path) -> None:
    """Export and validate under `staging`, then rename it to <repository>/<name>/ in one step: every reader of
    the repository sees the whole model or none of it."""
    shutil.rmtree(staging, ignore_errors=True)
    version_dir = staging / card.version
    path = version_dir / "model.onnx"
    export_onnx(model, path)
    attach_metadata(path, card)
    validate(model, path, real if len(real) else None)
    save_weights(model, version_dir / CHECKPOINT_FILE)
    target = repository / card.name
    if target.exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise FinetuneError(f"model {card.name!r} already exists in the repository: choose another output_model_id")
    os.rename(staging, target)
    generation.advance(repository)  # every worker serves it before this call answers


def save_weights(model: AnyForecaster, path: Path) -> None:
    """A checkpoint training.train.load_checkpoint reads, so a fine-tuned model can be fine-tuned again."""
    ckpt: dict[str, Any] = {"state_dict": model.state_dict(), "model_config": model.config.to_dict()}
    if isinstance(model, Ensemble):
        ckpt["members"] = [{"model_config": m.config.to_dict()} for m in model.members]
        ckpt["naive_lag"] = model.naive_lag
    torch.save(ckpt, path)


def _scale(values: np.ndarray, season: int) -> float:
    """In-sample seasonal-naive MAE of the series (the MASE denominator), floored so a flat series counts."""
    lag = season if len(values) > 2 * season else 1
    diffs = np.abs(values[lag:] - values[:-lag])
    return max(float(np.mean(diffs)) if len(diffs) else 1.0, 1e-8)


def load_series(path: Path) -> list[np.ndarray]:
    """The series the server wrote for a fine-tuning job (an .npz of `y` and `sizes`)."""
    with np.load(path) as data:
        y, sizes = data["y"].astype(np.float64), data["sizes"].astype(np.int64)
    return list(np.split(y, np.cumsum(sizes)[:-1]))


def spec_from_job(record: jobs.JobRecord, repository: Path) -> FinetuneSpec:
    s = record.spec
    return FinetuneSpec(
        base_dir=repository / s["base_model"] / s["base_version"],
        output_id=s["output_id"],
        series=load_series(jobs.job_dir(repository, record.id) / "series.npz"),
        steps=int(s["steps"]),
        depth=int(s["depth"]),
        loss=str(s["loss"]),
        seed=int(s.get("seed", 0)),
        created_by=str(s.get("created_by", "anonymous")),
    )
