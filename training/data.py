"""Datasets with their standard splits, and user data in the long format.

Every dataset becomes a `Dataset`: one or more 1-D series, each with split borders. Windows for a split
take their targets strictly inside that split; their inputs may reach back into earlier rows (the
Informer/DLinear convention), never forward. Statistics (the z-score used for the published ETT metrics,
the MASE scale) are fitted on the training rows only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from contract.longformat import read_long_csv, split_long_frame


def data_dir() -> Path:
    """`GATECAST_DATA_DIR`, else `../shared/data` beside the project when it exists."""
    env = os.environ.get("GATECAST_DATA_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if candidate.exists():
            return candidate
    return here.parent / "shared" / "data"


@dataclass
class Series:
    """One series and its split borders: train [0, train_end), val [train_end, val_end), test [val_end, test_end)."""

    id: str
    values: np.ndarray  # float64
    train_end: int
    val_end: int
    test_end: int
    start: pd.Timestamp | None = None

    def split(self, name: str) -> tuple[int, int]:
        return {
            "train": (0, self.train_end),
            "val": (self.train_end, self.val_end),
            "test": (self.val_end, self.test_end),
        }[name]


@dataclass
class Dataset:
    name: str
    target: str
    freq: str
    season: int
    series: list[Series]
    description: str = ""
    info: dict[str, object] = field(default_factory=dict)


def windows(series: Series, split: str, window: int, horizon: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (N, window) and targets (N, horizon) whose targets lie inside `split`."""
    lo, hi = series.split(split)
    first = max(lo, window)  # first forecast origin: the first target index
    origins = np.arange(first, hi - horizon + 1, stride)
    if len(origins) == 0:
        return np.empty((0, window)), np.empty((0, horizon))
    x = np.stack([series.values[t - window : t] for t in origins])
    y = np.stack([series.values[t : t + horizon] for t in origins])
    return x, y


def mase_scale(series: Series, season: int) -> float:
    """In-sample seasonal-naive MAE over the training rows (the MASE denominator)."""
    train = series.values[: series.train_end]
    return float(np.mean(np.abs(train[season:] - train[:-season])))


# --- the datasets in the shared data folder ------------------------------------------------------------


def _ett(file: str, freq: str, season: int, factor: int, root: Path) -> Dataset:
    frame = pd.read_csv(root / "ett" / file, parse_dates=["date"])
    values = frame["OT"].to_numpy(dtype=np.float64)
    borders = (8640 * factor, 11520 * factor, 14400 * factor)
    series = Series("OT", values, *borders, start=frame["date"].iloc[0])
    return Dataset(
        file.split(".")[0].lower(),
        "OT",
        freq,
        season,
        [series],
        "ETT-small oil temperature (OT), Informer split 12/4/4 months",
    )


def load_etth1(root: Path | None = None) -> Dataset:
    return _ett("ETTh1.csv", "h", 24, 1, root or data_dir())


def load_ettm1(root: Path | None = None) -> Dataset:
    return _ett("ETTm1.csv.gz", "15min", 96, 4, root or data_dir())


def _chronological(n: int) -> tuple[int, int, int]:
    """70/10/20 split (Autoformer/DLinear `Dataset_Custom`)."""
    train = int(n * 0.7)
    test = int(n * 0.2)
    return train, n - test, n


def load_vix(root: Path | None = None) -> Dataset:
    frame = pd.read_csv((root or data_dir()) / "stocks" / "vix-daily.csv", parse_dates=["DATE"])
    values = frame["CLOSE"].to_numpy(dtype=np.float64)
    series = Series("VIX", values, *_chronological(len(values)), start=frame["DATE"].iloc[0])
    # Trading days: "B" (business days) is the nearest pandas alias; exchange holidays are not modelled.
    return Dataset("vix", "CLOSE", "B", 1, [series], "CBOE VIX daily close, 70/10/20 split")


def load_exchange(root: Path | None = None) -> Dataset:
    frame = pd.read_csv((root or data_dir()) / "exchange_rate" / "exchange_rate.txt.gz", header=None)
    borders = _chronological(len(frame))
    series = [Series(f"rate{i}", frame[i].to_numpy(dtype=np.float64), *borders) for i in frame.columns]
    return Dataset("exchange", "rate", "D", 1, series, "8 daily exchange rates (LSTNet), 70/10/20 split")


def _read_m4(path: Path) -> dict[str, np.ndarray]:
    frame = pd.read_csv(path, index_col=0)
    return {str(i): row.dropna().to_numpy(dtype=np.float64) for i, row in frame.iterrows()}


def load_m4_hourly(root: Path | None = None) -> Dataset:
    """M4 Hourly: the last 48 training points of each series are the validation split; test is official."""
    root = (root or data_dir()) / "m4"
    train = _read_m4(root / "Hourly-train.csv")
    test = _read_m4(root / "Hourly-test.csv")
    series = []
    for sid, values in train.items():
        full = np.concatenate([values, test[sid]])
        series.append(Series(sid, full, len(values) - 48, len(values), len(full)))
    return Dataset("m4_hourly", "y", "h", 24, series, "M4 Hourly, 414 series, official test horizon 48")


def load_long(path: str | Path, test_size: float = 0.2, val_size: float = 0.1) -> Dataset:
    """User data in the long format `unique_id, ds, y` (CSV or Parquet), split chronologically per series."""
    path = Path(path)
    frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else read_long_csv(path.read_bytes())
    parsed = split_long_frame(frame)
    freqs = {s.freq for s in parsed}
    only = freqs.pop() if len(freqs) == 1 else None
    freq = only or "h"
    series = []
    for s in parsed:
        n = len(s.values)
        test = int(n * test_size)
        val = int(n * val_size)
        series.append(Series(s.id, s.values, n - test - val, n - test, n, start=s.timestamps[0]))
    return Dataset(path.stem, "y", freq, 1, series, f"user data from {path.name}")


LOADERS = {
    "etth1": load_etth1,
    "ettm1": load_ettm1,
    "vix": load_vix,
    "exchange": load_exchange,
    "m4_hourly": load_m4_hourly,
}


def load(name: str, root: Path | None = None) -> Dataset:
    """A named dataset, or a long-format file when `name` is a path."""
    if name in LOADERS:
        return LOADERS[name](root)
    if Path(name).suffix in (".csv", ".parquet", ".pq"):
        return load_long(name)
    raise ValueError(f"dataset {name!r} is unknown; use one of {sorted(LOADERS)} or a .csv/.parquet path")
