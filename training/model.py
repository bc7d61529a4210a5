"""The forecaster: a recurrent encoder (LSTM, GRU or a plain RNN, chosen by name) and a direct multi-horizon head.

Normalisation lives in `forward`, so the exported graph takes raw values and returns forecasts in the
original units. It is built to survive what users send: a constant window (scale floored), and huge
magnitudes (the window is first divided by its largest |value|, so no square or sum can overflow float32).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from training.fields import doc

CELLS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


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

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell {self.cell!r} is unknown; use one of {sorted(CELLS)}")
        if not 1 <= self.min_window <= self.input_window:
            raise ValueError(f"min_window {self.min_window} must be in [1, input_window={self.input_window}]")
        if not 1 <= self.interval_lag < self.min_window:
            raise ValueError(f"interval_lag {self.interval_lag} must be in [1, min_window={self.min_window})")
        if not 0 <= self.seasonal_skip <= self.min_window:
            raise ValueError(f"seasonal_skip {self.seasonal_skip} must be in [0, min_window={self.min_window}]")
        if self.horizon < 1 or self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError("horizon, hidden_size and num_layers must be >= 1")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# Floor of the per-window scale, relative to the window's largest |value|: a constant window gives a finite
# forecast (equal to the constant) instead of 0/0.
SCALE_FLOOR = 1e-4


class Forecaster(nn.Module):
    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        self.config = config
        rnn_cls = getattr(nn, CELLS[config.cell])
        self.rnn = rnn_cls(
            input_size=1,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(config.hidden_size, config.horizon)

    def normalize(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T) raw -> (B, T) normalised, plus loc (B, 1) and scale (B, 1) in raw units."""
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

    def forward_normalized(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forecast on the normalised scale: (B, H), with loc and scale (B, 1) to map it back."""
        x, loc, scale = self.normalize(values)
        out, _ = self.rnn(x.unsqueeze(-1))  # (B, T, hidden)
        y = self.head(out[:, -1])  # (B, H)
        if self.config.seasonal_skip:  # seasonal naive as the starting point (cf. ES-RNN, N-BEATS)
            season = self.config.seasonal_skip
            repeats = -(-self.config.horizon // season)
            y = y + x[:, -season:].repeat(1, repeats)[:, : self.config.horizon]  # (B, H)
        return y, loc, scale

    def forward(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) raw values -> forecast (B, H) in raw units and the interval scale (B,)."""
        y, loc, scale = self.forward_normalized(values)
        return y * scale + loc, self.interval_scale(values)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
