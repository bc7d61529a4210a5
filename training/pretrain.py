"""`gatecast pretrain`: the base model, trained on the corpus (training.corpus) with pinball loss, exported to ONNX
with its card, its corpus and what was excluded. More: docs/design.md#trainingpretrain.
"""

from __future__ import annotations

import json
import math
import time
import tomllib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from contract import signature
from contract.card import BASE_MODEL, Conformal, ModelCard
from training import corpus as corpora
from training.conformal import LEVEL_GRID
from training.export import attach_metadata, weights_sha256
from training.patch_model import PatchConfig, PatchForecaster, count_parameters, pinball

NAME = BASE_MODEL
CONFIG = Path(__file__).parent / "configs" / "pretrain" / "gatecast-base.toml"
NAIVE_ERROR_FLOOR = 0.05  # of the context's standard deviation
MEAN_STEP_FLOOR = 0.1  # likewise
CONTEXT_BUCKETS = (64, 128, 256, 512, 1024)  # a batch's padded context length; each sample's own is at most this


@dataclass
class PretrainConfig:
    name: str = NAME
    seed: int = 0
    steps: int = 6000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 300
    synthetic_count: int = 6000
    real_share: float = 0.5  # of the samples, from real series (the rest synthetic)
    mixup: float = 0.2  # of the samples, a convex mix of 2 or 3 series (TSMixup)
    flip: float = 0.15  # of the samples, mirrored (x -> -x)
    missing: float = 0.1  # of the samples, a block of the context made missing
    validation_share: float = 0.03  # of the real series, held out
    eval_every: int = 250
    threads: int = 2
    # Each horizon step's loss divided by the batch's mean error of the last value at that step: far steps, whose
    # errors are larger, stop drowning the near ones that short horizons are scored on.
    step_balance: bool = False
    # Each sample's loss divided by its context's mean |step| on the normalised scale, as MASE divides by the naive
    # error: a smooth series weighs as much as the metric weighs it, not less because its steps are small.
    naive_scaled: bool = False
    # With naive_scaled, a context's error is that of its best copy at the model's lags (the last value's among
    # them), not the last value's alone: MASE divides by the seasonal naive error, so a series that repeats its
    # season closely weighs as much as that metric weighs it.
    best_copy: bool = False
    # Real series are drawn in proportion to length ** length_power: 0.5 lets the few long sub-daily series weigh
    # more than one short yearly series each, less than all of those together; 1.0 weighs every value alike.
    length_power: float = 0.5
    extra_sources: bool = False  # the corpus also reads training.corpus.EXTRA_SOURCES
    model: PatchConfig = field(default_factory=PatchConfig)

    @classmethod
    def load(cls, path: Path, **overrides: Any) -> PretrainConfig:
        raw = tomllib.loads(path.read_text())
        model = PatchConfig(**raw.pop("model", {}))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**raw, model=model)


# --- sampling ---------------------------------------------------------------------------------------------------


class Sampler:
    """Batches of (context (B, L) with NaN, target (B, H) with NaN) drawn from series, seeded."""

    def __init__(self, real: list[np.ndarray], synthetic: list[np.ndarray], cfg: PretrainConfig, seed: int) -> None:
        self.real, self.synthetic, self.cfg = real, synthetic, cfg
        self.rng = np.random.default_rng(seed)
        self.horizon = cfg.model.horizon
        self.min_context = cfg.model.min_context
        power = cfg.length_power
        self._real_weights = np.cumsum([np.sqrt(len(v)) if power == 0.5 else len(v) ** power for v in real])
        self._synthetic_weights = np.cumsum([np.sqrt(len(v)) for v in synthetic])

    def _series(self) -> np.ndarray:
        """A series, from real or synthetic by `real_share`: real ones in proportion to length ** length_power,
        synthetic ones to sqrt(length)."""
        real = self.rng.random() < self.cfg.real_share or not self.synthetic
        pool, cumulative = (self.real, self._real_weights) if real else (self.synthetic, self._synthetic_weights)
        return pool[int(np.searchsorted(cumulative, self.rng.random() * cumulative[-1], side="right"))]

    def _one(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        v = self._series()
        n = len(v)
        lo = min(self.min_context, n - 1)
        origin = int(rng.integers(lo, n))  # values before the origin are known; at least one target after it
        context = int(min(origin, length if rng.random() < 0.5 else rng.integers(self.min_context, length + 1)))
        x = v[origin - context : origin].astype(np.float64)
        y = v[origin : origin + self.horizon].astype(np.float64)
        if rng.random() < self.cfg.mixup:
            x, y = self._mix(x, y, rng)
        if rng.random() < self.cfg.flip:
            x, y = -x, -y
        if rng.random() < self.cfg.missing and len(x) > 32:
            a = int(rng.integers(0, len(x) - 16))
            x = x.copy()
            x[a : a + int(rng.integers(1, min(64, len(x) - a - 1)))] = np.nan
        return x, y

    def _mix(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """TSMixup: a convex mix with other series cut to the same context and target lengths, each scaled by its
        mean |value| first."""
        parts = [(x, y)]
        for _ in range(int(rng.integers(1, 3))):
            v = self._series()
            if len(v) < len(x) + 1:
                continue
            origin = int(rng.integers(len(x), len(v)))
            parts.append((v[origin - len(x) : origin], v[origin : origin + len(y)]))
        k = min(len(p[1]) for p in parts)
        weights = rng.dirichlet(np.ones(len(parts)))
        mx, my = np.zeros(len(x)), np.zeros(k)
        for w, (px, py) in zip(weights, parts, strict=True):
            unit = np.nanmean(np.abs(px)) + 1e-8
            mx += w * px / unit
            my += w * py[:k] / unit
        return mx, my

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        buckets, p = CONTEXT_BUCKETS, [0.1, 0.15, 0.25, 0.25, 0.25]
        if self.cfg.model.input_length > buckets[-1]:  # the seasonal candidates read further back: some batches too
            buckets, p = (*buckets, self.cfg.model.input_length), [0.1, 0.15, 0.2, 0.2, 0.2, 0.15]
        length = int(self.rng.choice(buckets, p=p))
        return self.at_length(size, min(length, self.cfg.model.input_length))

    def at_length(self, size: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`size` samples, contexts left-padded (as missing) to `length`, targets right-padded to the horizon."""
        xs = np.full((size, length), np.nan, np.float32)
        ys = np.full((size, self.horizon), np.nan, np.float32)
        for i in range(size):
            x, y = self._one(length)
            xs[i, length - len(x) :] = x
            ys[i, : len(y)] = y
        return torch.from_numpy(xs), torch.from_numpy(ys)


def loss_of(
    model: PatchForecaster,
    x: torch.Tensor,
    y: torch.Tensor,
    levels: torch.Tensor,
    balance: bool = False,
    naive_scaled: bool = False,
    copy_lags: Sequence[int] = (),
) -> torch.Tensor:
    """Pinball loss on the normalised scale, each sample's steps averaged first (short series count as much);
    with `balance`, each step's weight divided by the batch's mean naive error there (naive_error_by_step); with
    `naive_scaled`, each sample's by its context's mean step (mean_step), or with `copy_lags` by the smaller error
    of a copy at one of those lags (best_copy_error)."""
    q, loc, scale = model.forward_normalized(x)
    target = ((y - loc) / scale).clamp(-50, 50)
    weight = (~torch.isnan(y)).to(x.dtype)
    weight = weight / weight.sum(dim=1, keepdim=True).clamp_min(1.0)
    if balance:
        weight = weight / naive_error_by_step(x, target, loc, scale)
    if naive_scaled:
        weight = weight / (best_copy_error(x, loc, scale, copy_lags) if copy_lags else mean_step(x, loc, scale))
    return (
        pinball(q, torch.nan_to_num(target), weight, levels)
        * weight.shape[0]
        / max(float((weight.sum(1) > 0).sum()), 1.0)
    )


def naive_error_by_step(x: torch.Tensor, target: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(1, H): the mean |target - last observed value| over the batch at each step, on the normalised scale;
    floored, so that a step where the last value is nearly exact cannot take all the weight."""
    seen = ~torch.isnan(x)
    position = torch.where(seen, torch.arange(x.shape[1]).expand_as(x), torch.zeros_like(x, dtype=torch.long))
    last = torch.gather(torch.nan_to_num(x), 1, position.amax(dim=1, keepdim=True))
    naive = ((last - loc) / scale).clamp(-50, 50)
    has = ~torch.isnan(target)
    error = torch.where(has, (torch.nan_to_num(target) - naive).abs(), torch.zeros_like(target)).sum(0, keepdim=True)
    return (error / has.sum(0, keepdim=True).clamp_min(1)).clamp_min(NAIVE_ERROR_FLOOR).detach()


def mean_step(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(B, 1): the mean |z_t - z_(t-1)| over each context's observed pairs, on the normalised scale; floored, so
    that a series of long flat runs cannot take all the weight."""
    seen = ~torch.isnan(x)
    z = (x - loc) / scale
    step = (z[:, 1:] - z[:, :-1]).abs()
    pairs = seen[:, 1:] & seen[:, :-1]
    total = torch.where(pairs, step, torch.zeros_like(step)).sum(1, keepdim=True)
    return (total / pairs.sum(1, keepdim=True).clamp_min(1)).clamp_min(MEAN_STEP_FLOOR).detach()


def best_copy_error(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, lags: Sequence[int]) -> torch.Tensor:
    """(B, 1): the smallest mean |z_t - z_(t-lag)| over the last value (lag 1) and `lags`, on the normalised scale,
    floored like mean_step. A lag counts only with at least `lag` observed pairs (two whole seasons), so that a long
    lag cannot look exact on a handful of pairs."""
    seen = ~torch.isnan(x)
    z = (x - loc) / scale
    best = mean_step(x, loc, scale)
    for lag in sorted(set(lags) - {1}):
        if 2 * lag > x.shape[1]:
            continue
        pairs = seen[:, lag:] & seen[:, :-lag]
        count = pairs.sum(1, keepdim=True)
        error = torch.where(pairs, (z[:, lag:] - z[:, :-lag]).abs(), torch.zeros_like(z[:, lag:])).sum(1, keepdim=True)
        error = torch.where(count >= lag, error / count.clamp_min(1), torch.full_like(error, math.inf))
        best = torch.minimum(best, error.clamp_min(MEAN_STEP_FLOOR))
    return best.detach()


# --- training ---------------------------------------------------------------------------------------------------


@dataclass
class Validation:
    x: torch.Tensor  # (N, L)
    y: torch.Tensor  # (N, H)
    naive_scale: np.ndarray  # (N,) mean |y_t - y_{t-1}| of the context (MASE's denominator)


def validation_set(series: list[np.ndarray], cfg: PretrainConfig, count: int = 512) -> Validation:
    sampler = Sampler(
        series,
        [],
        PretrainConfig(
            **{**asdict(cfg), "model": cfg.model, "mixup": 0.0, "flip": 0.0, "missing": 0.0, "real_share": 1.0}
        ),
        seed=cfg.seed + 999,
    )
    xs, ys = [], []
    lengths = sorted({min(n, cfg.model.input_length) for n in (64, 256, 1024, cfg.model.input_length)})
    for length in lengths:
        x, y = sampler.batch(count // len(lengths))
        if x.shape[1] != length:  # batch() draws its bucket: draw again until the length is the one wanted
            x, y = sampler.at_length(count // len(lengths), length)
        xs.append(x)
        ys.append(y)
    width = max(x.shape[1] for x in xs)
    x = torch.cat([torch.nn.functional.pad(a, (width - a.shape[1], 0), value=float("nan")) for a in xs])
    y = torch.cat(ys)
    d = np.abs(np.diff(x.numpy(), axis=1))
    scale = np.nanmean(np.where(np.isfinite(d), d, np.nan), axis=1)
    return Validation(x, y, np.where(np.isfinite(scale) & (scale > 0), scale, 1.0))


def evaluate(model: PatchForecaster, val: Validation, levels: torch.Tensor, cfg: PretrainConfig) -> dict[str, float]:
    """Pinball loss (weighted as trained), and MASE of the median and of the last value (both over the context's
    naive scale)."""
    model.eval()
    with torch.no_grad():
        loss = float(loss_of(model, val.x, val.y, levels, cfg.step_balance, cfg.naive_scaled, _copy_lags(cfg)))
        median, _, _ = model(val.x)
    model.train()
    y = val.y.numpy()
    last = np.array([row[np.isfinite(row)][-1] for row in val.x.numpy()])
    ok = np.isfinite(y)
    err = np.where(ok, np.abs(median.numpy() - y), 0).sum(1) / ok.sum(1).clip(1) / val.naive_scale
    naive = np.where(ok, np.abs(last[:, None] - y), 0).sum(1) / ok.sum(1).clip(1) / val.naive_scale
    return {"pinball": loss, "mase": float(np.mean(err)), "naive_mase": float(np.mean(naive))}


def train(cfg: PretrainConfig, data_dir: Path, out: Path, log: Path | None = None) -> dict[str, Any]:
    """Build the corpus, train, export `out/<name>/1/model.onnx` with its card; returns the report."""
    started = time.time()
    say = _logger(log)
    sources = corpora.SOURCES + (corpora.EXTRA_SOURCES if cfg.extra_sources else ())
    corpus = corpora.build(data_dir, cfg.synthetic_count, cfg.seed, sources)
    say(f"corpus: {len(corpus.real)} real and {len(corpus.synthetic)} synthetic series ({time.time() - started:.0f} s)")
    rng = np.random.default_rng(cfg.seed)
    real = [s.values for s in corpus.real if len(s.values) >= 2 * cfg.model.min_context]
    held = rng.random(len(real)) < cfg.validation_share
    train_real = [v for v, h in zip(real, held, strict=True) if not h]
    held_out = [v for v, h in zip(real, held, strict=True) if h]
    model, report = fit(cfg, train_real, [s.values for s in corpus.synthetic], held_out, say)
    report.update(corpus=corpus.manifest, corpus_sha256=corpora.digest(corpus))
    path = out / cfg.name / "1" / "model.onnx"
    export_artifact(model, cfg, report, held_out, path)
    say(f"exported {path} ({report['onnx_bytes'] / 1e6:.1f} MB, {report['export_checks']} checks against PyTorch)")
    return {**report, "model": model}


def fit(
    cfg: PretrainConfig,
    real: list[np.ndarray],
    synthetic: list[np.ndarray],
    held_out: list[np.ndarray],
    say: Callable[[str], None] = print,
) -> tuple[PatchForecaster, dict[str, Any]]:
    """Train a PatchForecaster on samples of `real` and `synthetic` series; the weights with the lowest validation
    pinball loss on `held_out` are kept. Seeded: the same inputs give the same weights."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    val = validation_set(held_out, cfg)
    sampler = Sampler(real, synthetic, cfg, cfg.seed)
    model = PatchForecaster(cfg.model)
    levels = torch.tensor(cfg.model.quantile_levels)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg))
    say(f"model: {count_parameters(model):,} parameters; {cfg.steps} steps of {cfg.batch_size}")
    best: dict[str, Any] = {"pinball": math.inf}
    history = []
    running, since = 0.0, 0
    t0 = time.time()
    for step in range(1, cfg.steps + 1):
        x, y = sampler.batch(cfg.batch_size)
        loss = loss_of(model, x, y, levels, cfg.step_balance, cfg.naive_scaled, _copy_lags(cfg))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        running += float(loss.detach())
        since += 1
        if step % cfg.eval_every == 0 or step == cfg.steps:
            scores = evaluate(model, val, levels, cfg)
            elapsed = time.time() - t0
            history.append({"step": step, "train_pinball": running / since, **scores, "seconds": elapsed})
            say(
                f"step {step}/{cfg.steps}: train {running / since:.4f}, validation pinball "
                f"{scores['pinball']:.4f}, MASE {scores['mase']:.3f} (naive {scores['naive_mase']:.3f}); "
                f"{elapsed / 60:.1f} min, {elapsed / step * (cfg.steps - step) / 60:.1f} min left"
            )
            running, since = 0.0, 0
            if scores["pinball"] < best["pinball"]:
                best = {**scores, "step": step, "state": {k: v.clone() for k, v in model.state_dict().items()}}
    model.load_state_dict(best.pop("state"))
    model.eval()
    report = {
        "config": {**asdict(cfg), "model": cfg.model.to_dict()},
        "parameters": count_parameters(model),
        "best": best,
        "history": history,
        "train_seconds": time.time() - t0,
    }
    return model, report


def export_artifact(
    model: PatchForecaster, cfg: PretrainConfig, report: dict[str, Any], held_out: list[np.ndarray], path: Path
) -> None:
    """The ONNX file with its card: checked against PyTorch, a conformal table on the held-out series."""
    export(model, path)
    report["export_checks"] = validate_export(model, path)
    card = build_card(model, cfg, calibrate(model, validation_set(held_out, cfg)), report)
    attach_metadata(path, card)
    report["onnx_bytes"] = path.stat().st_size


def _copy_lags(cfg: PretrainConfig) -> list[int]:
    return list(cfg.model.lags) if cfg.best_copy else []


def _lr_factor(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def _logger(log: Path | None):  # type: ignore[no-untyped-def]
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        stamped = f"{datetime.now(UTC).strftime('%H:%M:%S')} {line}"
        print(stamped, flush=True)
        if log is not None:
            with log.open("a") as fh:
                fh.write(stamped + "\n")

    return say


# --- export -----------------------------------------------------------------------------------------------------

OUTPUT_NAMES = [t.name for t in signature.quantile_outputs()]


def export(model: PatchForecaster, path: Path) -> None:
    example = torch.randn(2, model.config.input_length)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The tracer warns about shape arithmetic it records and about GRU batch sizes; validate_export runs the graph
    # at several lengths and batch sizes against PyTorch, so what the warnings fear is checked, not assumed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=[signature.INPUT.name],
            output_names=OUTPUT_NAMES,
            dynamic_axes=signature.dynamic_axes(quantiles=True),
            opset_version=17,
        )


def validate_export(model: PatchForecaster, path: Path) -> int:
    """onnxruntime against PyTorch on random walks, with missing values, at several lengths and batch sizes, and a
    constant series; raises listing every mismatch."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    cfg = model.config
    rng = np.random.default_rng(0)
    problems = signature.mismatches(
        session.get_inputs(), session.get_outputs(), cfg.horizon, quantiles=len(cfg.quantile_levels)
    )
    cases = []
    for batch in (1, 5, 64):
        for length in sorted({cfg.min_context, 17, 100, cfg.max_context, cfg.input_length, cfg.input_length + 40}):
            walk = (100 + 5 * np.cumsum(rng.normal(size=(batch, length)), axis=1)).astype(np.float32)
            cases.append((f"walk b={batch} t={length}", walk))
            holes = walk.copy()
            holes[:, : length // 3] = np.nan
            cases.append((f"missing b={batch} t={length}", holes))
    cases.append(("constant", np.full((1, 64), 7.5, np.float32)))
    for name, x in cases:
        with torch.no_grad():
            want = [t.numpy() for t in model(torch.from_numpy(x))]
        got = session.run(OUTPUT_NAMES, {signature.INPUT.name: x})
        for label, a, b in zip(OUTPUT_NAMES, got, want, strict=True):
            if a.shape != b.shape or not np.all(np.isfinite(a)):
                problems.append(f"{name}: {label} shape {a.shape} (PyTorch {b.shape}) or not finite")
            elif not np.allclose(a, b, rtol=1e-3, atol=1e-3 * float(np.nanstd(x) + 1e-3)):
                problems.append(f"{name}: {label} differs by up to {float(np.max(np.abs(a - b))):.3g}")
    if problems:
        raise RuntimeError(f"{len(problems)} export check(s) failed:\n  " + "\n  ".join(problems))
    return len(cases)


def calibrate(model: PatchForecaster, val: Validation) -> Conformal:
    """A conformal table of |y - median| / scale per step on the held-out windows, so `calibration` and the
    conformal options work on this model too; steps with too few targets take the last step's widths."""
    with torch.no_grad():
        median, scale, _ = model(val.x)
    scores = np.abs(val.y.numpy() - median.numpy()) / scale.numpy()[:, None]  # (N, H), NaN past a series' end
    rows = []
    filled = np.isfinite(scores).sum(axis=0)
    for level in LEVEL_GRID:
        row = []
        for h in range(scores.shape[1]):
            column = scores[:, h][np.isfinite(scores[:, h])]
            row.append(float(np.quantile(column, level)) if filled[h] >= 30 else (row[-1] if row else 1.0))
        rows.append(row)
    return Conformal(levels=list(LEVEL_GRID), quantiles=rows, calibration_windows=int(filled[0]))


def build_card(model: PatchForecaster, cfg: PretrainConfig, conformal: Conformal, report: dict[str, Any]) -> ModelCard:
    m = cfg.model
    return ModelCard(
        name=cfg.name,
        version="1",
        cell=m.cell,
        input_window={"min": m.min_context, "trained": m.input_length},
        horizon=m.horizon,
        freq="",
        season=1,
        target="any",
        dataset={"corpus": report.get("corpus", {}), "corpus_sha256": report.get("corpus_sha256", "")},
        conformal=conformal,
        metrics={"validation": {k: v for k, v in report["best"].items()}, "parameters": report["parameters"]},
        trained_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
        seed=cfg.seed,
        versions={"torch": torch.__version__, "onnx": onnx.__version__, "opset": "17", "onnxruntime": ort.__version__},
        sha256=weights_sha256(model),
        quantile_levels=list(m.quantile_levels),
        extra={"training.pretrain_config": json.dumps({**asdict(cfg), "model": m.to_dict()})},
    )


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="gatecast pretrain", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="models")
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--synthetic-count", type=int)
    parser.add_argument("--log")
    parser.add_argument("--reports", default="reports", help="folder for <name>/pretrain.json (the run's report)")
    args = parser.parse_args(argv)
    cfg = PretrainConfig.load(Path(args.config), steps=args.steps, synthetic_count=args.synthetic_count)
    log = Path(args.log) if args.log else Path(args.runs) / cfg.name / "pretrain.log"
    report = train(cfg, Path(args.data_dir), Path(args.out), log)
    model = report.pop("model")
    run = Path(args.runs) / cfg.name
    run.mkdir(parents=True, exist_ok=True)
    torch.save({"config": cfg.model.to_dict(), "state_dict": model.state_dict()}, run / "checkpoint.pt")
    reports = Path(args.reports) / cfg.name
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "pretrain.json").write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
