"""training.quantile_spread: factors on a quantile head's distances from its median, fitted so each quantile covers
its level on held-out windows, and the module that exports them inside the graph."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
import torch

from training import quantile_spread

LEVELS = [0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975]
MEDIAN = LEVELS.index(0.5)


def normal_head(n: int, horizon: int, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Medians 0 and the quantiles of N(0, sd) at LEVELS, for n windows."""
    z = np.asarray([NormalDist().inv_cdf(t) for t in LEVELS])
    return np.zeros((n, horizon)), np.broadcast_to(sd * z, (n, horizon, len(LEVELS))).copy()


def test_a_head_too_narrow_by_half_is_widened_to_cover_its_levels() -> None:
    rng = np.random.default_rng(0)
    median, head = normal_head(4000, 6, sd=1.0)
    targets = rng.normal(0, 2.0, size=(4000, 6))
    factors = quantile_spread.fit(median, head, targets, LEVELS, MEDIAN)
    assert factors.shape == (6, len(LEVELS))
    assert np.all(factors[:, MEDIAN] == 1.0)
    off_median = np.delete(factors, MEDIAN, axis=1)
    np.testing.assert_allclose(off_median, 2.0, rtol=0.12)
    spread = quantile_spread.spread(median, head, factors, MEDIAN)
    covered = quantile_spread.coverage(spread, targets, LEVELS)
    assert covered["central 80%"] == pytest.approx(0.8, abs=0.02)
    assert covered["central 95%"] == pytest.approx(0.95, abs=0.01)
    assert quantile_spread.coverage(head, targets, LEVELS)["central 80%"] < 0.55  # what it was before


def test_a_skewed_error_gets_different_factors_below_and_above_and_widths_follow_the_step() -> None:
    rng = np.random.default_rng(1)
    horizon = 40
    median, head = normal_head(3000, horizon, sd=1.0)
    growth = 1 + np.arange(horizon) / 10  # errors grow with the step; the head does not
    targets = rng.exponential(1.0, size=(3000, horizon)) * growth - np.log(2) * growth  # median 0, right-skewed
    factors = quantile_spread.fit(median, head, targets, LEVELS, MEDIAN)
    lo, hi = LEVELS.index(0.1), LEVELS.index(0.9)
    assert np.all(factors[:, hi] > factors[:, lo])  # a longer upper tail
    assert factors[-1, hi] > 3 * factors[0, hi]  # wider at the last step than at the first
    spread = quantile_spread.spread(median, head, factors, MEDIAN)
    for k, tau in enumerate(LEVELS):
        below = float(np.mean(targets <= spread[..., k]))
        assert below == pytest.approx(tau, abs=0.03), tau


def test_the_quantiles_stay_in_order_whatever_the_errors() -> None:
    rng = np.random.default_rng(2)
    median, head = normal_head(500, 10, sd=1.0)
    head *= rng.uniform(0.5, 1.5, size=(500, 10, 1))
    targets = rng.standard_t(2, size=(500, 10)) * 3 + 1.5  # biased, heavy-tailed
    factors = quantile_spread.fit(median, head, targets, LEVELS, MEDIAN)
    assert factors.min() >= quantile_spread.MIN_FACTOR and factors.max() <= quantile_spread.MAX_FACTOR
    spread = quantile_spread.spread(median, head, factors, MEDIAN)
    assert np.all(np.diff(spread, axis=-1) >= -1e-12)


def test_steps_with_too_few_held_out_values_keep_the_head_as_it_is() -> None:
    rng = np.random.default_rng(3)
    median, head = normal_head(100, 30, sd=1.0)
    targets = rng.normal(0, 3.0, size=(100, 30))
    targets[:, 10:] = np.nan  # no held-out window reaches past step 10
    factors = quantile_spread.fit(median, head, targets, LEVELS, MEDIAN)
    assert np.all(np.delete(factors[:4], MEDIAN, axis=1) > 2)  # the early steps see the wider errors
    np.testing.assert_array_equal(factors[14:], 1.0)  # beyond the pooled reach of the last observed step


def test_the_spread_module_keeps_the_median_and_the_unit_scales_the_rest_and_keeps_them_in_order() -> None:
    class Head(torch.nn.Module):
        config = type("Config", (), {"median_index": 2})()

        def forward(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            q = values[:, -1:, None] + torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).view(1, 1, 5).expand(-1, 4, -1)
            return q[..., 2], values.abs().mean(1), q

    factors = np.tile([1.5, 2.0, 1.0, 0.5, 0.1], (4, 1))  # 0.1 x 3 would fall inside 0.5 x 1: it is kept there
    wrapped = quantile_spread.Spread(Head(), factors)
    values = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    median, unit, quantiles = wrapped(values)
    plain = Head()(values)
    torch.testing.assert_close(median, plain[0])
    torch.testing.assert_close(unit, plain[1])
    want = values[:, -1:, None] + torch.tensor([-3.0, -2.0, 0.0, 0.5, 0.5]).view(1, 1, 5)
    torch.testing.assert_close(quantiles, want.expand(-1, 4, -1))
    in_numpy = quantile_spread.spread(plain[0].numpy(), plain[2].numpy(), factors, 2)
    np.testing.assert_allclose(quantiles.numpy(), in_numpy, rtol=1e-6)
