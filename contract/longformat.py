"""The user-facing long format `unique_id, ds, y` (NeuralForecast / TimeGPT), read into checked series. More:
docs/design.md#contractlongformat.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("unique_id", "ds", "y")
# pandas' default missing-value markers, applied to y only: an id or a timestamp is never read as missing.
_MISSING = ["", "#N/A", "#NA", "-NaN", "-nan", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


class LongFormatError(ValueError):
    """A `unique_id, ds, y` table that cannot be used as it is; the message names the column, row or id."""


def read_long_csv(source: bytes | str | IO[bytes] | IO[str]) -> pd.DataFrame:
    """A long-format CSV as pandas writes it, with `unique_id` kept as text.

    pandas would read `007` as 7 and `NA` as NaN, merging different ids into one series.
    """
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        return pd.read_csv(
            handle,
            dtype={"unique_id": str},
            keep_default_na=False,
            na_values={"y": _MISSING},
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LongFormatError(f"the CSV could not be parsed: {exc}") from exc


@dataclass(frozen=True)
class LongSeries:
    id: str
    timestamps: pd.DatetimeIndex
    values: np.ndarray  # float64, oldest first
    freq: str | None  # pandas alias inferred from the timestamps; None for a series too short to tell
    covariates: dict[str, np.ndarray] = field(default_factory=dict)  # column -> float64, aligned with values
    future: dict[str, np.ndarray] = field(default_factory=dict)  # column -> its values in the rows ahead


def split_long_frame(
    frame: pd.DataFrame,
    freq: str | None = None,
    allow_gaps: bool = False,
    future_rows: bool = False,
    covariates: Sequence[str] | None = None,
) -> list[LongSeries]:
    """Check a long-format frame and split it into series, in order of first appearance, with the covariate
    columns named in `covariates` (None: every column beyond unique_id, ds and y).

    Raises LongFormatError for missing columns, unparseable or unsorted timestamps, duplicate timestamps
    within a series, non-numeric or non-finite values, and (unless `allow_gaps`) missing timestamps.
    """
    if covariates is not None:
        absent = [c for c in covariates if c not in frame.columns]
        if absent:
            raise LongFormatError(f"covariate columns {absent} are missing (the table has {list(frame.columns)})")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise LongFormatError(
            f"columns {missing} are missing; the long format needs columns unique_id, ds, y (got {list(frame.columns)})"
        )
    if frame.empty:
        raise LongFormatError("the table has no rows; send at least one series")
    ids = frame["unique_id"].astype(str)
    empty = ids.str.len() == 0
    if empty.any():
        raise LongFormatError(f"column unique_id: row {int(np.flatnonzero(empty.to_numpy())[0])} is empty")
    try:
        with warnings.catch_warnings():  # "could not infer format": dateutil parses each value, which is fine
            warnings.simplefilter("ignore", UserWarning)
            ds = pd.to_datetime(frame["ds"], utc=False)
    except (ValueError, TypeError, OverflowError) as exc:
        raise LongFormatError(
            f"column ds: timestamps could not be parsed ({exc}); use one time zone (or none) throughout, "
            "between 1677-09-22 and 2262-04-11"
        ) from exc
    if not pd.api.types.is_datetime64_any_dtype(ds):  # e.g. a mix of time zones is left as objects
        raise LongFormatError("column ds: timestamps mix time zones; use one time zone (or none) throughout")
    y = pd.to_numeric(frame["y"], errors="coerce")
    names = [c for c in frame.columns if c not in REQUIRED_COLUMNS] if covariates is None else list(covariates)
    # Without covariate columns there is nothing a row ahead could carry: an empty y is a missing value.
    ahead = _rows_ahead(ids, frame["y"]) if future_rows and names else np.zeros(len(frame), dtype=bool)
    columns = {str(c): _covariate_column(frame, c, ids, ahead) for c in names}
    y_values = y.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = (y.isna() | ~np.isfinite(y_values)) & ~ahead
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise LongFormatError(
            f"column y: row {row} (unique_id {ids.iloc[row]!r}) holds {frame['y'].iloc[row]!r}; "
            "every y must be a finite number"
        )
    out: list[LongSeries] = []
    for uid, index in ids.groupby(ids, sort=False).groups.items():
        stamps = pd.DatetimeIndex(ds.loc[index])
        if stamps.has_duplicates:
            dup = stamps[stamps.duplicated()][0]
            raise LongFormatError(f"unique_id {uid!r}: timestamp {dup} appears more than once")
        if not stamps.is_monotonic_increasing:
            raise LongFormatError(f"unique_id {uid!r}: timestamps in ds must be sorted ascending")
        series_freq = freq or infer_freq(stamps)
        if not allow_gaps and len(stamps) >= 3:
            step_freq = series_freq or _most_common_step(stamps)
            expected = pd.date_range(stamps[0], stamps[-1], freq=step_freq)
            if len(expected) != len(stamps):
                missing_at = expected.difference(stamps)
                first = missing_at[0] if len(missing_at) else "irregular spacing"
                raise LongFormatError(
                    f"unique_id {uid!r}: timestamps have gaps at frequency {step_freq!r} "
                    f"(first missing: {first}); fill or drop the gaps before sending"
                )
        rows = frame.index.get_indexer(index)
        seen, later = ~ahead[rows], ahead[rows]
        future = {name: column[rows][later] for name, column in columns.items()}
        if later.any() and not any(np.isfinite(v).any() for v in future.values()):
            raise LongFormatError(
                f"unique_id {uid!r}: {int(later.sum())} rows after the last y carry no covariate; rows ahead hold "
                "future covariates: fill them or remove the rows"
            )
        out.append(
            LongSeries(
                id=str(uid),
                timestamps=stamps[seen],
                values=y_values[rows][seen],
                freq=series_freq,
                covariates={name: column[rows][seen] for name, column in columns.items()},
                future={name: values for name, values in future.items() if np.isfinite(values).any()},
            )
        )
    return out


def _rows_ahead(ids: pd.Series, y: pd.Series) -> np.ndarray:
    """Rows after their series' last row with a `y`: the steps ahead (their `y` is empty)."""
    empty = y.isna().to_numpy() | (y.astype(str).str.strip() == "").to_numpy()
    has_y = pd.Series(~empty, index=y.index)
    seen_after = has_y[::-1].astype(int).groupby(ids[::-1], sort=False).cumsum()[::-1]  # y's from here to the end
    any_y = has_y.groupby(ids, sort=False).transform("any").to_numpy()  # a series without a y has no rows ahead
    return np.asarray(empty & (seen_after.to_numpy() == 0) & any_y)


def _covariate_column(frame: pd.DataFrame, column: object, ids: pd.Series, ahead: np.ndarray) -> np.ndarray:
    """A covariate column as float64: a finite number in every row with a `y`; empty (NaN) or a number ahead."""
    raw = frame[column]
    text = raw.astype(str).str.strip()
    empty = raw.isna().to_numpy() | text.isin(_MISSING).to_numpy()
    values = pd.to_numeric(raw.where(~empty), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    unreadable = ~empty & ~np.isfinite(values)
    missing = empty & ~ahead
    for bad, what in ((unreadable, "is not a finite number"), (missing, "is empty")):
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise LongFormatError(
                f"column {column}: row {row} (unique_id {ids.iloc[row]!r}) {what} ({raw.iloc[row]!r}); a covariate "
                "needs a finite number in every row with a y"
            )
    partial = ahead & empty
    if partial.any() and (ahead & ~empty).any():
        for uid in pd.unique(ids[ahead]):
            mine = ahead & (ids == uid).to_numpy()
            if (mine & empty).any() and (mine & ~empty).any():
                row = int(np.flatnonzero(mine & empty)[0])
                raise LongFormatError(
                    f"column {column}: row {row} (unique_id {uid!r}) is empty while other rows ahead of the last y "
                    "hold values; a future covariate needs a value in every row ahead"
                )
    return np.asarray(values, dtype=np.float64)


def infer_freq(stamps: pd.DatetimeIndex) -> str | None:
    """The series' pandas frequency alias, tolerant of a few missing points; None for fewer than 3 stamps.

    pandas infers only perfectly regular indexes. Otherwise the most common step is taken, and a daily step
    between weekdays only is business days ("B"), so a trading calendar is not mistaken for gappy daily data.
    """
    if len(stamps) < 3:
        return None
    try:
        alias = pd.infer_freq(stamps)
    except (TypeError, ValueError):
        alias = None
    if alias:
        return str(alias)
    step = _most_common_step(stamps)
    if step == pd.Timedelta(days=1) and bool((stamps.dayofweek < 5).all()):
        return "B"
    return str(pd.tseries.frequencies.to_offset(step).freqstr)


def _most_common_step(stamps: pd.DatetimeIndex) -> pd.Timedelta:
    steps = pd.Series(stamps[1:] - stamps[:-1])
    return pd.Timedelta(steps.mode().iloc[0])
