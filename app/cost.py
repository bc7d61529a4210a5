"""What a job costs, declared before anything is built for it: the model windows it runs, the time steps they read (the
model's work), and the memory it will hold. More: docs/design.md#appcost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.admission import ANSWER_STAMP_BYTES, ANSWER_VALUE_BYTES  # one definition: bench.memory_cost checks it
from app.errors import PayloadTooLarge

SERIES_VALUE_BYTES = 12  # a value held once per series as float64 (checks) and float32 (the windows' base)
CHANNEL_VALUE_BYTES = 12  # each covariate or calendar channel, alike
WINDOW_BYTES = 160  # per window: its views of the series (numpy view objects), origin and owner
RESULT_STEP_BYTES = 12  # per window and step: the model's float32 output row and the float64 forecast


@dataclass(frozen=True)
class Cost:
    windows: int = 0  # model windows (onnxruntime rows)
    steps: int = 0  # time steps the windows read: the model's work
    memory: int = 0  # bytes the job holds while it runs and is answered

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.windows + other.windows, self.steps + other.steps, self.memory + other.memory)


def window_cost(
    series_lengths: Sequence[int],
    windows: int,
    steps: int,
    horizon: int,
    channels: int,
    answered_per_step: int,
    answered_stamps: int,
) -> Cost:
    """The cost of `windows` forecasts of `horizon` steps from series of these lengths, each read with `channels`
    covariate and calendar channels beside its values; `answered_per_step` values answered per window and step,
    `answered_stamps` timestamps answered in all."""
    values = sum(series_lengths)
    held = values * SERIES_VALUE_BYTES + values * channels * CHANNEL_VALUE_BYTES
    held += windows * (WINDOW_BYTES + horizon * RESULT_STEP_BYTES)
    held += windows * horizon * answered_per_step * ANSWER_VALUE_BYTES + answered_stamps * ANSWER_STAMP_BYTES
    return Cost(windows, steps, held)


def check_windows(cost: Cost, limit: int, what: str) -> None:
    """413 when a job runs more model windows than a request may (GATECAST_MAX_WINDOWS_PER_REQUEST)."""
    if cost.windows > limit:
        raise PayloadTooLarge(
            f"{what} runs {cost.windows} forecast windows; the limit is {limit} a request "
            "(GATECAST_MAX_WINDOWS_PER_REQUEST): ask for fewer windows, or send fewer or shorter series per request"
        )
