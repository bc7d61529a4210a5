"""Input rules: what a model accepts as a window, and the lengths and batch sizes it must work at. More:
docs/design.md#contractwindows.
"""

from __future__ import annotations

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_ABS_VALUE = FLOAT32_MAX / 1e3  # headroom for normalisation and a forecast beyond the window's range
PROBE_BATCH_SIZES = (1, 5, 64)


def last_window(values: np.ndarray, trained: int) -> np.ndarray:
    """The part of a series the model reads: its last `trained` values (all of them when fewer)."""
    return values[-trained:]


def probe_lengths(min_window: int, trained_window: int) -> list[int]:
    """The declared range at its ends and its middle."""
    return sorted({min_window, (min_window + trained_window) // 2, trained_window})


def probe_batch(batch: int, length: int, seed: int = 0) -> np.ndarray:
    """Float32 windows (batch, length) of varied level, scale and shape: random walks around a sine."""
    rng = np.random.default_rng(seed + 1000 * batch + length)
    t = np.arange(length)
    walks = np.cumsum(rng.normal(size=(batch, length)), axis=1)
    levels = rng.uniform(-50, 500, size=(batch, 1))
    scales = 10.0 ** rng.uniform(-2, 3, size=(batch, 1))
    return (levels + scales * (np.sin(2 * np.pi * t / 24) + 0.3 * walks)).astype(np.float32)
