"""A user's own data files: frequency and season inferred, gaps handled by policy, weekday calendars,
configurable splits, and a statistical baseline fitted on the history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contract.longformat import infer_freq
from training.baselines import _model, statistical_on_history
from training.config import RunConfig, SplitConfig, keys_table
from training.data import load_for, load_long, season_of


def write(tmp_path: Path, stamps: pd.DatetimeIndex, name: str = "data.csv", ids: int = 1) -> Path:
    rng = np.random.default_rng(0)
    frames = [
        pd.DataFrame(
            {
                "unique_id": f"s{i}",
                "ds": stamps,
                "y": 20 + 3 * np.sin(2 * np.pi * np.arange(len(stamps)) / 24) + rng.normal(0, 0.1, len(stamps)),
            }
        )
        for i in range(ids)
    ]
    path = tmp_path / name
    pd.concat(frames).to_csv(path, index=False)
    return path


HOURS = pd.date_range("2024-01-01", periods=24 * 30, freq="h")


@pytest.mark.parametrize(
    ("stamps", "freq"),
    [
        pytest.param(pd.bdate_range("2024-01-01", periods=80), "B", id="business-days"),
        pytest.param(pd.bdate_range("2024-01-01", periods=80).delete([7, 30]), "B", id="business-days-holidays"),
        pytest.param(HOURS.delete([5, 6, 100]), "h", id="hourly-with-gaps"),
        pytest.param(pd.date_range("2020-01-01", periods=40, freq="MS"), "MS", id="month-starts"),
        pytest.param(pd.date_range("2024-01-01", periods=200, freq="15min").delete([9]), "15min", id="quarter-hours"),
    ],
)
def test_the_frequency_is_inferred_from_imperfect_timestamps(stamps: pd.DatetimeIndex, freq: str) -> None:
    assert infer_freq(stamps) == freq


@pytest.mark.parametrize(
    ("freq", "season"),
    [("h", 24), ("15min", 96), ("30min", 48), ("D", 7), ("B", 5), ("W-SUN", 52), ("MS", 12), ("QS-JAN", 4), ("2D", 1)],
)
def test_the_season_follows_the_frequency(freq: str, season: int) -> None:
    assert season_of(freq) == season


def test_missing_hours_are_interpolated_and_counted(tmp_path: Path) -> None:
    dataset = load_long(write(tmp_path, HOURS.delete([100, 101, 102, 400])))
    assert (dataset.freq, dataset.season) == ("h", 24)
    assert dataset.info["filled"] == {"s0": 4}
    series = dataset.series[0]
    assert len(series.values) == len(HOURS) and np.isfinite(series.values).all()
    assert series.values[99] < series.values[100] < series.values[103] or series.values[99] > series.values[100]


def test_a_weekday_calendar_is_kept_and_only_real_gaps_filled(tmp_path: Path) -> None:
    weekdays = HOURS[HOURS.dayofweek < 5]
    dataset = load_long(write(tmp_path, weekdays.delete([10, 200])))
    assert dataset.info["weekdays_only"] is True
    assert dataset.info["filled"] == {"s0": 2}  # the two lost hours, not the 48 hours of every weekend
    assert len(dataset.series[0].values) == len(weekdays)


def test_gaps_can_be_kept_or_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HOURS.delete([100, 101]))
    assert len(load_long(path, gaps="keep").series[0].values) == len(HOURS) - 2
    with pytest.raises(ValueError, match=r"2 timestamps missing at frequency 'h' \(first: 2024-01-05 04:00:00\)"):
        load_long(path, gaps="refuse")


def test_business_day_data_is_accepted_as_it_comes(tmp_path: Path) -> None:
    dataset = load_long(write(tmp_path, pd.bdate_range("2023-01-02", periods=300).delete([15, 90])))
    assert (dataset.freq, dataset.season) == ("B", 5)
    assert dataset.info["filled"] == {"s0": 2}


def test_freq_and_season_in_the_config_override_the_inferred_ones(tmp_path: Path) -> None:
    path = write(tmp_path, HOURS)
    config = RunConfig(name="m", dataset=str(path), freq="h", season=168)
    assert load_for(config).season == 168


@pytest.mark.parametrize(
    ("split", "bounds"),
    [
        pytest.param(SplitConfig(), (504, 576, 720), id="default-70-10-20"),
        pytest.param(SplitConfig(val=48, test=48), (624, 672, 720), id="fixed-final-test-as-m4"),
        pytest.param(SplitConfig(val="2024-01-20", test="2024-01-25"), (456, 576, 720), id="dates"),
        pytest.param(SplitConfig(val=0.1, test=24, end="2024-01-26"), (516, 576, 600), id="end-date"),
        pytest.param(SplitConfig(val=24, test=24, end=100), (52, 76, 100), id="end-count"),
    ],
)
def test_the_split_takes_fractions_counts_dates_and_an_end(
    tmp_path: Path, split: SplitConfig, bounds: tuple[int, int, int]
) -> None:
    series = load_long(write(tmp_path, HOURS), split=split).series[0]
    assert (series.train_end, series.val_end, series.test_end) == bounds


def test_a_split_that_leaves_a_part_empty_names_the_series_and_the_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"series 's0' \(720 points.*train -144, validation 360 and test 504"):
        load_long(write(tmp_path, HOURS), split=SplitConfig(val=0.5, test=0.7))


def test_series_of_different_frequencies_need_freq_in_the_config(tmp_path: Path) -> None:
    hourly = pd.DataFrame({"unique_id": "a", "ds": HOURS[:100], "y": 1.0})
    daily = pd.DataFrame({"unique_id": "b", "ds": pd.date_range("2024-01-01", periods=100, freq="D"), "y": 1.0})
    pd.concat([hourly, daily]).to_csv(tmp_path / "mixed.csv", index=False)
    with pytest.raises(ValueError, match="different frequencies"):
        load_long(tmp_path / "mixed.csv")


def test_a_named_data_set_keeps_its_standard_split() -> None:
    config = RunConfig.from_dict({"name": "m", "dataset": "etth1", "split": {"test": 48}})
    with pytest.raises(ValueError, match="etth1 has its standard split"):
        load_for(config)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param({"name": "m", "dataset": "x.csv", "gap": "keep"}, "unknown key 'gap'", id="typo"),
        pytest.param({"name": "m", "dataset": "x.csv", "gaps": "fill"}, "gaps 'fill' is unknown", id="policy"),
        pytest.param({"name": "m"}, "['dataset'] must be set", id="missing"),
        pytest.param({"name": "m", "dataset": "x.csv", "split": {"tst": 1}}, "[split] unknown keys", id="section"),
    ],
)
def test_config_mistakes_are_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        RunConfig.from_dict(raw)


def test_every_config_key_is_documented() -> None:
    from dataclasses import fields

    from training.config import SECTIONS

    documented = {key for key, _, _ in keys_table()}
    for section, kind in SECTIONS:
        for f in fields(kind):
            if f.name == "source" or f.name in {s for s, _ in SECTIONS}:
                continue
            key = f"[{section}] {f.name}" if section else f.name
            assert key in documented, key


def test_the_statistical_baseline_sees_the_whole_history() -> None:
    """Fitted once on the history before the test split; at the fit's end its forecast is the fitted model's,
    and at later origins it uses the points after the fit too."""
    rng = np.random.default_rng(0)
    t = np.arange(24 * 40)
    history = 30 + 4 * np.sin(2 * np.pi * t / 24) + np.cumsum(rng.normal(0, 0.05, len(t)))
    fit_end = 24 * 30
    out = statistical_on_history(history, fit_end, np.array([fit_end, fit_end + 100]), 24, 24, "AutoETS")
    fitted = _model("AutoETS", 24).fit(history[:fit_end])
    np.testing.assert_allclose(out[0], fitted.predict(h=24)["mean"], rtol=1e-6)
    moved = history.copy()
    moved[fit_end:] += 50  # a level shift after the fit: the later origin must follow it
    shifted = statistical_on_history(moved, fit_end, np.array([fit_end + 100]), 24, 24, "AutoETS")
    assert shifted[0].mean() > out[1].mean() + 40


def test_a_long_history_keeps_the_seasonal_phase() -> None:
    """Applied to a bounded recent stretch, the fitted model must still pair each value with its seasonal state:
    the stretch starts on a season boundary of the series (a stretch starting mid-season gave a MASE near naive's)."""
    rng = np.random.default_rng(0)
    t = np.arange(24 * 120)
    history = 60 + 8 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.3, len(t))
    fit_end = 24 * 80
    origins = np.array([fit_end + 7, fit_end + 300, fit_end + 613])  # not on a season boundary
    forecasts = statistical_on_history(history, fit_end, origins, 24, 24, "AutoETS")
    actuals = np.stack([history[o : o + 24] for o in origins])
    assert np.abs(forecasts - actuals).mean() < 1.0  # the noise is 0.3; a misaligned season errs by several units
