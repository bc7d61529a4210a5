"""Training: windows from the train split, early stopping on the validation split, best weights kept.

Reads top to bottom: seed, data, model, one visible loop. Deterministic on CPU for a fixed seed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from training.config import RunConfig
from training.data import Dataset, check_covariates, covariate_windows, windows
from training.model import Forecaster, ForecasterConfig

log = logging.getLogger("gatecast.train")


@dataclass
class TrainResult:
    model: Forecaster
    best_epoch: int
    best_val_loss: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class WindowSet:
    """Windows of a split: values (N, T), targets (N, H) and the covariate inputs in graph order."""

    x: np.ndarray
    y: np.ndarray
    covariates: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x)


def split_windows(
    dataset: Dataset, split: str, window: int, horizon: int, stride: int = 1, config: ForecasterConfig | None = None
) -> WindowSet:
    """Windows of every series in `dataset` for `split`, stacked (float32), with the covariates `config`
    declares (none without a config)."""
    cov = config.covariates if config is not None else None
    if cov is not None:
        check_covariates(dataset, cov)
    xs, ys, covs = [], [], []
    for series in dataset.series:
        x, y = windows(series, split, window, horizon, stride)
        xs.append(x)
        ys.append(y)
        if cov is not None:
            covs.append(covariate_windows(series, split, window, horizon, cov, stride))
    extras = [np.concatenate(parts).astype(np.float32) for parts in zip(*covs, strict=True)] if covs else []
    return WindowSet(np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32), extras)


def normalized_l1(model: Forecaster, x: torch.Tensor, y: torch.Tensor, *covariates: torch.Tensor) -> torch.Tensor:
    """L1 on the window-normalised scale, so every series weighs the same whatever its units."""
    pred, loc, scale = model.forward_normalized(x, *covariates)
    return (pred - (y - loc) / scale).abs().mean()


@torch.no_grad()
def evaluate_loss(model: Forecaster, data: WindowSet, batch_size: int, dev: torch.device) -> float:
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(data), batch_size * 4):
        part = slice(i, i + batch_size * 4)
        xb = torch.from_numpy(data.x[part]).to(dev)
        yb = torch.from_numpy(data.y[part]).to(dev)
        covs = [torch.from_numpy(c[part]).to(dev) for c in data.covariates]
        total += float(normalized_l1(model, xb, yb, *covs)) * len(xb)
        count += len(xb)
    return total / max(count, 1)


def train(config: RunConfig, dataset: Dataset, progress: bool = True) -> TrainResult:
    generator = seed_everything(config.seed)
    dev = device()
    mc, tc = config.model, config.train
    train_set = split_windows(dataset, "train", mc.input_window, mc.horizon, tc.train_stride, mc)
    val_set = split_windows(dataset, "val", mc.input_window, mc.horizon, 1, mc)
    if len(train_set) == 0 or len(val_set) == 0:
        raise ValueError(
            f"{config.name}: no training or validation windows (window {mc.input_window}, horizon "
            f"{mc.horizon}); the series are too short for this configuration"
        )
    log.info("%s: %d train windows, %d val windows, device %s", config.name, len(train_set), len(val_set), dev)

    model = Forecaster(mc).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    xt, yt = torch.from_numpy(train_set.x), torch.from_numpy(train_set.y)
    ct = [torch.from_numpy(c) for c in train_set.covariates]
    batches = (len(xt) + tc.batch_size - 1) // tc.batch_size
    if tc.max_batches_per_epoch:
        batches = min(batches, tc.max_batches_per_epoch)

    best = TrainResult(model=model, best_epoch=-1, best_val_loss=float("inf"))
    best_state: dict[str, torch.Tensor] = {}
    started = time.perf_counter()
    with logging_redirect_tqdm():  # log lines print above the progress bar, not through it
        bar = tqdm(range(1, tc.epochs + 1), disable=not progress, desc=config.name, unit="epoch")
        for epoch in bar:
            epoch_start = time.perf_counter()
            model.train()
            order = torch.randperm(len(xt), generator=generator)
            running = 0.0
            for b in range(batches):
                idx = order[b * tc.batch_size : (b + 1) * tc.batch_size]
                loss = normalized_l1(model, xt[idx].to(dev), yt[idx].to(dev), *(c[idx].to(dev) for c in ct))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                optimizer.step()
                running += float(loss.detach())
            train_loss = running / batches
            val_loss = evaluate_loss(model, val_set, tc.batch_size, dev)
            seconds = time.perf_counter() - epoch_start
            best.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "seconds": seconds})
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", s_per_epoch=f"{seconds:.1f}")
            log.info("%s epoch %d: train %.4f val %.4f (%.1fs)", config.name, epoch, train_loss, val_loss, seconds)
            if val_loss < best.best_val_loss:
                best.best_val_loss, best.best_epoch = val_loss, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            elif epoch - best.best_epoch >= tc.patience:
                log.info("%s: early stop at epoch %d (best %d)", config.name, epoch, best.best_epoch)
                break
    model.load_state_dict(best_state)
    model.eval()
    best.seconds = time.perf_counter() - started
    if best.best_epoch == len(best.history):
        log.warning(
            "%s: the best epoch is the last of %d: training stopped while the validation loss was still "
            "improving; raise [train] epochs",
            config.name,
            len(best.history),
        )
    return best


def save_checkpoint(result: TrainResult, config: RunConfig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": result.model.state_dict(),
            "model_config": config.model.to_dict(),
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "history": result.history,
            "seconds": result.seconds,
        },
        path,
    )


def load_checkpoint(path: Path, config: ForecasterConfig | None = None) -> tuple[Forecaster, dict[str, Any]]:
    """Weights from `path` into a model built from `config` (the run's), else from the saved config."""
    # weights_only: a checkpoint is tensors and plain data; nothing is unpickled beyond that.
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = Forecaster(config or ForecasterConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt
