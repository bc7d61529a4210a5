"""Datasets with their standard splits, and user data in the long format.

Every dataset becomes a `Dataset`: one or more 1-D series, each with split borders. Windows for a split
take their targets strictly inside that split; their inputs may reach back into earlier rows (the
Informer/DLinear convention), never forward. Statistics (the z-score used for the published ETT metrics,
the MASE scale) are fitted on the training rows only.
"""

from __future__ import annotations

import collections
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from contract.covariates import Covariates, calendar_for, calendar_matrix
from contract.longformat import REQUIRED_COLUMNS, LongSeries, read_long_csv, split_long_frame
from training.config import RunConfig, SplitConfig

log = logging.getLogger("gatecast.data")


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
    timestamps: pd.DatetimeIndex | None = None  # one per value, where the data has dates
    covariates: dict[str, np.ndarray] = field(default_factory=dict)  # column -> float64, aligned with values

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


def covariate_windows(
    series: Series, split: str, window: int, horizon: int, cov: Covariates, stride: int = 1
) -> list[np.ndarray]:
    """The covariate inputs (contract.signature order) of the windows `windows` makes for the same arguments:
    past (N, window, P), future (N, window + horizon, F), calendar (N, window + horizon, 2C)."""
    if cov.empty:
        return []
    lo, hi = series.split(split)
    origins = np.arange(max(lo, window), hi - horizon + 1, stride)
    inputs = []
    for names, ahead in ((cov.past, 0), (cov.future, horizon)):
        if names:
            table = np.stack([series.covariates[n] for n in names], axis=1)  # (len, K)
            inputs.append(_stack(table, origins, window, ahead))
    if cov.calendar:
        assert series.timestamps is not None  # check_covariates refused data without dates
        inputs.append(_stack(calendar_matrix(series.timestamps, cov.calendar), origins, window, horizon))
    return inputs


def _stack(table: np.ndarray, origins: np.ndarray, window: int, ahead: int) -> np.ndarray:
    if len(origins) == 0:
        return np.empty((0, window + ahead, table.shape[1]))
    return np.stack([table[t - window : t + ahead] for t in origins])


def check_covariates(dataset: Dataset, cov: Covariates) -> None:
    """Raise ValueError naming a covariate the data lacks, or calendar features the data cannot carry."""
    for series in dataset.series:
        missing = [n for n in cov.observed if n not in series.covariates]
        if missing:
            have = sorted(series.covariates) or "none"
            raise ValueError(f"{dataset.name} series {series.id!r} has no column {missing}; its covariates: {have}")
    if cov.calendar:
        undated = [s.id for s in dataset.series if s.timestamps is None]
        if undated:
            raise ValueError(
                f"{dataset.name} has no timestamps (series {undated[0]!r}): calendar features need dates; "
                "remove `calendar` from [model]"
            )
        allowed = calendar_for(dataset.freq)
        unfit = [c for c in cov.calendar if c not in allowed]
        if unfit:
            raise ValueError(
                f"calendar features {unfit} do not vary at frequency {dataset.freq!r}; it allows {list(allowed)}"
            )


def mase_scale(series: Series, season: int) -> float:
    """In-sample seasonal-naive MAE over the training rows (the MASE denominator)."""
    train = series.values[: series.train_end]
    return float(np.mean(np.abs(train[season:] - train[:-season])))


# --- the datasets in the shared data folder ------------------------------------------------------------


def _ett(file: str, freq: str, season: int, factor: int, root: Path) -> Dataset:
    frame = pd.read_csv(root / "ett" / file, parse_dates=["date"])
    values = frame["OT"].to_numpy(dtype=np.float64)
    borders = (8640 * factor, 11520 * factor, 14400 * factor)
    loads = {c: frame[c].to_numpy(dtype=np.float64) for c in ETT_LOADS}  # covariates a config may name
    stamps = pd.DatetimeIndex(frame["date"])
    series = Series("OT", values, *borders, start=stamps[0], timestamps=stamps, covariates=loads)
    return Dataset(
        file.split(".")[0].lower(),
        "OT",
        freq,
        season,
        [series],
        "ETT-small oil temperature (OT), Informer split 12/4/4 months",
    )


ETT_LOADS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL")  # high/middle/low useful and useless load


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
    prices = {c: frame[c].to_numpy(dtype=np.float64) for c in ("OPEN", "HIGH", "LOW")}
    stamps = pd.DatetimeIndex(frame["DATE"])
    series = Series("VIX", values, *_chronological(len(values)), start=stamps[0], timestamps=stamps, covariates=prices)
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


def check_positive(dataset: Dataset) -> None:
    """A log model reads log values: refuse, naming the first series, data with a value <= 0."""
    for series in dataset.series:
        bad = np.flatnonzero(~(series.values > 0))
        if len(bad):
            raise ValueError(
                f'series {series.id!r}: value {int(bad[0])} is {series.values[bad[0]]}; [model] transform = "log" '
                'needs every value > 0 (shift the series, or use transform = "none")'
            )


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


def load_long(
    path: str | Path,
    freq: str | None = None,
    season: int | None = None,
    split: SplitConfig | None = None,
    gaps: str = "interpolate",
    covariates: Covariates | None = None,
) -> Dataset:
    """User data in the long format `unique_id, ds, y` (CSV or Parquet), with the covariate columns the model
    declares (other columns are not read).

    The frequency is inferred from the timestamps unless given (business days are recognised), the season from
    the frequency unless given; missing timestamps are handled by `gaps` (covariates alike); each series is split
    by `split`.
    """
    path = Path(path)
    frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else read_long_csv(path.read_bytes())
    names = list(covariates.observed) if covariates is not None else []
    parsed = split_long_frame(frame, freq=freq, allow_gaps=True, covariates=names)
    freq = freq or _common_freq(parsed)
    split = split or SplitConfig()
    # Weekends absent from every series are the data's calendar (a plant, a market), not gaps to invent.
    weekdays = _weekday_only(parsed) and any(len(s.timestamps) and _spans_a_weekend(s.timestamps) for s in parsed)
    series, filled = [], {}
    points = 0
    for s in parsed:
        # Values and covariates as one table, so cutting and filling treat every column alike.
        table = np.column_stack([s.values, *(s.covariates[n] for n in names)])
        stamps, table = _cut_end(s.timestamps, table, split.end)
        absent = _missing(s.id, stamps, freq, weekdays) if gaps != "keep" else pd.DatetimeIndex([])
        points += len(stamps) + len(absent)
        stamps, table = _fill(s.id, stamps, table, freq, absent, gaps)
        if len(absent):
            filled[s.id] = len(absent)
        train_end, val_end = split_points(s.id, stamps, split)
        extra = {n: table[:, 1 + i] for i, n in enumerate(names)}
        series.append(
            Series(
                s.id, table[:, 0], train_end, val_end, len(table), start=stamps[0], timestamps=stamps, covariates=extra
            )
        )
    unread = [str(c) for c in frame.columns if c not in REQUIRED_COLUMNS and c not in names]
    _report_once(path, freq, weekdays, sum(filled.values()), points, unread)
    season = season or season_of(freq)
    info: dict[str, object] = {"gaps": gaps, "filled": filled, "weekdays_only": weekdays}
    return Dataset(path.stem, "y", freq, season, series, f"user data from {path.name}", info)


def season_of(freq: str) -> int:
    """Steps in the natural cycle of a frequency: a day for sub-daily data, a week for days (5 for business
    days), a year for weeks, months and quarters; 1 when there is none."""
    offset = pd.tseries.frequencies.to_offset(freq)
    name = offset.name
    if isinstance(offset, pd.offsets.Tick) and offset.nanos < pd.Timedelta(days=1).value:
        day = pd.Timedelta(days=1).value
        return day // offset.nanos if day % offset.nanos == 0 else 1
    if name == "B":
        return 5 if offset.n == 1 else 1
    if name == "D":
        return 7 if offset.n == 1 else 1
    per_year = {"W": 52, "MS": 12, "ME": 12, "M": 12, "BMS": 12, "BME": 12, "QS": 4, "QE": 4, "Q": 4, "BQS": 4}
    base = name.split("-")[0]
    return per_year.get(base, 1) // offset.n if offset.n and per_year.get(base, 1) % offset.n == 0 else 1


def _common_freq(parsed: list[LongSeries]) -> str:
    freqs = collections.Counter(s.freq for s in parsed if s.freq)
    if not freqs:
        raise ValueError("the frequency of the data could not be inferred (series shorter than 3 points?): set `freq`")
    if len(freqs) > 1:
        raise ValueError(f"the series have different frequencies {dict(freqs)}: set `freq` in the config")
    return next(iter(freqs))


def _cut_end(
    stamps: pd.DatetimeIndex, values: np.ndarray, end: int | str | None
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    if end is None:
        return stamps, values
    stop = end if isinstance(end, int) and not isinstance(end, bool) else int(stamps.searchsorted(_stamp(end, stamps)))
    return stamps[:stop], values[:stop]


def _missing(series_id: str, stamps: pd.DatetimeIndex, freq: str, weekdays: bool) -> pd.DatetimeIndex:
    """Timestamps of the data's calendar (the frequency's, on weekdays only when `weekdays`) between the series'
    first and last point that it lacks."""
    if len(stamps) < 2:
        return pd.DatetimeIndex([], tz=stamps.tz)
    calendar = pd.date_range(stamps[0], stamps[-1], freq=freq)
    if weekdays:
        calendar = calendar[calendar.dayofweek < 5]
    off_grid = stamps.difference(calendar)
    if len(off_grid):
        raise ValueError(
            f"series {series_id!r}: timestamp {off_grid[0]} is not on the {freq!r} calendar starting at {stamps[0]}; "
            'set `freq` to the data\'s, or `gaps = "keep"` to use the points as they are'
        )
    return calendar.difference(stamps)


def _fill(
    series_id: str, stamps: pd.DatetimeIndex, values: np.ndarray, freq: str, absent: pd.DatetimeIndex, gaps: str
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """The series with its missing timestamps interpolated (linearly), or refused."""
    if not len(absent):
        return stamps, values
    if gaps == "refuse":
        raise ValueError(
            f"series {series_id!r}: {len(absent)} timestamps missing at frequency {freq!r} (first: {absent[0]}); "
            'fill them, or set `gaps = "interpolate"` or `"keep"`'
        )
    calendar = stamps.union(absent)
    filled = pd.DataFrame(values, index=stamps).reindex(calendar).interpolate(method="linear", limit_direction="both")
    return calendar, filled.to_numpy(dtype=np.float64)


_REPORTED: set[tuple[str, int]] = set()  # (file, filled): each data file's gaps are reported once per process


def _report_once(path: Path, freq: str, weekdays: bool, filled: int, points: int, unread: list[str]) -> None:
    if (str(path), filled) in _REPORTED:
        return
    _REPORTED.add((str(path), filled))
    if unread:
        log.info(
            "%s: column%s %s not read: no [model] past_covariates or future_covariates names %s",
            path.name,
            "s" if len(unread) > 1 else "",
            ", ".join(unread),
            "them" if len(unread) > 1 else "it",
        )
    if weekdays:
        log.info("%s: no series has a weekend point: the calendar is weekdays, weekends are not filled", path.name)
    if filled:
        share = filled / points
        log.log(
            logging.WARNING if share > 0.1 else logging.INFO,
            "%s: %d of %d timestamps (%.1f%%) were missing at frequency %r and were interpolated%s",
            path.name,
            filled,
            points,
            100 * share,
            freq,
            '; if they are the data\'s calendar, set gaps = "keep"' if share > 0.1 else "",
        )


def _spans_a_weekend(stamps: pd.DatetimeIndex) -> bool:
    return bool(stamps[-1] - stamps[0] >= pd.Timedelta(days=7))


def _weekday_only(parsed: list[LongSeries]) -> bool:
    """Every series has points on weekdays only (a calendar without weekends, not scattered gaps)."""
    return all(bool((s.timestamps.dayofweek < 5).all()) for s in parsed)


def split_points(series_id: str, stamps: pd.DatetimeIndex, split: SplitConfig) -> tuple[int, int]:
    """(train_end, val_end) for one series: where validation and test begin."""
    n = len(stamps)
    test_start = _boundary(split.test, stamps, n, n)
    val_start = _boundary(split.val, stamps, n, test_start)
    if not 0 < val_start < test_start < n:
        raise ValueError(
            f"series {series_id!r} ({n} points, {stamps[0]} to {stamps[-1]}): the split gives train {val_start}, "
            f"validation {test_start - val_start} and test {n - test_start} points; each needs at least one. "
            "Adjust [split] val and test"
        )
    return val_start, test_start


def _boundary(value: float | int | str, stamps: pd.DatetimeIndex, n: int, before: int) -> int:
    """Index where a split begins: a fraction of the series, a count of points before `before`, or a timestamp."""
    if isinstance(value, bool):
        raise ValueError(f"[split] {value!r} is not a fraction, a count or a timestamp")
    if isinstance(value, float):
        if not 0 < value < 1:
            raise ValueError(f"[split] fraction {value} must be between 0 and 1")
        return before - int(round(n * value, 9))  # 720 * 0.7 is 503.99999999999994, and means 504
    if isinstance(value, int):
        return before - value
    return int(stamps.searchsorted(_stamp(value, stamps)))


def _stamp(value: object, stamps: pd.DatetimeIndex) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(str(value))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"[split] {value!r} is not a timestamp: {exc}") from None
    if stamps.tz is not None and stamp.tzinfo is None:
        stamp = stamp.tz_localize(stamps.tz)
    return stamp


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


def load_for(config: RunConfig) -> Dataset:
    """The data set of a run: a named one with its standard split, or a file with the run's freq, season,
    split and gap policy. `freq` and `season` override a named data set's own."""
    if config.dataset in LOADERS:
        if config.split is not None:
            where = config.source or config.name
            raise ValueError(f"{where}: {config.dataset} has its standard split; [split] applies to data files")
        dataset = LOADERS[config.dataset](None)
        dataset.freq = config.freq or dataset.freq
        dataset.season = config.season or dataset.season
        return dataset
    if Path(config.dataset).suffix not in (".csv", ".parquet", ".pq"):
        return load(config.dataset)  # raises, naming the data sets there are
    return load_long(config.dataset, config.freq, config.season, config.split, config.gaps, config.model.covariates)
