"""bench.spread_validation: a quantile spread cross-fitted on validation windows, on a small quantile model
(tests/fixtures tinyq) and synthetic series."""

from __future__ import annotations

import numpy as np
import pytest

from bench import giftprotocol as protocol
from bench import spread_validation
from tests.build_fixtures import TINYQ


def noisy_task(horizon: int, noise: float, windows: int = 6, n: int = 600) -> protocol.Task:
    config = protocol.Config(f"synthetic/{horizon}", "H", horizon, 24)
    rng = np.random.default_rng(horizon)
    values = [
        50 + 10 * np.sin(2 * np.pi * np.arange(n) / 24) + noise * rng.normal(size=n).cumsum() / 4 for _ in range(5)
    ]
    origins = [[n - (windows - k) * horizon for k in range(windows)] for _ in values]
    return protocol.Task(config, protocol.Data("H", "h", [str(i) for i in range(5)], values), values, origins)


@pytest.fixture(scope="module")
def tasks() -> dict[str, protocol.Task]:
    return {"short": noisy_task(12, 3.0), "long": noisy_task(48, 3.0, windows=3)}


def test_heads_answer_every_window_at_every_level(tasks: dict[str, protocol.Task]) -> None:
    found, levels = spread_validation.heads(TINYQ, tasks)
    assert levels[len(levels) // 2] == 0.5
    for name, task in tasks.items():
        assert len(found[name]) == len(task.values)
        for rows, origins in zip(found[name], task.origins, strict=True):
            assert len(rows) == len(origins)
            assert all(q.shape == (task.config.horizon, len(levels)) for q in rows)


def test_the_factors_cover_the_longest_horizon_and_each_half_differs_from_the_whole(
    tasks: dict[str, protocol.Task],
) -> None:
    found, levels = spread_validation.heads(TINYQ, tasks)
    whole = spread_validation.fit(tasks, found, levels)
    even = spread_validation.fit(tasks, found, levels, keep=0)
    odd = spread_validation.fit(tasks, found, levels, keep=1)
    assert whole.shape == even.shape == (48, len(levels))
    assert np.all(whole[:, levels.index(0.5)] == 1.0)
    assert not np.allclose(even, odd)  # fitted on different windows
    flat = spread_validation.fit(tasks, found, levels, per_step=False)
    assert np.all(flat == flat[0])  # one factor per level, whatever the step


def test_cross_fitted_scores_keep_the_median_and_report_both_kinds(tasks: dict[str, protocol.Task]) -> None:
    found = spread_validation.cross_fitted(TINYQ, tasks)
    for name in tasks:
        per = found["configs"][name]
        assert set(per) == {"as is", "spread per step", "spread per level"}
        for kind in ("spread per step", "spread per level"):
            assert per[kind]["mase"] == pytest.approx(per["as is"]["mase"])  # the median is never moved
            assert set(per[kind]["coverage"]) == {"80", "95"}
    assert set(found["factors"]) == {"per step", "per level"}
