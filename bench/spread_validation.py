"""Does a quantile spread fitted on validation windows (training.quantile_spread) make a model's intervals hold on
windows it was not fitted on? Cross-fitted within the validation windows of one resolution: the factors fitted on
the even windows score the odd ones and the other way round, pooled by horizon step across that resolution's
configurations. The factors fitted on every window are what a committed model would carry.

Used by bench.finetune_validation (the fine-tuned model and the base, per ETT resolution) and bench.gifteval (the
factors the committed models are exported with).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench import giftprotocol as protocol
from contract.card import ModelCard
from training import quantile_spread

Heads = dict[str, list[list[np.ndarray]]]  # config -> series -> window -> (H, Q) quantiles


def heads(path: Path, tasks: dict[str, protocol.Task]) -> tuple[Heads, list[float]]:
    """Every window's quantile head (all the model's levels) for each configuration, and the levels."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    card = ModelCard.from_props(dict(session.get_modelmeta().custom_metadata_map))
    out: Heads = {}
    for name, task in tasks.items():
        h = task.config.horizon
        out[name] = []
        for values, origins in zip(task.values, task.origins, strict=True):
            rows = []
            for o in origins:
                x = values[:o][-card.trained_window :].astype(np.float32)[None]
                rows.append(session.run(["quantiles"], {"values": x})[0][0, :h].astype(np.float64))
            out[name].append(rows)
    return out, list(card.quantile_levels)


def fit(
    tasks: dict[str, protocol.Task], found: Heads, levels: list[float], keep: int | None = None, per_step: bool = True
) -> np.ndarray:
    """Factors (H, Q) fitted on the windows of every configuration (with `keep` 0 or 1, only the windows whose index
    has that parity), H the longest horizon."""
    median_index = levels.index(0.5)
    horizon = max(t.config.horizon for t in tasks.values())
    medians, quantiles, targets = [], [], []
    for name, task in tasks.items():
        h = task.config.horizon
        for values, origins, rows in zip(task.values, task.origins, found[name], strict=True):
            for k, (o, q) in enumerate(zip(origins, rows, strict=True)):
                if keep is not None and k % 2 != keep:
                    continue
                pad = np.full((horizon, len(levels)), np.nan)
                pad[:h] = q
                truth = np.full(horizon, np.nan)
                truth[:h] = values[o : o + h]
                medians.append(pad[:, median_index])
                quantiles.append(pad)
                targets.append(truth)
    return quantile_spread.fit(
        np.stack(medians), np.stack(quantiles), np.stack(targets), levels, median_index, per_step
    )


def scored(task: protocol.Task, rows: list[list[np.ndarray]], levels: list[float]) -> dict[str, Any]:
    asked = [p for p in (*protocol.QUANTILES, 0.025, 0.975) if p in levels]
    forecasts = [[{p: q[:, levels.index(p)] for p in asked} for q in series] for series in rows]
    s = protocol.score(task, forecasts)
    return {"mase": s.mase, "crps": s.crps, "coverage": {str(k): v for k, v in s.coverage.items()}}


def spread_rows(rows: list[list[np.ndarray]], factors: np.ndarray, levels: list[float]) -> list[list[np.ndarray]]:
    m = levels.index(0.5)
    out = []
    for series in rows:
        out.append(
            [quantile_spread.spread(q[None, :, m], q[None], factors[: len(q)], m)[0] for q in series]  # (H, Q)
        )
    return out


def cross_fitted(path: Path, tasks: dict[str, protocol.Task]) -> dict[str, Any]:
    """Each configuration's scores as the model answers, and with the spread (per step, and one factor per level)
    fitted on the windows of the other parity; and the factors of each kind fitted on every window."""
    found, levels = heads(path, tasks)
    configs: dict[str, Any] = {name: {"as is": scored(task, found[name], levels)} for name, task in tasks.items()}
    factors = {}
    for kind, per_step in (("per step", True), ("per level", False)):
        halves = [fit(tasks, found, levels, keep, per_step) for keep in (0, 1)]
        for name, task in tasks.items():
            crossed = [
                [spread_rows([[q]], halves[1 - k % 2], levels)[0][0] for k, q in enumerate(series)]
                for series in found[name]
            ]
            configs[name][f"spread {kind}"] = scored(task, crossed, levels)
        factors[kind] = fit(tasks, found, levels, per_step=per_step)
    return {"configs": configs, "factors": factors, "levels": levels, "heads": found}
