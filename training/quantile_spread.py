"""Per-step, per-level factors on a quantile head's distances from its median, fitted on held-out windows so that
each quantile covers its level there; exported inside the graph, so a plain request (no calibration option) gets
them on every route. Asymmetric (each level has its own factor) and per step (widths grow with the horizon as the
held-out errors did)."""

from __future__ import annotations

import math

import numpy as np
import torch

MIN_FACTOR, MAX_FACTOR = 0.2, 5.0
MIN_OBSERVATIONS = 30  # fewer held-out values at a step (pooled with its neighbours): the factor stays 1
POOL = 1.25  # step h pools the steps from h / POOL to h * POOL (1-based): neighbouring steps err alike


def fit(
    median: np.ndarray,
    quantiles: np.ndarray,
    targets: np.ndarray,
    levels: list[float],
    median_index: int,
    per_step: bool = True,
) -> np.ndarray:
    """(N, H) medians, (N, H, Q) quantiles, (N, H) targets (NaN: none) -> (H, Q) factors: level tau's factor at step
    h is the s for which a share tau of the targets lies below median + s (q_tau - median), clipped; without
    `per_step`, one factor per level from every step (fewer held-out values need fewer factors). (`spread` keeps the
    quantiles in order where the factors alone would cross them.)"""
    n, horizon, count = quantiles.shape
    offsets = quantiles - median[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (targets - median)[..., None] / offsets  # (N, H, Q)
    ratio[~np.isfinite(ratio) | (np.abs(offsets) < 1e-12)] = np.nan
    steps = _grid(horizon) if per_step else np.asarray([0])
    at_grid = np.ones((len(steps), count))
    for g, h in enumerate(steps):
        lo, hi = max(1, math.floor((h + 1) / POOL)) - 1, min(horizon, math.ceil((h + 1) * POOL))
        if not per_step:  # one factor per level, from every step
            lo, hi = 0, horizon
        pooled = ratio[:, lo:hi].reshape(-1, count)
        for k, tau in enumerate(levels):
            if k == median_index:
                continue
            column = pooled[:, k][np.isfinite(pooled[:, k])]
            if len(column) < MIN_OBSERVATIONS:
                continue
            # Above the median: P(y <= m + s d) = P(r <= s); below it (d < 0) P(y <= m + s d) = P(r >= s).
            at_grid[g, k] = np.quantile(column, tau if tau > 0.5 else 1 - tau)
    if per_step:
        factors = np.stack([np.interp(np.arange(horizon), steps, at_grid[:, k]) for k in range(count)], axis=1)
    else:
        factors = np.repeat(at_grid, horizon, axis=0)
    factors = np.clip(factors, MIN_FACTOR, MAX_FACTOR)
    factors[:, median_index] = 1.0
    return factors


def spread(median: np.ndarray, quantiles: np.ndarray, factors: np.ndarray, median_index: int) -> np.ndarray:
    """(N, H) medians and (N, H, Q) quantiles -> the spread quantiles, kept in order outwards from the median (as
    Spread computes them in the graph)."""
    out = median[..., None] + (quantiles - median[..., None]) * factors
    above = np.maximum.accumulate(out[..., median_index:], axis=-1)
    below = np.minimum.accumulate(out[..., : median_index + 1][..., ::-1], axis=-1)[..., ::-1]
    return np.concatenate([below[..., :-1], above], axis=-1)


def _grid(horizon: int) -> np.ndarray:
    """Every step up to 16, then steps 10% apart (0-based), the last included."""
    steps = list(range(min(horizon, 16)))
    while steps[-1] < horizon - 1:
        steps.append(min(horizon - 1, max(steps[-1] + 1, round(steps[-1] * 1.1))))
    return np.asarray(steps)


def coverage(quantiles: np.ndarray, targets: np.ndarray, levels: list[float]) -> dict[str, float]:
    """The share of the targets below each quantile, and inside each central interval the levels hold."""
    ok = np.isfinite(targets)
    below = {f"{tau:g}": float((targets[ok] <= quantiles[..., k][ok]).mean()) for k, tau in enumerate(levels)}
    out = {f"below {k}": v for k, v in below.items()}
    for k, tau in enumerate(levels):
        if tau < 0.5 and f"{1 - tau:g}" in below:
            inside = (targets[ok] >= quantiles[..., k][ok]) & (targets[ok] <= quantiles[..., levels.index(1 - tau)][ok])
            out[f"central {round(100 * (1 - 2 * tau), 6):g}%"] = float(inside.mean())
    return out


class Spread(torch.nn.Module):
    """A quantile model whose quantiles are its median plus `factors` (H, Q) times their distance from it; the
    forecast (the median) and the conformal unit are the model's own."""

    def __init__(self, model: torch.nn.Module, factors: np.ndarray) -> None:
        super().__init__()
        self.model = model
        self.config = model.config
        self.register_buffer("factors", torch.as_tensor(factors, dtype=torch.float32))

    def forward(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        median, unit, quantiles = self.model(values)
        centre = median.unsqueeze(-1)
        scaled = centre + (quantiles - centre) * self.factors
        # Each level at least as far out as the one inside it: unrolled (ONNX has no cumulative max), Q is small.
        m = self.config.median_index
        levels = list(scaled.unbind(-1))
        for k in range(m + 1, len(levels)):
            levels[k] = torch.maximum(levels[k], levels[k - 1])
        for k in range(m - 1, -1, -1):
            levels[k] = torch.minimum(levels[k], levels[k + 1])
        return median, unit, torch.stack(levels, dim=-1)
