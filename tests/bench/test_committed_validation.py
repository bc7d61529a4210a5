"""bench.committed_validation: the fine-tuned base is scored on the pipeline model's own validation origins, and
each fine-tuning's settings keep their own run across invocations."""

from __future__ import annotations

import numpy as np

from bench.committed_validation import merge, validation_origins
from training.data import Series, windows


def test_the_fine_tuned_base_is_scored_on_the_pipeline_models_validation_origins() -> None:
    values = np.sin(np.arange(500) / 5.0)
    series = Series("s", values, train_end=300, val_end=400, test_end=500)
    for window in (48, 350):  # a window longer than the training split moves the first origin
        x, y = windows(series, "val", window, 24)
        origins = validation_origins(series, window, 24)
        assert len(origins) == len(x)
        np.testing.assert_array_equal(np.stack([values[o : o + 24] for o in origins]), y)
        np.testing.assert_array_equal(values[origins[0] - window : origins[0]], x[0])
        assert origins[-1] + 24 <= 400  # no target in the test split


def test_runs_with_other_settings_are_kept_and_the_lowest_mase_wins() -> None:
    def row(settings: str, mase: float) -> dict[str, object]:
        return {"mase": {"pipeline": 0.6, "base": 0.7}, "fine_tuned": [{"settings": settings, "mase": mase}]}

    first = merge({}, {"m": row("300 steps", 0.65)})
    assert first["m"]["winner"] == "pipeline"
    second = merge(first, {"m": row("600 steps", 0.55)})
    assert [r["settings"] for r in second["m"]["fine_tuned"]] == ["300 steps", "600 steps"]
    assert second["m"]["winner"] == "fine-tuned (600 steps)"
    again = merge(second, {"m": row("600 steps", 0.62)})  # the same settings rerun: its run is replaced
    assert len(again["m"]["fine_tuned"]) == 2 and again["m"]["winner"] == "pipeline"
