from __future__ import annotations

import numpy as np
import pytest

from training import metrics as M


def test_point_metrics_against_hand_computed_values() -> None:
    y = np.array([1.0, 2.0, 4.0])
    f = np.array([2.0, 2.0, 1.0])
    assert M.mae(y, f) == pytest.approx(4 / 3)
    assert M.rmse(y, f) == pytest.approx(np.sqrt(10 / 3))
    # 200*1/3, 0, 200*3/5 -> mean
    assert M.smape(y, f) == pytest.approx((200 / 3 + 0 + 120) / 3)
    assert M.mase(y, f, scale=2.0) == pytest.approx(2 / 3)


def test_smape_counts_zero_over_zero_as_zero() -> None:
    assert M.smape(np.zeros(3), np.zeros(3)) == 0.0


def test_seasonal_naive_scale() -> None:
    x = np.array([1.0, 2.0, 4.0, 7.0])  # lag-2 differences: 3, 5
    assert M.seasonal_naive_scale(x, 2) == pytest.approx(4.0)


def test_acf_matches_definition() -> None:
    x = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    d = x - x.mean()
    assert M.acf(x, 1)[0] == pytest.approx(np.sum(d[1:] * d[:-1]) / np.sum(d * d))


def test_seasonality_test_on_clear_and_absent_seasonality() -> None:
    t = np.arange(24 * 20)
    assert M.seasonality_test(100 + 10 * np.sin(2 * np.pi * t / 24), 24)
    rng = np.random.default_rng(0)
    assert not M.seasonality_test(100 + rng.normal(size=len(t)), 24)
    assert not M.seasonality_test(np.arange(60.0), 24)  # shorter than 3 seasons


def test_naive2_reproduces_a_purely_multiplicative_season() -> None:
    pattern = np.array([0.8, 1.0, 1.2, 1.0])
    x = np.tile(pattern, 30) * 50.0
    x = x + np.random.default_rng(1).normal(0, 1e-6, len(x))  # keep the ACF defined
    forecast = M.naive2_forecast(x, 6, 4)
    np.testing.assert_allclose(forecast, np.resize(pattern, 6) * 50.0, rtol=1e-4)


def test_naive2_without_seasonality_is_naive() -> None:
    x = np.random.default_rng(0).normal(10, 1, 200)
    np.testing.assert_array_equal(M.naive2_forecast(x, 5, 24), np.full(5, x[-1]))


def test_seasonal_indices_follow_r_decompose() -> None:
    # ppy=4, 3 cycles: trend via the (0.5,1,1,1,0.5)/4 filter, ratios averaged per position, normalised.
    x = np.array([10, 20, 30, 40, 12, 22, 32, 42, 14, 24, 34, 44], dtype=float)
    w = np.array([0.5, 1, 1, 1, 0.5]) / 4
    trend = np.full(12, np.nan)
    for i in range(2, 10):
        trend[i] = np.sum(w * x[i - 2 : i + 3])
    ratio = x / trend
    fig = np.array([np.nanmean(ratio[i::4]) for i in range(4)])
    fig /= fig.mean()
    np.testing.assert_allclose(M.seasonal_indices(x, 4), np.resize(fig, 12))


def test_owa_uses_subset_averages() -> None:
    assert M.owa({"smape": 10.0, "mase": 1.0}, {"smape": 20.0, "mase": 4.0}) == pytest.approx(0.375)


def test_m4_scores_average_per_series_scores() -> None:
    ins = [np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])]
    act = np.array([[4.0], [8.0]])
    fc = np.array([[3.0], [8.0]])
    s = M.m4_scores(ins, act, fc, 1)
    assert s["mase"] == pytest.approx((1 / 1 + 0 / 2) / 2)
    assert s["smape"] == pytest.approx((200 / 7 + 0) / 2)


@pytest.mark.data
def test_m4_hourly_benchmarks_match_the_official_table() -> None:
    from training.data import load_m4_hourly

    ds = load_m4_hourly()
    ins = [s.values[: s.val_end] for s in ds.series]
    act = np.stack([s.values[s.val_end :] for s in ds.series])
    official = {"naive1": (43.003, 11.608), "snaive": (13.912, 1.193), "naive2": (18.383, 2.395)}
    forecasts = {
        "naive1": [M.naive_forecast(x, 48) for x in ins],
        "snaive": [M.seasonal_naive_forecast(x, 48, 24) for x in ins],
        "naive2": [M.naive2_forecast(x, 48, 24) for x in ins],
    }
    for name, (smape, mase) in official.items():
        got = M.m4_scores(ins, act, np.stack(forecasts[name]), 24)
        assert round(got["smape"], 3) == smape, name
        assert round(got["mase"], 3) == mase, name


def test_z_scaled_errors_use_each_series_own_training_std() -> None:
    from training.evaluate import point_metrics

    actual = np.array([[1.0, 2.0], [1000.0, 2000.0]])
    forecast = actual * 1.1  # the same relative error on a small and a large series
    z_std = np.array([[1.0], [1000.0]])
    scores = point_metrics(actual, forecast, scales=np.ones(2), z_std=z_std)
    assert scores["mse_z"] == pytest.approx((0.01 + 0.04) / 2)
    assert scores["mae_z"] == pytest.approx((0.1 + 0.2) / 2)
