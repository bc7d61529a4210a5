"""The base forecaster: a recurrent network over patches with a quantile head (TiRex and SegRNN's shape, small). More:
docs/design.md#trainingpatch_model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from contract.quantiles import DEFAULT_LEVELS, check_levels
from training.fields import doc

CELLS = {"lstm": "LSTM", "gru": "GRU"}
# The scale of the instance normalisation is at least this fraction of the window's largest |value|: a constant
# or near-constant series is forecast as its level instead of as noise blown up by 1/std.
SCALE_FLOOR = 1e-3


@dataclass
class PatchConfig:
    cell: str = doc("gru", "recurrent cell over the patches: gru or lstm")
    patch_len: int = doc(16, "steps per patch; the encoder runs once per patch")
    max_context: int = doc(512, "longest context the model reads; longer series are cut to their last values")
    min_context: int = doc(8, "shortest series the served model accepts")
    embed_size: int = doc(128, "width of a patch's embedding")
    hidden_size: int = doc(256, "units per recurrent layer")
    num_layers: int = doc(2, "stacked recurrent layers")
    dropout: float = doc(0.0, "dropout between recurrent layers and in the head")
    horizon: int = doc(720, "steps forecast directly")
    lags: list[int] = doc(
        [],
        "seasonal lags the head may copy: the forecast is a learned mix of the last value and each lag's seasonal "
        "naive forecast (the encoder picks the weights) plus the network's own quantiles around it; empty: none",
    )
    folds: int = doc(
        0,
        "past seasons averaged into a second, folded candidate per lag (2 and longer): the last season's level plus "
        "the mean seasonal shape of up to this many seasons; less noisy than one season's copy. 0: none",
    )
    fold_lags: list[int] = doc(
        [],
        "the lags folded, each one of lags (2 and longer); empty: every lag of 2 and longer. Fewer folded lags "
        "train faster: the folded candidates gather seasons x horizon values each",
    )
    fold_context: int = doc(
        0,
        "longest history the seasonal candidates read (the encoder reads max_context of it), so that a long season "
        "(a week at 15 minutes) can be folded; 0: max_context",
    )
    copy_features: bool = doc(
        False,
        "the encoder's state also reads, for each lag, how closely a copy at that lag matched the context (the log "
        "of its mean error on the normalised scale): a series that repeats its season exactly is told from one "
        "that nearly does, so its forecast can copy the season instead of adding the network's noise to it",
    )
    gate_edges: list[int] = doc(
        [],
        "horizon steps where the lag gate's mix may change: the steps before the first edge share one mix, those "
        "from it to the next another, and so on (near steps can copy the last value, far ones a season); empty: one "
        "mix for every step",
    )
    quantile_levels: list[float] = field(default_factory=lambda: list(DEFAULT_LEVELS))

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell {self.cell!r} is unknown; use one of {sorted(CELLS)}")
        if not 2 <= self.min_context <= self.max_context:
            raise ValueError(f"min_context {self.min_context} must be in [2, max_context={self.max_context}]")
        if self.max_context % self.patch_len:
            raise ValueError(f"max_context {self.max_context} must be a multiple of patch_len {self.patch_len}")
        check_levels(self.quantile_levels)
        if self.folds < 0 or self.folds == 1:
            raise ValueError(f"folds {self.folds} must be 0 (none) or at least 2 seasons")
        if self.folds and not self.folded_lags:
            raise ValueError("folds needs a lag of 2 or longer in lags")
        if self.fold_lags and (not self.folds or not set(self.fold_lags) <= {lag for lag in self.lags if lag >= 2}):
            raise ValueError(f"fold_lags {self.fold_lags} need folds and must be lags of 2 or longer")
        if self.fold_context and (self.fold_context < self.max_context or not self.lags):
            raise ValueError(f"fold_context {self.fold_context} needs lags and must be 0 or >= max_context")
        if self.copy_features and not self.lags:
            raise ValueError("copy_features needs lags")
        if self.gate_edges and (
            not self.lags
            or sorted(set(self.gate_edges)) != self.gate_edges
            or self.gate_edges[0] <= 0
            or self.gate_edges[-1] >= self.horizon
        ):
            raise ValueError(f"gate_edges {self.gate_edges} need lags and must ascend within (0, horizon)")

    @property
    def input_length(self) -> int:
        """The most values the model reads: the seasonal candidates' history, or the encoder's."""
        return max(self.fold_context, self.max_context)

    @property
    def folded_lags(self) -> list[int]:
        if not self.folds:
            return []
        return sorted(self.fold_lags) if self.fold_lags else [lag for lag in self.lags if lag >= 2]

    @property
    def median_index(self) -> int:
        return self.quantile_levels.index(0.5)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class PatchForecaster(nn.Module):
    def __init__(self, config: PatchConfig) -> None:
        super().__init__()
        self.config = config
        p, d, h = config.patch_len, config.embed_size, config.hidden_size
        self.embed_in = nn.Linear(2 * p, d)  # a patch's normalised values and its mask
        self.embed_mid = nn.Linear(d, d)
        self.embed_skip = nn.Linear(2 * p, d)
        self.rnn = getattr(nn, CELLS[config.cell])(
            input_size=d,
            hidden_size=h,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head_mid = nn.Linear(h, h)
        self.drop = nn.Dropout(config.dropout)
        q = len(config.quantile_levels)
        self.head_out = nn.Linear(h, config.horizon * q)  # per step: median, then the gaps below and above it
        if config.lags:  # per group of steps: a weight per lag, per folded lag, and one for "copy nothing"
            self.candidates = len(config.lags) + len(config.folded_lags) + 1
            self.lag_gate = nn.Linear(h, (len(config.gate_edges) + 1) * self.candidates)
            steps = torch.arange(config.horizon)
            self.register_buffer("lag_steps", torch.stack([steps % lag for lag in config.lags]), persistent=False)
            edges = torch.tensor(config.gate_edges, dtype=torch.long)
            self.register_buffer("step_group", torch.bucketize(steps, edges, right=True), persistent=False)
        if config.copy_features:  # per lag: the log of its copy's error, and whether it had two seasons to tell
            self.copy_in = nn.Linear(2 * len(config.lags), h)
        if config.folds:
            steps = torch.arange(config.horizon)
            self.register_buffer(
                "fold_steps", torch.stack([steps % lag for lag in config.folded_lags]), persistent=False
            )

    def normalize(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T) raw with NaN -> normalised values (0 where missing), the mask, loc and scale (B, 1)."""
        mask = ~torch.isnan(values)
        observed = mask.to(values.dtype)
        x = torch.where(mask, values, torch.zeros_like(values))
        magnitude = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)  # (B, 1): no square can overflow
        unit = x / magnitude
        count = observed.sum(dim=1, keepdim=True).clamp_min(1.0)
        loc = (unit * observed).sum(dim=1, keepdim=True) / count
        var = (((unit - loc) * observed) ** 2).sum(dim=1, keepdim=True) / count
        scale = var.clamp_min(0.0).sqrt().clamp_min(SCALE_FLOOR)
        z = (unit - loc) / scale * observed
        return z, observed, loc * magnitude, scale * magnitude

    def patches(self, z: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, N, 2P): left-padded (as missing) to whole patches, the most recent patch last."""
        p = self.config.patch_len
        t = z.shape[1]
        pad = (p - t % p) % p
        z = F.pad(z, (pad, 0))
        observed = F.pad(observed, (pad, 0))
        b = z.shape[0]
        return torch.cat([z.reshape(b, -1, p), observed.reshape(b, -1, p)], dim=-1)

    def forward_normalized(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T) raw, at most input_length -> quantiles (B, H, Q) on the normalised scale, with loc and scale (B, 1).
        The encoder reads the last max_context values; the seasonal candidates all of them."""
        z, observed, loc, scale = self.normalize(values[:, -self.config.max_context :])
        x = self.patches(z, observed)  # (B, N, 2P)
        e = self.embed_skip(x) + self.embed_mid(F.gelu(self.embed_in(x)))  # (B, N, D)
        out, _ = self.rnn(e)  # (B, N, H)
        state = out[:, -1]
        if self.config.copy_features:
            state = state + self.copy_in(self.copy_errors(z, observed))
        raw = self.head_out(self.drop(F.gelu(self.head_mid(state)) + state))
        raw = raw.reshape(raw.shape[0], self.config.horizon, -1)  # (B, H, Q)
        q = monotone(raw, self.config.median_index)
        if self.config.lags:
            if self.config.fold_context > self.config.max_context:
                z, observed = standardize(values, loc, scale)
            q = q + self.copied(z, observed, state).unsqueeze(-1)
        return q, loc, scale

    def copied(self, z: torch.Tensor, observed: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """(B, H): the mix of seasonal naive forecasts at each lag (the value `lag` steps before, repeated), weighted
        by the encoder; a lag longer than the context, or whose first value is missing, gets no weight."""
        lags = torch.tensor(self.config.lags, dtype=torch.long)  # (K,)
        length = torch.ones_like(z).sum(dim=1, keepdim=True).long()  # (B, 1) the context's length, as a tensor
        start = length.unsqueeze(1) - lags.view(1, -1, 1)  # (B, K, 1) where each lag's last season begins
        index = (start + self.lag_steps.unsqueeze(0)).clamp_min(0)  # (B, K, H)
        b, k, h = index.shape
        forecasts = torch.gather(z, 1, index.reshape(b, k * h)).reshape(b, k, h)  # (B, K, H)
        first = torch.gather(observed, 1, start.squeeze(-1).clamp_min(0))  # (B, K)
        valid = (start.squeeze(-1) >= 0).to(z.dtype) * first  # (B, K)
        if self.config.folds:
            folded, folded_valid = self.folded(z, observed)
            forecasts = torch.cat([forecasts, folded], dim=1)
            valid = torch.cat([valid, folded_valid], dim=1)
            k = forecasts.shape[1]
        logits = self.lag_gate(state).reshape(b, -1, self.candidates)  # (B, G, K + K' + 1)
        mask = torch.cat([valid, torch.ones_like(valid[:, :1])], dim=1).unsqueeze(1)
        weights = torch.softmax(logits.masked_fill(mask == 0, -1e4), dim=2)[:, self.step_group]  # (B, H, K + K' + 1)
        return (weights[:, :, :k] * forecasts.transpose(1, 2)).sum(dim=2)  # the last weight copies nothing

    def copy_errors(self, z: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """(B, 2K): for each lag, the log of the mean |z_t - z_(t-lag)| over the context's observed pairs (0 where
        it is not told), then 1 where at least `lag` pairs tell it (two whole seasons), else 0. Padded on the left
        and sliced by constants, so that the exported graph computes it at any length."""
        lags = self.config.lags
        pad = max(lags)
        zp, op = F.pad(z, (pad, 0)), F.pad(observed, (pad, 0))
        now, seen = zp[:, pad:], op[:, pad:]
        errors, told = [], []
        for lag in lags:
            pairs = seen * op[:, pad - lag : -lag]
            count = pairs.sum(dim=1, keepdim=True)
            error = ((now - zp[:, pad - lag : -lag]).abs() * pairs).sum(dim=1, keepdim=True) / count.clamp_min(1.0)
            counted = (count >= lag).to(z.dtype)
            errors.append(torch.log(error.clamp_min(1e-3)) * counted)
            told.append(counted)
        return torch.cat(errors + told, dim=1)

    def folded(self, z: torch.Tensor, observed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K', H) folded seasonal forecasts and (B, K') their validity: for each lag, the last season's mean
        level plus the mean over up to `folds` whole past seasons of each phase's deviation from its season's mean.
        A lag needs two whole seasons in the context; missing values count in no mean."""
        lags = torch.tensor(self.config.folded_lags, dtype=torch.long)  # (K',)
        seasons = torch.arange(1, self.config.folds + 1, dtype=torch.long)  # (C,)
        length = torch.ones_like(z).sum(dim=1, keepdim=True).long()  # (B, 1)
        # cumulative sums with a leading 0, so that a season's sum is the difference of two of them
        sums = F.pad(torch.cumsum(z * observed, dim=1), (1, 0))  # (B, T + 1)
        counts = F.pad(torch.cumsum(observed, dim=1), (1, 0))
        start = length.unsqueeze(1) - (seasons.view(1, -1) * lags.view(-1, 1)).unsqueeze(0)  # (B, K', C)
        b, k, c = start.shape
        whole = (start >= 0).to(z.dtype)  # (B, K', C) the season lies in the context
        begin = start.clamp_min(0).reshape(b, k * c)
        end = (start + lags.view(1, -1, 1)).clamp_min(0).reshape(b, k * c)
        season_sum = (torch.gather(sums, 1, end) - torch.gather(sums, 1, begin)).reshape(b, k, c)
        season_count = (torch.gather(counts, 1, end) - torch.gather(counts, 1, begin)).reshape(b, k, c)
        level = season_sum / season_count.clamp_min(1.0)  # (B, K', C)
        whole = whole * (season_count > 0).to(z.dtype)
        h = self.fold_steps.shape[1]
        index = (start.unsqueeze(-1) + self.fold_steps.view(1, k, 1, h)).clamp_min(0)  # (B, K', C, H)
        values = torch.gather(z, 1, index.reshape(b, k * c * h)).reshape(b, k, c, h)
        seen = torch.gather(observed, 1, index.reshape(b, k * c * h)).reshape(b, k, c, h) * whole.unsqueeze(-1)
        deviation = ((values - level.unsqueeze(-1)) * seen).sum(dim=2) / seen.sum(dim=2).clamp_min(1.0)  # (B, K', H)
        valid = whole[:, :, 1]  # two whole seasons, the last with a value
        return level[:, :, :1] + deviation, valid

    def forward(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T) raw -> forecast (B, H) (the median), the conformal unit (B,) and quantiles (B, H, Q), raw units."""
        values = values[:, -self.config.input_length :]
        q, loc, scale = self.forward_normalized(values)
        quantiles = q * scale.unsqueeze(-1) + loc.unsqueeze(-1)
        return quantiles[..., self.config.median_index], step_scale(values[:, -self.config.max_context :]), quantiles


def standardize(values: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) raw with NaN, and the encoder window's loc and scale -> values on that scale (0 where missing), mask."""
    mask = ~torch.isnan(values)
    z = torch.where(mask, (values - loc) / scale, torch.zeros_like(values))
    return z, mask.to(values.dtype)


def monotone(raw: torch.Tensor, median: int) -> torch.Tensor:
    """(B, H, Q) unconstrained -> quantiles ascending along Q: the median, then cumulative gaps |g| outwards. (The
    absolute value, not softplus: it is cheaper to serve, and any non-negative gap keeps the order.)"""
    centre = raw[..., median : median + 1]
    below = torch.flip(torch.cumsum(torch.flip(raw[..., :median], dims=[-1]).abs(), dim=-1), dims=[-1])
    above = torch.cumsum(raw[..., median + 1 :].abs(), dim=-1)
    return torch.cat([centre - below, centre, centre + above], dim=-1)


def step_scale(values: torch.Tensor) -> torch.Tensor:
    """(B, T) raw with NaN -> (B,): mean |y_t - y_{t-1}| over observed pairs, floored like the normalisation."""
    magnitude = torch.nan_to_num(values, nan=0.0).abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
    unit = values / magnitude
    diff = unit[:, 1:] - unit[:, :-1]
    ok = ~torch.isnan(diff)
    total = torch.where(ok, diff.abs(), torch.zeros_like(diff)).sum(dim=1, keepdim=True)
    mean = total / ok.to(values.dtype).sum(dim=1, keepdim=True).clamp_min(1.0)
    return (mean.clamp_min(SCALE_FLOOR) * magnitude).squeeze(1)


def pinball(q: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean quantile loss of (B, H, Q) against (B, H) where `weight` (B, H) is 1 (0: no target there)."""
    diff = target.unsqueeze(-1) - q  # (B, H, Q)
    loss = torch.maximum(levels * diff, (levels - 1) * diff).mean(dim=-1)  # (B, H)
    return (loss * weight).sum() / weight.sum().clamp_min(1.0)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
