"""Several forecasters in one graph, and the validated blend with a naive forecast. More:
docs/design.md#trainingensemble.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from training.model import Forecaster, ForecasterConfig

NAIVE_KINDS = ("naive", "seasonal_naive")
WEIGHT_GRID = np.linspace(0.0, 1.0, 21)  # 0.05 apart: finer would fit the validation split's noise


class Ensemble(nn.Module):
    def __init__(self, members: list[Forecaster], naive_weight: float = 0.0, naive_lag: int = 1) -> None:
        super().__init__()
        first = members[0].config
        for m in members[1:]:
            c = m.config
            if (c.horizon, c.covariates, c.interval_lag, c.transform) != (
                first.horizon,
                first.covariates,
                first.interval_lag,
                first.transform,
            ):
                raise ValueError("ensemble members must share horizon, covariates, interval_lag and transform")
        self.members = nn.ModuleList(members)
        # What the whole graph declares: it needs the longest minimum and reads up to the longest window.
        self.config: ForecasterConfig = replace(
            first,
            input_window=max(m.config.input_window for m in members),
            min_window=max(m.config.min_window for m in members),
        )
        if not 1 <= naive_lag < self.config.min_window:
            raise ValueError(f"naive_lag {naive_lag} must be in [1, min_window={self.config.min_window})")
        self.naive_lag = naive_lag
        # A buffer, so it travels in the state dict (and the checkpoint) with the weights.
        self.register_buffer("naive_weight", torch.tensor(float(naive_weight)))

    @property
    def cell(self) -> str:
        cells = {m.config.cell for m in self.members}
        return cells.pop() if len(cells) == 1 else "mixed"

    def describe(self) -> list[dict[str, object]]:
        """The card's `members`: what each member is."""
        return [
            {
                "cell": m.config.cell,
                "input_window": m.config.input_window,
                "hidden_size": m.config.hidden_size,
                "patch_len": m.config.patch_len,
            }
            for m in self.members
        ]

    def member_forecasts(self, values: torch.Tensor, *covariates: torch.Tensor) -> torch.Tensor:
        """(N, B, H): every member's forecast from its own last `input_window` steps."""
        outs = []
        for m in self.members:
            w = m.config.input_window
            outs.append(m(values[:, -w:], *self._cut(covariates, w))[0])
        return torch.stack(outs)

    def _cut(self, covariates: tuple[torch.Tensor, ...], window: int) -> list[torch.Tensor]:
        """The covariate steps a member reads: past inputs cover the window, future and calendar the window and
        the horizon (contract.signature order)."""
        ahead = window + self.config.horizon
        cov = self.config.covariates
        roles = [role for role, names in (("past", cov.past), ("future", cov.future), ("cal", cov.calendar)) if names]
        return [c[:, -window:] if role == "past" else c[:, -ahead:] for role, c in zip(roles, covariates, strict=True)]

    def naive(self, values: torch.Tensor) -> torch.Tensor:
        """(B, H): the last `naive_lag` values repeated (naive for 1, seasonal naive for the season)."""
        lag, horizon = self.naive_lag, self.config.horizon
        return values[:, -lag:].repeat(1, -(-horizon // lag))[:, :horizon]

    def forward(self, values: torch.Tensor, *covariates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        forecasts = self.member_forecasts(values, *covariates)
        mean = median(forecasts)
        w = self.naive_weight
        return (1 - w) * mean + w * self.naive(values), self.members[0].interval_scale(values)


def median(stack: torch.Tensor) -> torch.Tensor:
    """Median over the first axis (the mean of the middle two for an even count), by a sort that exports to
    ONNX (TopK); torch.median's lower median would pick one member of two."""
    n = stack.shape[0]
    if n == 1:
        return stack[0]
    ordered = torch.sort(stack, dim=0).values
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def fit_naive_weight(
    forecasts: np.ndarray, naive: dict[str, np.ndarray], actuals: np.ndarray, scales: np.ndarray
) -> tuple[float, str, dict[str, float]]:
    """The weight w on the grid, and the naive kind, that minimise the validation MASE of
    (1 - w) x forecasts + w x naive; `scales` (N,) put each window on its series' MASE scale. Returns the
    MASE of each choice considered, so the run can say what the blend bought."""

    def mase(f: np.ndarray) -> float:
        return float(np.mean(np.mean(np.abs(actuals - f), axis=1) / scales))

    best = (0.0, NAIVE_KINDS[0], mase(forecasts))
    tried = {"model": best[2]}
    for kind, ref in naive.items():
        for w in WEIGHT_GRID[1:]:
            score = mase((1 - w) * forecasts + w * ref)
            tried[f"{kind} w={w:.2f}"] = score
            if score < best[2] - 1e-12:
                best = (float(w), kind, score)
    return best[0], best[1], tried


# What a run trains, evaluates and exports: one forecaster, or an ensemble of them.
AnyForecaster = Forecaster | Ensemble
