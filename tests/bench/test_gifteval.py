"""GIFT-Eval's protocol (bench.giftprotocol): windows, metrics and the seasonal-naive check on the real data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench import giftprotocol as protocol
from training.data import data_dir

ETT = data_dir() / "ett" / "ETTm1.csv.gz"


def synthetic_task(horizon: int = 8, season: int = 4, n: int = 200, noise: float = 0.0) -> protocol.Task:
    config = protocol.Config("synthetic/short", "H", horizon, season)
    rng = np.random.default_rng(0)
    values = [10 + np.sin(2 * np.pi * np.arange(n) / season) * (1 + i) + noise * rng.normal(size=n) for i in range(3)]
    windows = protocol.windows_for(n, horizon)
    origins = [[n - (windows - k) * horizon for k in range(windows)] for _ in values]
    return protocol.Task(config, protocol.Data("H", "h", ["a", "b", "c"], values), values, origins)


def test_the_window_count_follows_the_published_rule() -> None:
    # 15T short/medium/long 20/15/10, H 20/4/3, D 3, W 2 (GIFT-EVAL.md)
    counts = [protocol.windows_for(69680, h) for h in (48, 480, 720)]
    counts += [protocol.windows_for(17420, h) for h in (48, 480, 720)]
    assert counts + [protocol.windows_for(725, 30), protocol.windows_for(103, 8)] == [20, 15, 10, 20, 4, 3, 3, 2]


def test_a_perfect_forecast_scores_zero_and_seasonal_naive_one_season_ahead_on_a_trend_scores_one() -> None:
    task = synthetic_task(horizon=4, season=4, noise=0.3)
    h = task.config.horizon
    truth = [[{0.5: v[o : o + h]} for o in origins] for v, origins in zip(task.values, task.origins, strict=True)]
    perfect = protocol.score(task, truth)
    assert perfect.mase == 0 and perfect.crps == 0
    # y = 0.5 t + season: every in-sample seasonal difference and every error one season ahead is 0.5 x 4
    trend = [0.5 * np.arange(len(v)) + np.tile([1.0, 3.0, 2.0, 5.0], len(v) // 4) for v in task.values]
    task = protocol.Task(task.config, task.data, trend, task.origins)
    assert protocol.score(task, protocol.seasonal_naive(task)).mase == pytest.approx(1.0)


def test_crps_of_a_point_forecast_is_its_nd_and_quantiles_that_cover_score_lower() -> None:
    task = synthetic_task(noise=0.5)
    h = task.config.horizon
    point = [
        [{0.5: np.full(h, v[o - 1])} for o in origins] for v, origins in zip(task.values, task.origins, strict=True)
    ]
    s = protocol.score(task, point)
    assert s.crps == pytest.approx(s.nd)
    spread = [[{q: f[0.5] + (q - 0.5) * 4 for q in (*protocol.QUANTILES, 0.025, 0.975)} for f in per] for per in point]
    wide = protocol.score(task, spread)
    assert wide.mase == pytest.approx(s.mase) and wide.crps < s.crps
    assert set(wide.coverage) == {80, 95} and 0 <= wide.coverage[80] <= wide.coverage[95] <= 1


def test_the_geometric_ratio_of_the_published_models_matches_the_published_aggregate() -> None:
    names = [c.name for c in protocol.CONFIGS]
    naive = {n: protocol.PUBLISHED[n]["Seasonal naive"] for n in names}
    tirex_mase = protocol.geometric_ratio(
        {n: protocol.PUBLISHED[n]["TiRex"][0] for n in names}, {n: naive[n][0] for n in names}
    )
    tirex_crps = protocol.geometric_ratio(
        {n: protocol.PUBLISHED[n]["TiRex"][1] for n in names}, {n: naive[n][1] for n in names}
    )
    # the published cells are rounded to 3 decimals, so the aggregate is reproduced to about that
    assert tirex_mase == pytest.approx(0.820, abs=0.002) and tirex_crps == pytest.approx(0.665, abs=0.002)


def test_weekly_sums_end_on_thursday_and_drop_the_incomplete_week(tmp_path) -> None:
    stamps = pd.date_range("2016-07-01", periods=96 * 7 * 3 + 96 * 2, freq="15min")  # 3 whole weeks + 2 days
    frame = pd.DataFrame({"date": stamps, "x": 1.0})
    path = tmp_path / "ettm.csv"
    frame.to_csv(path, index=False)
    data = protocol.ett_resolutions(path)
    assert list(data["W"].values[0]) == [672.0] * 3 and data["W"].index[0] == pd.Timestamp("2016-07-07")
    assert len(data["D"].values[0]) == 23 and len(data["H"].values[0]) == 23 * 24


@pytest.mark.data
def test_seasonal_naive_reproduces_the_published_mase_of_all_nine() -> None:
    tasks = protocol.tasks(data_dir() / "ett" / "ETTm1.csv.gz", data_dir() / "m4")
    found = protocol.check_protocol(tasks)  # raises, naming the configuration, on any difference
    assert len(found) == 9 and round(found["ett1/H/short"]["nd"], 4) == protocol.PUBLISHED_SNAIVE_ND_H_SHORT


def test_the_weekly_training_file_holds_every_day_offset_and_nothing_from_the_test_windows(tmp_path) -> None:
    from bench import gifteval

    stamps = pd.date_range("2016-07-01", periods=96 * 7 * 40, freq="15min")  # 40 whole weeks from a Friday
    ramp = np.arange(len(stamps), dtype=np.float64)
    path = tmp_path / "ettm.csv"
    pd.DataFrame({"date": stamps, "x": ramp}).to_csv(path, index=False)
    tasks = {n: t for n, t in protocol.tasks(path, None).items() if n == "ett1/W/short"}
    first = tasks["ett1/W/short"].first_origin  # 40 weeks, one window of 8: 32
    written = pd.read_csv(gifteval.training_file("gifteval-ett1-w", "W", tasks, path, tmp_path), parse_dates=["ds"])
    assert sorted(written.unique_id.unique()) == ["x", *(f"x+{k}D" for k in range(1, 7))]
    base = written[written.unique_id == "x"]
    assert len(base) == first and base.y.iloc[0] == ramp[: 96 * 7].sum()
    shifted = written[written.unique_id == "x+3D"]
    assert shifted.y.iloc[0] == ramp[96 * 3 : 96 * 10].sum() and list(shifted.ds) == list(base.ds[: len(shifted)])
    # no offset period reaches the first test window's first value
    last_row = 96 * 3 + 96 * 7 * len(shifted)
    assert last_row <= first * 96 * 7


def test_validation_windows_end_at_the_cut_and_hold_nothing_after_it() -> None:
    task = synthetic_task(horizon=8, n=200)
    cut = task.first_origin - 5
    val = protocol.validation_task(task, cut)
    assert [len(v) for v in val.values] == [cut] * 3  # the values after the cut are gone, not only unread
    for origins, test_origins in zip(val.origins, task.origins, strict=True):
        assert len(origins) == len(test_origins)
        assert origins[-1] + task.config.horizon == cut and np.all(np.diff(origins) == task.config.horizon)
    np.testing.assert_array_equal(val.values[1], task.values[1][:cut])


@pytest.mark.data
def test_a_model_fine_tuned_from_the_base_reads_only_what_precedes_its_earliest_test_window(
    tmp_path, monkeypatch
) -> None:
    from bench import gifteval
    from contract.card import ModelCard
    from training.finetune import read_card

    tasks = protocol.tasks(ETT, None)
    monkeypatch.setitem(gifteval.FINETUNED, "gifteval-ett1-15t", gifteval.Recipe(3, 1, "per step"))
    monkeypatch.setitem(gifteval.FINETUNED, "gifteval-ett1-h-d", gifteval.Recipe(3, 1, None, gifteval.ALL_ETT))
    for folder in ("models", "runs", "reports"):
        (tmp_path / folder).mkdir()
    records = {}
    for name in ("gifteval-ett1-15t", "gifteval-ett1-h-d"):
        seconds = gifteval.finetune_model(name, tasks, tmp_path)
        card: ModelCard = read_card(tmp_path / "models" / name / "1" / "model.onnx")
        assert card.extra["finetune.base_model"] == "gatecast-base" and card.quantile_levels
        assert (tmp_path / "runs" / name / "checkpoint.pt").exists()
        assert not (tmp_path / "models" / name / "1" / "checkpoint.pt").exists()
        records[name] = json.loads((tmp_path / "reports" / name / "metrics.json").read_text())
        assert records[name]["training"]["seconds"] == pytest.approx(seconds, abs=0.1)
        assert records[name]["finetune"]["steps"] == 3 and records[name]["finetune"]["depth"] == 1
        assert ("quantile_spread" in card.extra) == (name == "gifteval-ett1-15t")  # the recipe's spread, in the graph
    own = records["gifteval-ett1-15t"]["training"]  # its resolution's 7 channels, up to its earliest test window
    assert own["cut"] == min(tasks[c].first_origin for c in tasks if c.startswith("ett1/15T/")) and own["series"] == 7
    joint = records["gifteval-ett1-h-d"]["training"]  # every resolution, up to the earliest hourly or daily window
    answered = [tasks[c] for c in ("ett1/H/short", "ett1/H/medium", "ett1/H/long", "ett1/D/short")]
    assert pd.Timestamp(joint["cut"]) == min(t.data.index[t.first_origin] for t in answered)
    assert joint["series"] == 28


def test_the_spread_is_fitted_on_windows_that_end_before_the_first_test_window(monkeypatch) -> None:
    from bench import gifteval, spread_validation

    tasks = protocol.tasks(ETT, None)
    answered = {c: tasks[c] for c in ("ett1/H/short", "ett1/H/medium", "ett1/H/long")}
    seen: dict[str, int] = {}
    fit = spread_validation.fit

    def spy(validation, found, levels, keep=None, per_step=True):  # type: ignore[no-untyped-def]
        for name, task in validation.items():
            seen[name] = max(o[-1] + task.config.horizon for o in task.origins)
        return fit(validation, found, levels, keep, per_step)

    monkeypatch.setattr(spread_validation, "fit", spy)
    factors = gifteval.validation_spread(answered, gifteval.Recipe(2, 1, "per step"))
    assert factors.shape == (720, 13) and set(seen) == set(answered)
    for name, end in seen.items():
        assert end <= answered[name].first_origin, name  # the last validation value precedes the test windows
