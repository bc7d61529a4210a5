"""The forecaster: a recurrent encoder (LSTM, GRU or a plain RNN, chosen by name) and a direct multi-horizon head.
More: docs/design.md#trainingmodel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from contract.covariates import Covariates
from training.fields import doc

CELLS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
TRANSFORMS = ("none", "log")


@dataclass
class ForecasterConfig:
    cell: str = doc("lstm", "recurrent cell: lstm, gru or rnn")
    hidden_size: int = doc(64, "units per recurrent layer")
    num_layers: int = doc(2, "stacked recurrent layers")
    dropout: float = doc(0.1, "dropout between recurrent layers (with 2 or more)")
    input_window: int = doc(168, "steps the model reads in training; longer series are cut to their last window")
    min_window: int = doc(48, "shortest series the served model accepts")
    horizon: int = doc(24, "steps forecast")
    interval_lag: int = doc(
        1, "the interval scale is the mean |y[t] - y[t-lag]| of the window: use the season for seasonal data"
    )
    seasonal_skip: int = doc(0, "> 0: the head predicts a correction to the last `seasonal_skip` values, repeated")
    patch_len: int = doc(
        1,
        "> 1: the encoder reads the window in segments of this many steps, one segment per recurrent step "
        "(SegRNN): a 336-step window of 24-step days is 14 recurrent steps, not 336; the oldest "
        "len % patch_len values are left out",
    )
    transform: str = doc(
        "none",
        "log: the network reads and forecasts log values (errors become relative, forecasts stay positive); "
        "every value in training and in a request must be > 0",
    )
    past_covariates: list[str] = doc(
        [], "columns known up to the forecast origin only (e.g. a sensor's other channels)"
    )
    future_covariates: list[str] = doc([], "columns known over the horizon too (a planned load, a holiday flag)")
    calendar: list[str] = doc([], "calendar features from the timestamps: hour_of_day, day_of_week, month_of_year")

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell {self.cell!r} is unknown; use one of {sorted(CELLS)}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform {self.transform!r} is unknown; use one of {list(TRANSFORMS)}")
        if not 1 <= self.min_window <= self.input_window:
            raise ValueError(f"min_window {self.min_window} must be in [1, input_window={self.input_window}]")
        if not 1 <= self.interval_lag < self.min_window:
            raise ValueError(f"interval_lag {self.interval_lag} must be in [1, min_window={self.min_window})")
        if not 0 <= self.seasonal_skip <= self.min_window:
            raise ValueError(f"seasonal_skip {self.seasonal_skip} must be in [0, min_window={self.min_window}]")
        if not 1 <= self.patch_len <= self.min_window:
            raise ValueError(f"patch_len {self.patch_len} must be in [1, min_window={self.min_window}]")
        if self.horizon < 1 or self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError("horizon, hidden_size and num_layers must be >= 1")
        _ = self.covariates  # raises CovariateError (a ValueError) naming a bad declaration

    @property
    def covariates(self) -> Covariates:
        return Covariates(tuple(self.past_covariates), tuple(self.future_covariates), tuple(self.calendar))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# Floor of the per-window scale, relative to the window's largest |value|: a constant window gives a finite
# forecast (equal to the constant) instead of 0/0.
SCALE_FLOOR = 1e-4
# The same for a covariate channel, higher: a flag that is 0 over the window and 1 ahead, or a channel that
# barely moves, stays within +-40 instead of exploding into a value the network never saw.
COVARIATE_SPREAD_FLOOR = 0.05


def normalize_channels(channels: torch.Tensor, past_steps: int) -> torch.Tensor:
    """(B, L, K) raw covariates -> normalised, with each channel's statistics from its first `past_steps`
    steps (the window; the rest are the horizon's) and its largest |value| over all L."""
    magnitude = channels.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)  # (B, 1, K)
    unit = channels / magnitude
    window = unit[:, :past_steps]
    loc = window.mean(dim=1, keepdim=True)
    spread = (window - loc).abs().mean(dim=1, keepdim=True).clamp_min(COVARIATE_SPREAD_FLOOR)
    return (unit - loc) / spread


class Forecaster(nn.Module):
    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        self.config = config
        rnn_cls = getattr(nn, CELLS[config.cell])
        cov = config.covariates
        self.ahead_channels = len(cov.future) + 2 * len(cov.calendar)  # per horizon step, into the head
        self.rnn = rnn_cls(
            input_size=config.patch_len * (1 + len(cov.past) + self.ahead_channels),
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(config.hidden_size + config.horizon * self.ahead_channels, config.horizon)

    def to_model_units(self, values: torch.Tensor) -> torch.Tensor:
        """Raw values -> the units the network works in (their log with transform = "log"). The clamp only
        keeps the graph finite: the server refuses values <= 0 for such a model before they get here."""
        return torch.log(values.clamp_min(1e-30)) if self.config.transform == "log" else values

    def from_model_units(self, values: torch.Tensor) -> torch.Tensor:
        return torch.exp(values) if self.config.transform == "log" else values

    def normalize(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T) raw -> (B, T) normalised, plus loc (B, 1) and scale (B, 1) in model units."""
        values = self.to_model_units(values)
        magnitude = values.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)  # (B, 1)
        unit = values / magnitude  # (B, T) in [-1, 1]
        loc = unit.mean(dim=1, keepdim=True)  # (B, 1)
        spread = (unit - loc).abs().mean(dim=1, keepdim=True).clamp_min(SCALE_FLOOR)  # (B, 1)
        return (unit - loc) / spread, loc * magnitude, spread * magnitude

    def interval_scale(self, values: torch.Tensor) -> torch.Tensor:
        """(B, T) raw -> (B,): mean |y_t - y_{t-lag}| of the window, the unit of the conformal widths.

        Local volatility tracks forecast error better than the level's spread (measured on ETTh1: test
        coverage 80.4%/96.3% for nominal 80/95, against 76.0/93.7 with the normalisation scale)."""
        lag = self.config.interval_lag
        magnitude = values.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)  # (B, 1)
        unit = values / magnitude
        step = (unit[:, lag:] - unit[:, :-lag]).abs().mean(dim=1, keepdim=True).clamp_min(SCALE_FLOOR)  # (B, 1)
        return (step * magnitude).squeeze(1)

    def forward_normalized(
        self, values: torch.Tensor, *covariates: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forecast on the normalised scale: (B, H), with loc and scale (B, 1) to map it back. `covariates`
        are the graph's covariate inputs in contract.signature order: past (B, T, P), future (B, T+H, F),
        calendar (B, T+H, 2C), each present when its role has names."""
        x, loc, scale = self.normalize(values)
        steps, ahead = self._covariate_steps(values.shape[1], covariates)
        out, _ = self.rnn(self._segments(torch.cat([x.unsqueeze(-1), *steps], dim=-1) if steps else x.unsqueeze(-1)))
        state = out[:, -1]
        if ahead:
            state = torch.cat([state, torch.cat(ahead, dim=-1).flatten(1)], dim=1)  # (B, hidden + H * ahead)
        y = self.head(state)  # (B, H)
        if self.config.seasonal_skip:  # seasonal naive as the starting point (cf. ES-RNN, N-BEATS)
            season = self.config.seasonal_skip
            repeats = -(-self.config.horizon // season)
            y = y + x[:, -season:].repeat(1, repeats)[:, : self.config.horizon]  # (B, H)
        return y, loc, scale

    def _segments(self, steps: torch.Tensor) -> torch.Tensor:
        """(B, T, K) -> (B, T // p, p * K): consecutive segments of p steps ending at the last step, the
        oldest T % p steps left out (T is the graph's dynamic time axis: the exporter traces the arithmetic)."""
        p = self.config.patch_len
        if p == 1:
            return steps
        kept = steps[:, steps.shape[1] % p :]
        return kept.reshape(kept.shape[0], -1, p * kept.shape[2])

    def _covariate_steps(
        self, t: int, covariates: tuple[torch.Tensor, ...]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The covariate channels of the T window steps (for the encoder) and of the H steps ahead (the head)."""
        cov = self.config.covariates
        inputs = iter(covariates)
        steps, ahead = [], []
        if cov.past:
            steps.append(normalize_channels(next(inputs), t))
        if cov.future:
            future = normalize_channels(next(inputs), t)
            steps.append(future[:, :t])
            ahead.append(future[:, t:])
        if cov.calendar:
            calendar = next(inputs)  # sines and cosines: already in [-1, 1]
            steps.append(calendar[:, :t])
            ahead.append(calendar[:, t:])
        if next(inputs, None) is not None:
            raise ValueError(f"more covariate inputs than the model declares ({cov.to_json()})")
        return steps, ahead

    def forward(self, values: torch.Tensor, *covariates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) raw values, and the covariate inputs -> forecast (B, H) in raw units and the interval scale (B,)."""
        y, loc, scale = self.forward_normalized(values, *covariates)
        return self.from_model_units(y * scale + loc), self.interval_scale(values)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
