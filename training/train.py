"""Training: windows from the train split, early stopping on the validation split, best weights kept.

Reads top to bottom: seed, data, model, one visible loop. Deterministic on CPU for a fixed seed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from training import baselines
from training.config import RunConfig
from training.console import red
from training.data import Dataset, check_covariates, check_positive, covariate_windows, mase_scale, windows
from training.ensemble import Ensemble, fit_naive_weight
from training.model import Forecaster, ForecasterConfig

log = logging.getLogger("gatecast.train")

# Called after every epoch of a single forecaster with its record (epoch, losses, best epoch, seconds left); a
# training job reports its progress with it and stops by raising from it (contract.jobs.Cancelled).
EpochHook = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    model: Forecaster | Ensemble
    best_epoch: int
    best_val_loss: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    hit_cap: bool = False  # the epoch cap, not validation, ended training
    members: list[TrainResult] = field(default_factory=list)  # an ensemble's, each trained on its own


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


@contextmanager
def denormals_flushed() -> Iterator[None]:
    """Recurrent gradients over long windows decay into denormal floats, which the CPU handles ~5x slower:
    one GRU step on a batch of 336-step windows took 1.20 s with them and 0.24 s flushed to zero. The flag is
    the thread's floating-point mode, so it is set only while training: whatever shares the process afterwards
    (a test run, an evaluation) gets IEEE floats back."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


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


def l1_loss(
    model: Forecaster, x: torch.Tensor, y: torch.Tensor, *covariates: torch.Tensor, kind: str = "window"
) -> torch.Tensor:
    """window: L1 on the window-normalised scale, so every window weighs the same whatever its units and
    spread. log: L1 of the log values (a log model's units), |log f - log y|, the relative error sMAPE counts,
    so a series that swings from 10 to 300 weighs as much per step as a steady one, not less."""
    pred, loc, scale = model.forward_normalized(x, *covariates)
    target = model.to_model_units(y)
    if kind == "log":
        return (pred * scale + loc - target).abs().mean()
    return (pred - (target - loc) / scale).abs().mean()


@torch.no_grad()
def evaluate_loss(model: Forecaster, data: WindowSet, batch_size: int, dev: torch.device, kind: str) -> float:
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(data), batch_size * 4):
        part = slice(i, i + batch_size * 4)
        xb = torch.from_numpy(data.x[part]).to(dev)
        yb = torch.from_numpy(data.y[part]).to(dev)
        covs = [torch.from_numpy(c[part]).to(dev) for c in data.covariates]
        total += float(l1_loss(model, xb, yb, *covs, kind=kind)) * len(xb)
        count += len(xb)
    return total / max(count, 1)


def train(config: RunConfig, dataset: Dataset, progress: bool = True, on_epoch: EpochHook | None = None) -> TrainResult:
    """The run's model: one forecaster, or ([ensemble]) every member and their validated combination. `on_epoch`
    hears each epoch of members trained in this process (members in worker processes report when done)."""
    if config.ensemble.single:
        return train_member(config, config.seed, config.model, dataset, progress, on_epoch=on_epoch)
    jobs = [
        MemberJob(config, seed, model_config, dataset, f"{config.name}[{k}]")
        for k, (seed, model_config) in enumerate(config.member_configs())
    ]
    workers = min(len(jobs), config.ensemble.workers or available_cores())
    started = time.perf_counter()
    if workers > 1:
        members = train_in_processes(jobs, workers)
    else:
        members = [train_member(j.config, j.seed, j.model, j.dataset, progress, j.label, on_epoch) for j in jobs]
    ensemble = Ensemble([m.model for m in members])
    if config.ensemble.naive_blend:
        fit_blend(ensemble, config, dataset)
    return TrainResult(
        model=ensemble,
        best_epoch=max(m.best_epoch for m in members),
        best_val_loss=float(np.mean([m.best_val_loss for m in members])),
        history=[{**h, "member": k} for k, m in enumerate(members) for h in m.history],
        seconds=time.perf_counter() - started,  # wall clock: members trained at once overlap
        hit_cap=any(m.hit_cap for m in members),
        members=members,
    )


@dataclass
class MemberJob:
    config: RunConfig
    seed: int
    model: ForecasterConfig
    dataset: Dataset
    label: str


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def train_in_processes(jobs: list[MemberJob], workers: int) -> list[TrainResult]:
    """Members trained `workers` at a time, each in its own process with its share of the cores: a recurrent
    net on CPU gains little from a second thread (one GRU epoch on 336-step windows: 36 s on one thread, 34 s on
    two), so two members at once on two cores take about the time of one."""
    threads = max(1, available_cores() // workers)
    level = logging.getLogger().getEffectiveLevel()
    # spawn, not fork: a forked child would inherit torch's thread pools mid-state.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = list(pool.map(_train_member_job, jobs, [threads] * len(jobs), [level] * len(jobs)))
    results = []
    for job, (state, info) in zip(jobs, done, strict=True):
        model = Forecaster(job.model)
        model.load_state_dict(state)
        model.eval()
        results.append(TrainResult(model=model, **info))
    return results


def _train_member_job(job: MemberJob, threads: int, level: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """In a worker process: train one member; return its weights and record (a module does not cross processes)."""
    torch.set_num_threads(threads)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    r = train_member(job.config, job.seed, job.model, job.dataset, progress=False, label=job.label)
    info = {
        "best_epoch": r.best_epoch,
        "best_val_loss": r.best_val_loss,
        "history": r.history,
        "seconds": r.seconds,
        "hit_cap": r.hit_cap,
    }
    return r.model.state_dict(), info


def fit_blend(ensemble: Ensemble, config: RunConfig, dataset: Dataset) -> None:
    """Set the ensemble's naive weight and lag from the validation split (training.ensemble.fit_naive_weight)."""
    from training.evaluate import collect  # evaluation reads models; training only borrows its window walk

    season = config.season or dataset.season
    horizon = ensemble.config.horizon
    val = collect(ensemble, dataset, "val", 1)
    scales = np.array([mase_scale(s, season) for s in dataset.series])[val.series_index]
    naive = {"naive": baselines.naive(val.inputs, horizon)}
    if 1 < season < ensemble.config.min_window:
        naive["seasonal_naive"] = baselines.seasonal_naive(val.inputs, horizon, season)
    weight, kind, tried = fit_naive_weight(val.forecasts, naive, val.actuals, scales)
    ensemble.naive_lag = season if kind == "seasonal_naive" else 1
    ensemble.naive_weight.fill_(weight)
    log.info(
        "%s: naive blend on validation: weight %.2f of %s (MASE %.4f; the model alone %.4f)",
        config.name,
        weight,
        kind.replace("_", " "),
        min(tried.values()),
        tried["model"],
    )


def train_member(
    config: RunConfig,
    seed: int,
    mc: ForecasterConfig,
    dataset: Dataset,
    progress: bool = True,
    label: str | None = None,
    on_epoch: EpochHook | None = None,
) -> TrainResult:
    """One forecaster of model config `mc`, trained with the run's [train] settings from `seed`."""
    name = label or config.name
    generator = seed_everything(seed)
    dev = device()
    tc = config.train
    if mc.transform == "log":
        check_positive(dataset)
    train_set = split_windows(dataset, "train", mc.input_window, mc.horizon, tc.train_stride, mc)
    val_set = split_windows(dataset, "val", mc.input_window, mc.horizon, 1, mc)
    if len(train_set) == 0 or len(val_set) == 0:
        raise ValueError(
            f"{name}: no training or validation windows (window {mc.input_window}, horizon "
            f"{mc.horizon}); the series are too short for this configuration"
        )
    log.info("%s: %d train windows, %d val windows, device %s", name, len(train_set), len(val_set), dev)

    model = Forecaster(mc).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    schedule = lr_schedule(optimizer, config)
    xt, yt = torch.from_numpy(train_set.x), torch.from_numpy(train_set.y)
    ct = [torch.from_numpy(c) for c in train_set.covariates]
    batches = (len(xt) + tc.batch_size - 1) // tc.batch_size
    if tc.max_batches_per_epoch:
        batches = min(batches, tc.max_batches_per_epoch)

    best = TrainResult(model=model, best_epoch=-1, best_val_loss=float("inf"))
    best_state: dict[str, torch.Tensor] = {}
    started = time.perf_counter()
    # A bar on a terminal (epoch, losses, ETA); a plain line per epoch in a log file or a pipe, where a bar's
    # carriage returns would pile up.
    on_terminal = progress and sys.stderr.isatty()
    with denormals_flushed(), logging_redirect_tqdm():  # log lines print above the progress bar, not through it
        bar = tqdm(range(1, tc.epochs + 1), disable=not on_terminal, desc=name, unit="epoch")
        for epoch in bar:
            epoch_start = time.perf_counter()
            model.train()
            order = torch.randperm(len(xt), generator=generator)
            running = 0.0
            for b in range(batches):
                idx = order[b * tc.batch_size : (b + 1) * tc.batch_size]
                loss = l1_loss(model, xt[idx].to(dev), yt[idx].to(dev), *(c[idx].to(dev) for c in ct), kind=tc.loss)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                optimizer.step()
                running += float(loss.detach())
            train_loss = running / batches
            val_loss = evaluate_loss(model, val_set, tc.batch_size, dev, tc.loss)
            seconds = time.perf_counter() - epoch_start
            lr = optimizer.param_groups[0]["lr"]
            if isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
                schedule.step(val_loss)
            elif schedule is not None:
                schedule.step()
            best.history.append(
                {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "seconds": seconds, "lr": lr}
            )
            if val_loss < best.best_val_loss:
                best.best_val_loss, best.best_epoch = val_loss, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", best=best.best_epoch)
            left = (tc.epochs - epoch) * (time.perf_counter() - started) / epoch
            if on_epoch is not None:
                on_epoch(
                    {
                        "member": name,
                        "epoch": epoch,
                        "epochs": tc.epochs,
                        "train_loss": train_loss,
                        "val_loss": val_loss,
                        "best_epoch": best.best_epoch,
                        "seconds_left_at_most": round(left, 1),
                    }
                )
            if progress and not on_terminal:
                log.info(
                    "%s epoch %d/%d: train %.4f val %.4f, best epoch %d (%.1f s; at most %.0f s left)",
                    name,
                    epoch,
                    tc.epochs,
                    train_loss,
                    val_loss,
                    best.best_epoch,
                    seconds,
                    left,
                )
            if epoch - best.best_epoch >= tc.patience:
                log.info("%s: early stop at epoch %d (best %d)", name, epoch, best.best_epoch)
                break
    model.load_state_dict(best_state)
    model.eval()
    best.seconds = time.perf_counter() - started
    best.hit_cap = best.best_epoch == len(best.history) == tc.epochs
    if best.hit_cap:
        log.warning(
            red(
                f"{name}: the epoch cap ({tc.epochs}) stopped training while the validation loss was still "
                "improving (the best epoch is the last): raise [train] epochs"
            )
        )
    return best


def lr_schedule(optimizer: torch.optim.Optimizer, config: RunConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    tc = config.train
    if tc.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=max(tc.patience // 2 - 1, 0))
    if tc.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=tc.epochs)
    return None


def save_checkpoint(result: TrainResult, config: RunConfig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    model = result.model
    ckpt: dict[str, Any] = {
        "state_dict": model.state_dict(),
        "model_config": config.model.to_dict(),
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "history": result.history,
        "seconds": result.seconds,
        "hit_cap": result.hit_cap,
    }
    if isinstance(model, Ensemble):
        ckpt["members"] = [
            {"model_config": m.model.config.to_dict(), "best_epoch": m.best_epoch, "seconds": m.seconds}
            for m in result.members
        ]
        ckpt["naive_lag"] = model.naive_lag
    torch.save(ckpt, path)


def load_checkpoint(path: Path, config: ForecasterConfig | None = None) -> tuple[Forecaster | Ensemble, dict[str, Any]]:
    """Weights from `path` into a model built from `config` (the run's), else from the saved config; an
    ensemble's members from their saved configs."""
    # weights_only: a checkpoint is tensors and plain data; nothing is unpickled beyond that.
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model: Forecaster | Ensemble
    if "members" in ckpt:
        members = [Forecaster(ForecasterConfig(**m["model_config"])) for m in ckpt["members"]]
        model = Ensemble(members, naive_lag=ckpt["naive_lag"])
    else:
        model = Forecaster(config or ForecasterConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt
