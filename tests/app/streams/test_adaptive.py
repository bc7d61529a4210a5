"""app.streams.adaptive: misses widen and hits narrow, within bounds, and the long-run share of misses is 1 - level
whatever the scale of the errors against the model's widths."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.streams import adaptive
from tests.markers import needs_training


def test_a_miss_widens_a_hit_narrows_and_nothing_checked_changes_nothing() -> None:
    assert adaptive.step(0.0, 80, 1, 1) == pytest.approx(adaptive.RATE * 0.8)
    assert adaptive.step(0.0, 80, 0, 1) == pytest.approx(-adaptive.RATE * 0.2)
    assert adaptive.step(0.3, 95, 0, 0) == 0.3
    assert adaptive.step(adaptive.BOUND, 95, 5, 5) == adaptive.BOUND
    assert adaptive.step(-adaptive.BOUND, 95, 0, 5) == -adaptive.BOUND


@pytest.mark.parametrize("true_scale", [0.3, 1.0, 4.0])
@pytest.mark.parametrize("level", [80.0, 95.0])
def test_the_share_of_misses_goes_to_one_minus_the_level(true_scale: float, level: float) -> None:
    # The model's widths say |error| < 1.28 covers 80% (a unit normal); the errors are `true_scale` times that.
    rng = np.random.default_rng(0)
    half = {80.0: 1.2816, 95.0: 1.96}[level]
    log_m, misses, n = 0.0, 0, 20_000
    for _ in range(n):
        errors = np.abs(rng.normal(0, true_scale, 6))  # one reading, six forecasts that predicted it
        miss = int(np.count_nonzero(errors > half * math.exp(log_m)))
        misses += miss
        log_m = adaptive.step(log_m, level, miss, len(errors))
    assert misses / (6 * n) == pytest.approx(1 - level / 100, abs=0.01)
    assert math.exp(log_m) == pytest.approx(true_scale, rel=0.35)


@needs_training
def test_the_benchmark_s_offline_replay_scores_what_a_live_stream_answers(repository: Path, tmp_path: Path) -> None:
    # bench.live_intervals picks the rate with an offline replay of forecasts from POST /forecast; it must
    # reproduce, to float32 rounding, the coverage of the answers a stream gives reading by reading.
    from bench.live_intervals import coverage_of, forecasts_of, replay

    rng = np.random.default_rng(8)
    t = np.arange(400)
    values = 50 + 10 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.5, len(t))  # widths far too wide at first
    window = 48
    with TestClient(create_app(Settings(model_repository=repository, state_dir=tmp_path))) as client:
        client.put("/streams/s", json={"model": "tiny", "level": [80, 95], "adaptive": True}).raise_for_status()
        backfill = {"values": values[:window].tolist(), "backfill": True}
        client.post("/streams/s/points", json=backfill).raise_for_status()
        answers = []
        for v in values[window:-1]:
            answer = client.post("/streams/s/points", json={"values": [float(v)]})
            answer.raise_for_status()
            answers.append(answer.json()["forecast"])
        live = coverage_of(answers, list(range(window + 1, len(values))), values, len(values))
        origins = np.arange(window + 1, len(values))
        mean, half = forecasts_of(client, "tiny", np.stack([values[o - window : o] for o in origins]))
    for level in ("80", "95"):
        offline = replay(values, origins, mean, half[level], float(level), adaptive.RATE)
        assert offline == pytest.approx(live[level], abs=0.003), level
    assert live["80"] < 0.95  # the widths did move: the model's alone covered everything here
