"""Evaluation on the test split: the model and its baselines on the same windows, conformal intervals
calibrated on the validation split, a markdown report and plots under reports/<model>/."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contract.card import Conformal
from contract.words import count
from training import baselines, conformal
from training import metrics as M
from training.config import RunConfig
from training.console import red
from training.data import Dataset, check_covariates, covariate_windows, mase_scale, windows
from training.ensemble import AnyForecaster, Ensemble, median

LEVELS = (0.8, 0.95)
log = logging.getLogger("gatecast.evaluate")


@dataclass
class SplitForecasts:
    inputs: np.ndarray  # (N, T)
    actuals: np.ndarray  # (N, H)
    forecasts: np.ndarray  # (N, H)
    scales: np.ndarray  # (N,)
    series_index: np.ndarray  # (N,) which series each window came from
    origins: np.ndarray  # (N,) index of the first target in its series
    covariates: list[np.ndarray]  # the model's covariate inputs, in graph order


@torch.no_grad()
def predict(
    model: AnyForecaster, inputs: np.ndarray, covariates: list[np.ndarray] | None = None, batch_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Forecasts (N, H) and scales (N,) in float64, batched on the CPU."""
    model = model.cpu().eval()
    fs, ss = [], []
    for i in range(0, len(inputs), batch_size):
        part = slice(i, i + batch_size)
        covs = [torch.from_numpy(c[part].astype(np.float32)) for c in covariates or []]
        f, s = model(torch.from_numpy(inputs[part].astype(np.float32)), *covs)
        fs.append(f.double().numpy())
        ss.append(s.double().numpy())
    return np.concatenate(fs), np.concatenate(ss)


@torch.no_grad()
def member_curve(model: Ensemble, test: SplitForecasts) -> list[np.ndarray]:
    """The ensemble's test forecasts cut to its first k members, k = 1..N (with the same naive weight): what
    each member buys."""
    stacks = []
    for i in range(0, len(test.inputs), 1024):
        part = slice(i, i + 1024)
        covs = [torch.from_numpy(c[part].astype(np.float32)) for c in test.covariates]
        x = torch.from_numpy(test.inputs[part].astype(np.float32))
        stacks.append(torch.cat([model.member_forecasts(x, *covs), model.naive(x).unsqueeze(0)]).double().numpy())
    forecasts = np.concatenate(stacks, axis=1)  # (N + 1, windows, H): the members, then naive
    members, naive = forecasts[:-1], forecasts[-1]
    w = float(model.naive_weight)
    return [(1 - w) * median(torch.from_numpy(members[:k])).numpy() + w * naive for k in range(1, len(members) + 1)]


def collect(model: AnyForecaster, dataset: Dataset, split: str, stride: int) -> SplitForecasts:
    window, horizon, cov = model.config.input_window, model.config.horizon, model.config.covariates
    check_covariates(dataset, cov)
    parts = []
    for i, series in enumerate(dataset.series):
        x, y = windows(series, split, window, horizon, stride)
        lo = max(series.split(split)[0], window)
        covs = covariate_windows(series, split, window, horizon, cov, stride)
        parts.append((x, y, np.full(len(x), i), lo + stride * np.arange(len(x)), covs))
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    covariates = [np.concatenate(c) for c in zip(*(p[4] for p in parts), strict=True)]
    f, s = predict(model, x, covariates)
    index, origins = np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts])
    return SplitForecasts(x, y, f, s, index, origins, covariates)


def point_metrics(actuals: np.ndarray, forecasts: np.ndarray, scales: np.ndarray, z_std: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE, sMAPE, MASE (per-window MAE over its series' seasonal-naive scale), and MSE/MAE in z units
    (each window divided by the training std of its own series, `z_std` (N, 1))."""
    per_window_mae = np.mean(np.abs(actuals - forecasts), axis=1)
    return {
        "mae": M.mae(actuals, forecasts),
        "rmse": M.rmse(actuals, forecasts),
        "smape": M.smape(actuals, forecasts),
        "mase": float(np.mean(per_window_mae / scales)),
        "mse_z": M.mse(actuals / z_std, forecasts / z_std),
        "mae_z": M.mae(actuals / z_std, forecasts / z_std),
        "mae_by_step": [float(v) for v in np.mean(np.abs(actuals - forecasts), axis=0)],
    }


def baseline_forecasts(config: RunConfig, dataset: Dataset, test: SplitForecasts, season: int) -> dict[str, np.ndarray]:
    horizon = config.model.horizon
    out = {
        "naive": baselines.naive(test.inputs, horizon),
        "seasonal_naive": baselines.seasonal_naive(test.inputs, horizon, season),
    }
    stat = config.evaluate.stat_model
    if stat:
        # Fitted once per series on its history before the test split, applied at each origin to the whole
        # history up to it (for M4, one origin per series: the official protocol).
        forecasts = np.empty((len(test.inputs), horizon))
        for i, series in enumerate(dataset.series):
            rows = np.flatnonzero(test.series_index == i)
            if len(rows):
                fitted = baselines.statistical_on_history(
                    series.values, series.val_end, test.origins[rows], horizon, season, stat
                )
                forecasts[rows] = fitted
        out[stat] = forecasts
    return out


NAIVE_IS_THE_MODEL = 0.95  # a naive blend weight from here up: what is served is, in effect, the naive forecast


def validation_verdict(
    val: SplitForecasts, dataset: Dataset, season: int, horizon: int, blend: tuple[float, int] = (0.0, 1)
) -> dict[str, Any]:
    """The model against naive and seasonal naive on the validation windows (MASE, the series' own scale): the
    data the run chose its weights on, so a user learns before the test split, or their own data, whether the
    model beats the forecasts that need no training. `blend` is the exported naive weight and lag: from
    NAIVE_IS_THE_MODEL up the verdict says the model is that naive forecast rather than that it beats it."""
    series_scale = np.array([mase_scale(s, season) for s in dataset.series])[val.series_index]
    mase = {
        name: float(np.mean(np.mean(np.abs(val.actuals - f), axis=1) / series_scale))
        for name, f in (
            ("model", val.forecasts),
            ("naive", baselines.naive(val.inputs, horizon)),
            ("seasonal_naive", baselines.seasonal_naive(val.inputs, horizon, season)),
        )
    }
    best = min(("naive", "seasonal_naive"), key=lambda name: mase[name])
    beats = mase["model"] < mase["naive"] and mase["model"] < mase["seasonal_naive"]
    weight, lag = blend
    if weight >= NAIVE_IS_THE_MODEL:
        kind = "seasonal naive" if lag == season > 1 else "naive"
        verdict = (
            f"is the {kind} forecast: the naive blend gave {kind} weight {weight:.2f} on validation (MASE "
            f"{mase['model']:.3f}), so the network adds (nearly) nothing; serve it knowing that, or give the "
            "network more history or epochs"
        )
    elif beats:
        verdict = f"beats naive and seasonal naive on validation (MASE {mase['model']:.3f} against {mase[best]:.3f})"
    else:
        worse = mase["model"] / mase[best] - 1
        verdict = (
            f"LOSES to {best.replace('_', ' ')} on validation: MASE {mase['model']:.3f} against {mase[best]:.3f} "
            f"({worse:.0%} worse); serve {best.replace('_', ' ')} instead, or set [ensemble] naive_blend = true"
        )
    return {"split": "val", "windows": int(len(val.actuals)), "mase": mase, "beats_naive": beats, "verdict": verdict}


def validation_scores(model: AnyForecaster, config: RunConfig, dataset: Dataset) -> dict[str, Any]:
    """The validation verdict alone (the test split is not read): what `gatecast tune` chooses on."""
    season = config.season or dataset.season
    blend = (float(model.naive_weight), model.naive_lag) if isinstance(model, Ensemble) else (0.0, 1)
    return validation_verdict(collect(model, dataset, "val", 1), dataset, season, config.model.horizon, blend)


def evaluate(
    model: AnyForecaster, config: RunConfig, dataset: Dataset
) -> tuple[dict[str, Any], Conformal, SplitForecasts]:
    season = config.season or dataset.season
    val = collect(model, dataset, "val", 1)
    cal = conformal.calibrate(val.actuals, val.forecasts, val.scales, val.inputs)
    blend = (float(model.naive_weight), model.naive_lag) if isinstance(model, Ensemble) else (0.0, 1)
    validation = validation_verdict(val, dataset, season, config.model.horizon, blend)
    if not validation["beats_naive"] or blend[0] >= NAIVE_IS_THE_MODEL:
        log.warning(red(f"{config.name}: {validation['verdict']}"))
    test = collect(model, dataset, "test", config.evaluate.stride)

    series_scale = np.array([mase_scale(s, season) for s in dataset.series])
    window_scale = series_scale[test.series_index]
    # z-scale per series (train rows of each), as the published multi-series tables do
    z_std = np.array([s.values[: s.train_end].std() for s in dataset.series])[test.series_index][:, None]
    candidates = {"model": test.forecasts, **baseline_forecasts(config, dataset, test, season)}
    scores = {name: point_metrics(test.actuals, f, window_scale, z_std) for name, f in candidates.items()}

    result: dict[str, Any] = {
        "split": "test",
        "stride": config.evaluate.stride,
        "windows": int(len(test.actuals)),
        "season": season,
        "scores": scores,
        "coverage": {},
        "validation": validation,
    }
    if isinstance(model, Ensemble):
        result["ensemble"] = {
            "members": model.describe(),
            "naive_weight": float(model.naive_weight),
            "naive_lag": model.naive_lag,
        }
        curve = member_curve(model, test)
        result["ensemble"]["test_mase_by_members"] = [
            float(np.mean(np.mean(np.abs(test.actuals - f), axis=1) / window_scale)) for f in curve
        ]
    for level in LEVELS:
        lo, hi = conformal.interval(test.forecasts, test.scales, test.inputs, cal, level)
        result["coverage"][str(round(level * 100))] = conformal.coverage(test.actuals, lo, hi)
    if dataset.name == "m4_hourly":
        result["m4"] = m4_official(dataset, test, candidates, season)
        if isinstance(model, Ensemble):
            by_k = m4_official(dataset, test, {str(k + 1): f for k, f in enumerate(curve)}, season)
            result["ensemble"]["m4_owa_by_members"] = [by_k[str(k + 1)]["owa"] for k in range(len(curve))]
    return result, cal, test


def m4_official(
    dataset: Dataset, test: SplitForecasts, candidates: dict[str, np.ndarray], season: int
) -> dict[str, Any]:
    """Official M4 sMAPE/MASE (per-series in-sample scale) and OWA against Naive2."""
    insamples = [dataset.series[i].values[:o] for i, o in zip(test.series_index, test.origins, strict=True)]
    horizon = test.actuals.shape[1]
    naive2 = np.stack([M.naive2_forecast(x, horizon, season) for x in insamples])
    reference = M.m4_scores(insamples, test.actuals, naive2, season)
    out: dict[str, Any] = {"naive2": {**reference, "owa": 1.0}}
    for name, forecasts in candidates.items():
        scores = M.m4_scores(insamples, test.actuals, forecasts, season)
        out[name] = {**scores, "owa": M.owa(scores, reference)}
    return out


# --- report ----------------------------------------------------------------------------------------------


def write_report(
    config: RunConfig,
    dataset: Dataset,
    result: dict[str, Any],
    test: SplitForecasts,
    cal: Conformal,
    train_info: dict[str, Any],
    out_dir: Path,
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps({"evaluation": result, "training": train_info}, indent=2))
    _plot(config, test, cal, out_dir / "forecasts.png")
    lines = [
        f"# {config.name}",
        "",
        f"{dataset.description}. Cell `{config.model.cell}`, hidden {config.model.hidden_size} x "
        f"{config.model.num_layers} layers, input window {config.model.input_window}, horizon "
        f"{config.model.horizon}, seed {config.seed}.",
        f"Test split, {result['windows']} forecast origins (stride {result['stride']}); MASE scaled by the "
        f"seasonal-naive MAE on the training split (season {result['season']}); `mse_z`/`mae_z` on the "
        "train-fitted z-score scale.",
        "",
        "| method | MAE | RMSE | sMAPE | MASE | MSE (z) | MAE (z) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in result["scores"].items():
        lines.append(
            f"| {name} | {s['mae']:.4f} | {s['rmse']:.4f} | {s['smape']:.3f} | {s['mase']:.4f} | "
            f"{s['mse_z']:.4f} | {s['mae_z']:.4f} |"
        )
    model_steps = np.array(result["scores"]["model"]["mae_by_step"])
    lines += ["", "Where a baseline beats the model (test MAE per horizon step):", ""]
    for name, s in result["scores"].items():
        if name == "model":
            continue
        wins = [i + 1 for i, v in enumerate(s["mae_by_step"]) if v < model_steps[i]]
        steps = "steps" if len(wins) > 1 else "step"
        where = f"better at {steps} {step_ranges(wins)} of {len(model_steps)}" if wins else "better at no step"
        lines.append(f"- {name}: {where}")
    if "m4" in result:
        lines += [
            "",
            "M4 official scores (per-series in-sample MASE scale, OWA against Naive2):",
            "",
            "| method | sMAPE | MASE | OWA |",
            "|---|---|---|---|",
        ]
        for name, s in result["m4"].items():
            lines.append(f"| {name} | {s['smape']:.3f} | {s['mase']:.3f} | {s['owa']:.3f} |")
    lines += [
        "",
        f"Validation verdict: {result['validation']['verdict']}." if "validation" in result else "",
        "",
        *_ensemble_lines(result.get("ensemble")),
        f"Split-conformal intervals calibrated on {cal.calibration_windows} validation windows. Empirical "
        "coverage on the test split: "
        + ", ".join(f"{k}% -> {v * 100:.1f}%" for k, v in result["coverage"].items())
        + ".",
        "",
        _training_line(train_info)
        + (
            " - the epoch cap stopped it while validation was still improving (raise [train] epochs)."
            if train_info.get("hit_cap")
            else "."
        ),
        "",
        "![forecasts](forecasts.png)",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _training_line(info: dict[str, Any]) -> str:
    members = info.get("members")
    if not members:
        return (
            f"Training: best epoch {info['best_epoch']}, {info['epochs_run']} epochs, "
            f"{info['seconds_per_epoch']:.1f} s/epoch, {info['seconds']:.0f} s in all"
        )
    each = "; ".join(
        f"window {m['input_window']}: best epoch {m['best_epoch']} of {m['epochs_run']}, {m['seconds']:.0f} s"
        for m in members
    )
    return f"Training: {len(members)} members ({each}), {info['seconds']:.0f} s in all (wall clock)"


def _ensemble_lines(ensemble: dict[str, Any] | None) -> list[str]:
    if not ensemble:
        return []
    members = ", ".join(f"{m['cell']} (window {m['input_window']})" for m in ensemble["members"])
    kind = "naive" if ensemble["naive_lag"] == 1 else f"seasonal naive (lag {ensemble['naive_lag']})"
    return [
        f"Ensemble: the median of {count(len(ensemble['members']), 'member')}, {members}; weight of {kind} chosen on "
        f"validation: {ensemble['naive_weight']:.2f}.",
        "",
    ]


def step_ranges(steps: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    parts, start = [], steps[0]
    for prev, cur in zip(steps, [*steps[1:], None], strict=True):
        if cur != prev + 1:
            parts.append(f"{start}-{prev}" if prev != start else str(start))
            start = cur  # type: ignore[assignment]
    return ", ".join(parts)


def _plot(config: RunConfig, test: SplitForecasts, cal: Conformal, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = max(1, min(config.evaluate.plot_windows, len(test.actuals)))
    picks = np.linspace(0, len(test.actuals) - 1, count).astype(int)
    fig, axes = plt.subplots(count, 1, figsize=(9, 2.4 * count), squeeze=False)
    for ax, i in zip(axes[:, 0], picks, strict=True):
        history = test.inputs[i][-3 * test.actuals.shape[1] :]
        t_hist = np.arange(-len(history), 0)
        t_fut = np.arange(test.actuals.shape[1])
        ax.plot(t_hist, history, color="0.4", lw=1, label="history")
        ax.plot(t_fut, test.actuals[i], color="black", lw=1.2, label="actual")
        ax.plot(t_fut, test.forecasts[i], color="tab:blue", lw=1.2, label="forecast")
        for level, alpha in ((0.95, 0.15), (0.8, 0.3)):
            lo, hi = conformal.interval(
                test.forecasts[i : i + 1], test.scales[i : i + 1], test.inputs[i : i + 1], cal, level
            )
            ax.fill_between(t_fut, lo[0], hi[0], color="tab:blue", alpha=alpha, lw=0, label=f"{int(level * 100)}%")
        ax.set_title(f"origin {int(test.origins[i])} (series {int(test.series_index[i])})", fontsize=9)
    axes[0, 0].legend(fontsize=7, ncol=6, loc="upper left")
    fig.suptitle(f"{config.name}: test forecasts with conformal intervals", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
