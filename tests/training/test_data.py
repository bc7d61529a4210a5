from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from contract.longformat import LongFormatError, split_long_frame
from training import data
from training.data import Series, windows


def make_series(n: int = 100) -> Series:
    return Series("s", np.arange(n, dtype=float), 60, 80, 100)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_window_targets_stay_inside_their_split(split: str) -> None:
    s = make_series()
    lo, hi = s.split(split)
    x, y = windows(s, split, window=10, horizon=5)
    assert len(y) > 0
    assert y.min() >= lo and y.max() < hi  # values equal their index
    # inputs end right before the first target: never any look-ahead
    np.testing.assert_array_equal(x[:, -1] + 1, y[:, 0])


def test_train_windows_never_touch_validation_rows() -> None:
    s = make_series()
    x, y = windows(s, "train", window=10, horizon=5)
    assert max(x.max(), y.max()) < s.train_end


def test_val_windows_may_look_back_into_train_but_targets_start_at_border() -> None:
    s = make_series()
    x, y = windows(s, "val", window=10, horizon=5)
    assert y[0, 0] == s.train_end
    assert x[0, 0] == s.train_end - 10
    assert y[-1, -1] == s.val_end - 1


def test_stride_and_count() -> None:
    s = make_series()
    _, y = windows(s, "test", window=10, horizon=5, stride=3)
    assert list(y[:, 0]) == list(range(80, 96, 3))


def test_mase_scale_uses_training_rows_only() -> None:
    values = np.concatenate([np.arange(60.0), np.full(40, 1e6)])
    s = Series("s", values, 60, 80, 100)
    assert data.mase_scale(s, 1) == pytest.approx(1.0)


@pytest.mark.data
def test_etth1_standard_split() -> None:
    ds = data.load_etth1()
    s = ds.series[0]
    assert (s.train_end, s.val_end, s.test_end) == (8640, 11520, 14400)
    assert len(s.values) == 17420


@pytest.mark.data
def test_m4_hourly_layout() -> None:
    ds = data.load_m4_hourly()
    assert len(ds.series) == 414
    assert all(s.test_end - s.val_end == 48 and s.val_end - s.train_end == 48 for s in ds.series)


@pytest.mark.data
@pytest.mark.parametrize("name", ["ettm1", "vix", "exchange"])
def test_other_loaders_split_chronologically(name: str) -> None:
    ds = data.load(name)
    for s in ds.series:
        assert 0 < s.train_end < s.val_end < s.test_end <= len(s.values)


def long_frame(**overrides: object) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "unique_id": ["a"] * 4 + ["b"] * 3,
            "ds": list(pd.date_range("2024-01-01", periods=4, freq="h"))
            + list(pd.date_range("2024-01-01", periods=3, freq="h")),
            "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        }
    )
    for key, value in overrides.items():
        frame[key] = value
    return frame


def test_long_format_splits_series_and_infers_freq() -> None:
    series = split_long_frame(long_frame())
    assert [s.id for s in series] == ["a", "b"]
    assert series[0].freq == "h"
    np.testing.assert_array_equal(series[1].values, [5.0, 6.0, 7.0])


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        pytest.param(long_frame().drop(columns=["y"]), "columns ['y'] are missing", id="missing-column"),
        pytest.param(long_frame(y=[1.0, 2.0, "x", 4.0, 5.0, 6.0, 7.0]), "row 2", id="non-numeric"),
        pytest.param(long_frame(y=[1.0, 2.0, float("inf"), 4.0, 5.0, 6.0, 7.0]), "finite", id="infinite"),
        pytest.param(long_frame().iloc[[1, 0, 2, 3, 4, 5, 6]], "sorted", id="unsorted"),
        pytest.param(long_frame().iloc[[0, 0, 1, 2, 4, 5, 6]], "more than once", id="duplicate"),
        pytest.param(long_frame().drop(index=[2]), "gaps", id="gap"),
        pytest.param(long_frame(ds=["x"] * 7), "could not be parsed", id="bad-timestamp"),
    ],
)
def test_long_format_errors_say_what_to_fix(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(LongFormatError, match=re.escape(message)):
        split_long_frame(frame.reset_index(drop=True))


def test_load_long_reads_csv_and_parquet(tmp_path) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame(
        {"unique_id": "u", "ds": pd.date_range("2024-01-01", periods=50, freq="D"), "y": np.arange(50.0)}
    )
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_parquet(tmp_path / "a.parquet")
    for name in ("a.csv", "a.parquet"):
        ds = data.load_long(tmp_path / name)
        assert ds.freq == "D"
        s = ds.series[0]
        assert (s.train_end, s.val_end, s.test_end) == (35, 40, 50)
