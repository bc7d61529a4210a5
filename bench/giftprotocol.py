"""GIFT-Eval's protocol for the nine configurations rebuilt from ../shared/data (../shared/GIFT-EVAL.md): the
series of each configuration, its test windows, MASE and CRPS as the leaderboard computes them, the published
figures, and seasonal naive, which must reproduce the published column before any model is compared.

Data are arguments, not paths fixed here: an ETTm1-format CSV (a `date` column and one column per series at
15 minutes) and an M4-format folder (`Hourly-train.csv`, `Hourly-test.csv`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MAX_WINDOWS = 20


@dataclass(frozen=True)
class Config:
    name: str  # e.g. "ett1/H/medium"
    resolution: str  # "15T", "H", "D", "W" (ETT) or "M4H"
    horizon: int
    season: int  # the MASE lag m


CONFIGS = (
    Config("ett1/15T/short", "15T", 48, 96),
    Config("ett1/15T/medium", "15T", 480, 96),
    Config("ett1/15T/long", "15T", 720, 96),
    Config("ett1/H/short", "H", 48, 24),
    Config("ett1/H/medium", "H", 480, 24),
    Config("ett1/H/long", "H", 720, 24),
    Config("ett1/D/short", "D", 30, 1),
    Config("ett1/W/short", "W", 8, 1),
    Config("m4_hourly/H/short", "M4H", 48, 24),
)
BY_NAME = {c.name: c for c in CONFIGS}

# Published MASE / CRPS (leaderboard result files, snapshot 2026-08-07, as ../shared/GIFT-EVAL.md lists them).
# Foundation models answer zero-shot; PatchTST and N-BEATS were trained per dataset.
MODELS = ("Chronos-2", "TiRex", "TimesFM-2.5", "Moirai-2", "Toto-1.0", "PatchTST", "N-BEATS", "AutoETS", "AutoTheta")
ZERO_SHOT = ("Chronos-2", "TiRex", "TimesFM-2.5", "Moirai-2", "Toto-1.0")
_TABLE = """
ett1/15T/short    0.687 0.165 0.709 0.161 0.694 0.157 0.687 0.160 0.693 0.162 0.835 0.191 0.870 0.254 1.910 0.383 0.863 0.410 0.934 0.241
ett1/15T/medium   0.986 0.233 1.014 0.237 1.038 0.251 1.039 0.260 1.081 0.260 1.080 0.250 1.410 0.430 1.870 0.867 1.250 1.130 1.188 0.322
ett1/15T/long     1.013 0.241 1.020 0.234 1.060 0.255 1.067 0.268 1.069 0.251 1.100 0.247 1.420 0.431 2.200 1.050 1.760 1.390 1.191 0.340
ett1/H/short      0.787 0.171 0.817 0.176 0.839 0.188 0.836 0.185 0.865 0.194 0.893 0.190 0.930 0.249 1.940 0.440 1.280 0.668 0.977 0.240
ett1/H/medium     1.274 0.261 1.235 0.252 1.348 0.287 1.304 0.287 1.272 0.254 1.390 0.273 1.670 0.450 5.380 15.400 1.840 1.650 1.568 0.435
ett1/H/long       1.380 0.275 1.321 0.258 1.447 0.288 1.465 0.323 1.370 0.267 1.470 0.297 1.960 0.567 6.830 448.000 2.510 1.940 1.479 0.471
ett1/D/short      1.640 0.274 1.679 0.277 1.713 0.300 1.748 0.287 1.659 0.284 1.680 0.304 2.040 0.387 1.690 0.334 1.750 0.341 1.778 0.408
ett1/W/short      1.590 0.271 1.598 0.278 1.444 0.241 1.489 0.249 1.579 0.263 1.890 0.323 1.630 0.372 1.660 0.277 1.890 0.319 1.769 0.312
m4_hourly/H/short 0.788 0.023 0.722 0.020 0.734 0.024 0.809 0.024 0.861 0.035 1.400 0.039 1.340 0.050 1.610 0.070 2.460 0.041 1.193 0.038
"""  # noqa: E501


def _published() -> dict[str, dict[str, tuple[float, float]]]:
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for line in _TABLE.strip().splitlines():
        name, *cells = line.split()
        pairs = [(float(cells[i]), float(cells[i + 1])) for i in range(0, len(cells), 2)]
        table[name] = dict(zip((*MODELS, "Seasonal naive"), pairs, strict=True))
    return table


PUBLISHED = _published()
PUBLISHED_SNAIVE_ND_H_SHORT = 0.2717  # the one ND GIFT-EVAL.md states to 4 decimals


# --- the series of each configuration ------------------------------------------------------------------


@dataclass
class Data:
    """The series of one resolution: ids, values (each 1-D float64) and, for ETT, their timestamps."""

    resolution: str
    freq: str | None  # pandas alias, None for M4 (no dates published)
    ids: list[str]
    values: list[np.ndarray]
    index: pd.DatetimeIndex | None = None


def ett_resolutions(csv: Path) -> dict[str, Data]:
    """The ETTm1 columns at 15 minutes as they are, and summed into hours, days (the last, incomplete day
    dropped) and weeks ending on Thursday (the last, incomplete week dropped: 103 whole weeks, which reproduce the
    published seasonal-naive MASE; GIFT-EVAL.md's "104" counts the partial one)."""
    frame = pd.read_csv(csv, parse_dates=["date"]).set_index("date").astype(np.float64)
    out = {"15T": _data("15T", "15min", frame)}
    hours = frame.resample("h").sum(min_count=4)
    full = frame.resample("h").count().min(axis=1) == 4
    out["H"] = _data("H", "h", hours[full])
    for res, alias, per in (("D", "D", 96), ("W", "W-THU", 96 * 7)):
        counts = frame.iloc[:, 0].resample(alias).count()
        sums = frame.resample(alias).sum()
        out[res] = _data(res, alias, sums[counts == per])
    return out


def _data(resolution: str, freq: str, frame: pd.DataFrame) -> Data:
    index = pd.DatetimeIndex(frame.index)
    if len(index) > 1 and not (index == pd.date_range(index[0], periods=len(index), freq=freq)).all():
        raise ValueError(f"ETT {resolution}: the rows are not one regular {freq} axis (a gap in the file?)")
    return Data(resolution, freq, [str(c) for c in frame.columns], [frame[c].to_numpy() for c in frame.columns], index)


def m4_hourly(folder: Path) -> tuple[Data, list[np.ndarray]]:
    """The 414 M4 Hourly series (train parts) and their official 48-hour tests."""
    train = pd.read_csv(folder / "Hourly-train.csv", index_col=0)
    test = pd.read_csv(folder / "Hourly-test.csv", index_col=0)
    ids = [str(i) for i in train.index]
    values = [row.dropna().to_numpy(dtype=np.float64) for _, row in train.iterrows()]
    tests = [test.loc[i].dropna().to_numpy(dtype=np.float64) for i in train.index]
    return Data("M4H", None, ids, values), tests


@dataclass
class Task:
    """One configuration's series with their test windows appended: `values[i][:origins[i][k]]` is what
    window k may read; its truth is the next `horizon` values."""

    config: Config
    data: Data
    values: list[np.ndarray]  # whole series (M4: train + test)
    origins: list[list[int]]

    @property
    def first_origin(self) -> int:
        """Everything before this index (the earliest first origin) is free for training and validation."""
        return min(o[0] for o in self.origins)


def validation_task(task: Task, cut: int) -> Task:
    """The same configuration's windows moved before `cut` (a model's training cut): as many per series as the
    test has, the last one ending at the cut, and nothing after the cut in the values. Choices are made here."""
    h = task.config.horizon
    values = [
        v[:cut] if task.data.resolution != "M4H" else v[: o[0]] for v, o in zip(task.values, task.origins, strict=True)
    ]
    origins = [[len(v) - (len(o) - k) * h for k in range(len(o))] for v, o in zip(values, task.origins, strict=True)]
    return Task(task.config, task.data, values, origins)


def windows_for(length: int, horizon: int) -> int:
    return min(MAX_WINDOWS, max(1, math.ceil(0.1 * length / horizon)))


def tasks(ett_csv: Path | None, m4_folder: Path | None) -> dict[str, Task]:
    """Every configuration whose data were given."""
    out: dict[str, Task] = {}
    ett = ett_resolutions(ett_csv) if ett_csv else {}
    m4 = m4_hourly(m4_folder) if m4_folder else None
    for config in CONFIGS:
        if config.resolution == "M4H":
            if m4 is None:
                continue
            data, tests = m4
            values = [np.concatenate([v, t]) for v, t in zip(data.values, tests, strict=True)]
            origins = [[len(v)] for v in data.values]
        else:
            if config.resolution not in ett:
                continue
            data = ett[config.resolution]
            values = data.values
            origins = []
            for v in values:
                n = windows_for(len(v), config.horizon)
                origins.append([len(v) - (n - k) * config.horizon for k in range(n)])
        out[config.name] = Task(config, data, values, origins)
    return out


# --- metrics ---------------------------------------------------------------------------------------------

Forecaster = Callable[[Task], list[list[dict[float, np.ndarray]]]]  # per series, per window: quantile -> (H,)


@dataclass
class Scores:
    mase: float
    crps: float
    nd: float  # of the median
    coverage: dict[int, float]  # interval level (80, 95 from the 0.1/0.9 and given quantiles) -> share inside


def score(task: Task, forecasts: list[list[dict[float, np.ndarray]]]) -> Scores:
    """MASE of the median, CRPS as the mean weighted quantile loss over QUANTILES (a forecast without them
    scores its median at every q: its ND), ND, and the coverage of the intervals the quantiles bound."""
    h, m = task.config.horizon, task.config.season
    mase: list[float] = []
    loss = dict.fromkeys(QUANTILES, 0.0)
    abs_error = abs_total = 0.0
    inside: dict[int, list[float]] = {80: [], 95: []}
    for values, origins, per_window in zip(task.values, task.origins, forecasts, strict=True):
        for origin, q in zip(origins, per_window, strict=True):
            y = values[origin : origin + h]
            past = values[:origin]
            scale = np.mean(np.abs(past[m:] - past[:-m]))
            median = q[0.5]
            mase.append(float(np.mean(np.abs(y - median)) / scale))
            abs_error += float(np.abs(y - median).sum())
            abs_total += float(np.abs(y).sum())
            for p in QUANTILES:
                e = y - q.get(p, median)
                loss[p] += float(np.maximum(p * e, (p - 1) * e).sum())
            for level, (lo, hi) in ((80, (0.1, 0.9)), (95, (0.025, 0.975))):
                if lo in q and hi in q:
                    inside[level].append(float(np.mean((y >= q[lo]) & (y <= q[hi]))))
    crps = float(np.mean([2 * loss[p] / abs_total for p in QUANTILES]))
    coverage = {k: float(np.mean(v)) for k, v in inside.items() if v}
    return Scores(float(np.mean(mase)), crps, abs_error / abs_total, coverage)


def seasonal_naive(task: Task) -> list[list[dict[float, np.ndarray]]]:
    """Repeat the last m values (m = 1: the last value), GIFT-Eval's seasonal naive."""
    h, m = task.config.horizon, task.config.season
    out = []
    for values, origins in zip(task.values, task.origins, strict=True):
        per = []
        for origin in origins:
            last = values[origin - m : origin]
            per.append({0.5: np.resize(last, h)})
        out.append(per)
    return out


def check_protocol(all_tasks: dict[str, Task]) -> dict[str, dict[str, float]]:
    """Seasonal naive on every configuration against the published MASE to 3 decimals, and ND 0.2717 on
    ett1/H/short to 4 (the one ND published; the seasonal-naive CRPS column is statsforecast's probabilistic
    version, not its ND); raises naming the first that differs."""
    found: dict[str, dict[str, float]] = {}
    for name, task in all_tasks.items():
        s = score(task, seasonal_naive(task))
        mase = PUBLISHED[name]["Seasonal naive"][0]
        found[name] = {"mase": s.mase, "nd": s.nd}
        if round(s.mase, 3) != mase:
            raise ValueError(
                f"{name}: seasonal naive scores MASE {s.mase:.4f}; GIFT-Eval publishes {mase:.3f}: the data "
                "or the windows differ from the protocol"
            )
        if name == "ett1/H/short" and round(s.nd, 4) != PUBLISHED_SNAIVE_ND_H_SHORT:
            raise ValueError(f"ett1/H/short: seasonal naive ND {s.nd:.4f}, published {PUBLISHED_SNAIVE_ND_H_SHORT}")
    return found


def geometric_ratio(figures: dict[str, float], baseline: dict[str, float]) -> float:
    """The geometric mean over configurations of figure / baseline's figure."""
    return float(np.exp(np.mean([np.log(figures[k] / baseline[k]) for k in figures])))
