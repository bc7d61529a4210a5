"""Fine-tuning a model with a quantile head (the base model, training.patch_model) on a user's series: the same
contract as training.finetune (warm start from the checkpoint, N steps, the weights with the lowest held-out loss
kept, the base's included; depth 1-5 from the output inwards; published in one rename), with the base's own loss.
More: docs/design.md#trainingfinetune_base.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contract import jobs
from contract.card import ModelCard
from training import quantile_spread
from training.export import attach_metadata, weights_sha256
from training.patch_model import PatchConfig, PatchForecaster
from training.pretrain import PretrainConfig, build_card, export, loss_of, validate_export

HOLDOUT_FRACTION = 0.2
LEARNING_RATE = 3e-4
BATCH_SIZE = 32
CHECK_EVERY = 10
MAX_HELDOUT_WINDOWS = 256
MAX_SPREAD_WINDOWS = 1024  # held-out windows the quantile spread is fitted on (more than early stopping needs)


def load_base(checkpoint: Path) -> PatchForecaster:
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = PatchForecaster(PatchConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def save_base(model: PatchForecaster, path: Path) -> None:
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict()}, path)


def groups(model: PatchForecaster) -> list[list[torch.nn.Parameter]]:
    """From the output inwards: the head, each recurrent layer from the top, the patch embedding."""
    out = [[*model.head_mid.parameters(), *model.head_out.parameters()]]
    for layer in reversed(range(model.config.num_layers)):
        out.append([p for n, p in model.rnn.named_parameters() if n.endswith(f"_l{layer}")])
    out.append([*model.embed_in.parameters(), *model.embed_mid.parameters(), *model.embed_skip.parameters()])
    return out


def freeze_to_depth(model: PatchForecaster, depth: int) -> int:
    return train_nearest(model, groups(model), depth)


def train_nearest(model: torch.nn.Module, all_groups: list[list[torch.nn.Parameter]], depth: int) -> int:
    """Train the ceil(depth x groups / 5) groups nearest the output (ordered outputs first), freeze the rest; return
    how many parameters train."""
    for p in model.parameters():
        p.requires_grad_(False)
    chosen = all_groups[: max(1, math.ceil(depth * len(all_groups) / 5))]
    for group in chosen:
        for p in group:
            p.requires_grad_(True)
    return sum(p.numel() for g in chosen for p in g)


def origins(
    series: list[np.ndarray], min_context: int
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """(series, origin, target end) for training (targets end at the held-out tail) and for the tail."""
    train, tail = [], []
    for i, v in enumerate(series):
        n = len(v)
        cut = n - max(1, round(HOLDOUT_FRACTION * n))
        train += [(i, o, cut) for o in range(min_context, cut)]
        tail += [(i, o, n) for o in range(max(cut, min_context), n)]
    return train, tail


def batch(
    series: list[np.ndarray], picks: list[tuple[int, int, int]], cfg: PatchConfig, scored: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Contexts (left-padded with NaN) and targets; with `scored`, the targets beyond that step are NaN (no loss)."""
    width = max(min(o, cfg.input_length) for _, o, _ in picks)
    x = np.full((len(picks), width), np.nan, np.float32)
    y = np.full((len(picks), cfg.horizon), np.nan, np.float32)
    for row, (i, o, end) in enumerate(picks):
        context = series[i][max(0, o - cfg.input_length) : o]
        x[row, width - len(context) :] = context
        target = series[i][o : min(end, o + (scored or cfg.horizon))]
        y[row, : len(target)] = target
    return torch.from_numpy(x), torch.from_numpy(y)


def finetune(
    base_card: ModelCard,
    checkpoint: Path,
    series: list[np.ndarray],
    steps: int,
    depth: int,
    seed: int,
    report: Callable[[dict[str, Any]], None],
    cancelled: Callable[[], bool],
    lr: float = LEARNING_RATE,
    scored: int | None = None,
) -> tuple[PatchForecaster, dict[str, Any]]:
    """The fine-tuned model and what the job's record keeps; raises ValueError naming what to change. With `scored`,
    the loss (training and held out) reads the first `scored` steps of the horizon only."""
    started = time.perf_counter()
    model = load_base(checkpoint)
    if weights_sha256(model) != base_card.sha256:
        raise ValueError(f"the checkpoint of {base_card.name} is not the one its model file was exported from")
    cfg = model.config
    train_at, tail_at = origins(series, cfg.min_context)
    if not train_at or not tail_at:
        shortest = cfg.min_context + 2
        raise ValueError(f"fine-tuning {base_card.name} needs a series of at least {max(shortest, 10)} values")
    rng = np.random.default_rng(seed)
    if len(tail_at) > MAX_HELDOUT_WINDOWS:
        tail_at = [tail_at[k] for k in np.sort(rng.choice(len(tail_at), MAX_HELDOUT_WINDOWS, replace=False))]
    torch.manual_seed(seed)
    levels = torch.tensor(cfg.quantile_levels)
    xh, yh = batch(series, tail_at, cfg, scored)

    scales = np.asarray([max(float(np.nanmean(np.abs(np.diff(series[i])))), 1e-8) for i, _, _ in tail_at])

    def held_out() -> float:
        model.eval()
        with torch.no_grad():
            return float(loss_of(model, xh, yh, levels))

    def tail_mase() -> float:
        with torch.no_grad():
            median = model(xh)[0].numpy()
        y = yh.numpy()
        ok = np.isfinite(y)
        err = np.where(ok, np.abs(median - np.nan_to_num(y)), 0).sum(1) / ok.sum(1).clip(1)
        return float(np.mean(err / scales))

    trained = freeze_to_depth(model, depth)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    base_loss, mase_before = held_out(), tail_mase()
    best = (base_loss, 0, {k: v.clone() for k, v in model.state_dict().items()})
    for step in range(1, steps + 1):
        model.train()
        picks = [train_at[k] for k in rng.integers(0, len(train_at), min(BATCH_SIZE, len(train_at)))]
        x, y = batch(series, picks, cfg, scored)
        loss = loss_of(model, x, y, levels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % CHECK_EVERY == 0 or step == steps:
            held = held_out()
            if held < best[0]:
                best = (held, step, {k: v.clone() for k, v in model.state_dict().items()})
            report(
                {
                    "step": step,
                    "steps": steps,
                    "loss": float(loss.detach()),
                    "heldout_loss": held,
                    "best_step": best[1],
                    "seconds": round(time.perf_counter() - started, 2),
                }
            )
            if cancelled():
                raise jobs.Cancelled()
    model.load_state_dict(best[2])
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return model, {
        "base_model": f"{base_card.name}@{base_card.version}",
        "steps": steps,
        "best_step": best[1],
        "depth": depth,
        "lr": lr,
        "loss": "pinball" if scored is None else f"pinball on the first {scored} steps",
        "trained_parameters": trained,
        "training_windows": len(train_at),
        "heldout_windows": len(tail_at),
        "heldout_loss_before": base_loss,
        "heldout_loss_after": best[0],
        "heldout_mase_before": mase_before,
        "heldout_mase_after": tail_mase(),
        "intervals": "the quantile head's, fine-tuned with it",
    }


def spread_on_tail(model: PatchForecaster, series: list[np.ndarray], seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Factors on the quantile head's distances from its median (training.quantile_spread) fitted on the held-out
    tail, and the coverage there before and after them. A candidate measured by bench.finetune_validation; it did
    not win there, so fine-tuning jobs do not apply it."""
    cfg = model.config
    _, tail_at = origins(series, cfg.min_context)
    rng = np.random.default_rng(seed + 1)
    if len(tail_at) > MAX_SPREAD_WINDOWS:
        tail_at = [tail_at[k] for k in np.sort(rng.choice(len(tail_at), MAX_SPREAD_WINDOWS, replace=False))]
    medians, heads, targets = [], [], []
    with torch.no_grad():
        for start in range(0, len(tail_at), 256):
            x, y = batch(series, tail_at[start : start + 256], cfg)
            median, _, quantiles = model(x)
            medians.append(median.numpy())
            heads.append(quantiles.numpy())
            targets.append(y.numpy())
    median, head, target = np.concatenate(medians), np.concatenate(heads), np.concatenate(targets)
    levels = list(cfg.quantile_levels)
    factors = quantile_spread.fit(median, head, target, levels, cfg.median_index)
    spread = quantile_spread.spread(median, head, factors, cfg.median_index)
    return factors, {
        "windows": len(tail_at),
        "coverage_before": quantile_spread.coverage(head, target, levels),
        "coverage_after": quantile_spread.coverage(spread, target, levels),
    }


def export_finetuned(
    model: PatchForecaster,
    base_card: ModelCard,
    name: str,
    summary: dict[str, Any],
    seed: int,
    version_dir: Path,
    extra: dict[str, str],
    spread: np.ndarray | None = None,
) -> ModelCard:
    """The fine-tuned model's file and card (the base's conformal table and frequency), checked against PyTorch; with
    `spread` (H, Q), its quantiles spread by those factors inside the graph (training.quantile_spread)."""
    path = version_dir / "model.onnx"
    served = model if spread is None else quantile_spread.Spread(model, spread)
    export(served, path)  # type: ignore[arg-type]
    validate_export(served, path)  # type: ignore[arg-type]
    if spread is not None:
        summary = {
            **summary,
            "intervals": "the quantile head's, fine-tuned with it, its distances from the median scaled per step and "
            "level by factors fitted on other windows",
        }
        extra = {
            **extra,
            "quantile_spread": f"{spread.shape[0]} steps x {spread.shape[1]} levels, factors "
            f"{float(spread.min()):.3f} to {float(spread.max()):.3f} (in the graph)",
        }
    cfg = PretrainConfig(name=name, seed=seed, model=model.config)
    report = {"best": {}, "parameters": sum(p.numel() for p in model.parameters())}
    card = build_card(model, cfg, base_card.conformal, report)
    card = ModelCard(
        **{
            **card.__dict__,
            "version": "1",
            "freq": base_card.freq,
            "season": base_card.season,
            "dataset": {"name": "fine-tuning series", "base": summary["base_model"]},
            "metrics": {"finetune": summary},
            "extra": {**card.extra, **extra},
        }
    )
    attach_metadata(path, card)
    save_base(model, version_dir / "checkpoint.pt")
    return card
