"""Interval levels and quantiles as requests ask for them: their checks, and the one spelling of a level in keys."""

from __future__ import annotations

import math
from collections.abc import Sequence

from app.errors import InvalidInput

MAX_LEVELS = 20


def check_levels(levels: Sequence[float]) -> list[float]:
    if len(levels) > MAX_LEVELS:
        raise InvalidInput(f"{len(levels)} levels were asked for; ask for at most {MAX_LEVELS}")
    for level in levels:
        if not math.isfinite(level) or not 0 < level < 100:
            raise InvalidInput(f"level {level} is out of range: levels are percentages strictly between 0 and 100")
    if len(set(levels)) != len(levels):
        raise InvalidInput(f"level {list(levels)} repeats a value; list each level once")
    return sorted(float(level) for level in levels)


def quantile_level(q: float) -> float:
    """The level (percent) of the symmetric interval that quantile q bounds: 0.1 and 0.9 -> 80."""
    return round(abs(2 * q - 1) * 100, 9)


def level_key(level: float) -> str:
    """The one spelling of a level in every answer's keys: 80 -> '80', 99.5 -> '99.5'."""
    return str(int(level)) if float(level).is_integer() else str(level)


def check_quantiles(quantiles: Sequence[float]) -> None:
    if len(quantiles) > MAX_LEVELS:
        raise InvalidInput(f"{len(quantiles)} quantiles were asked for; ask for at most {MAX_LEVELS}")
    for q in quantiles:
        if not math.isfinite(q) or not 0 < q < 1:
            raise InvalidInput(f"quantile {q} is out of range: quantiles are probabilities strictly between 0 and 1")
    if len(set(quantiles)) != len(quantiles):
        raise InvalidInput(f"quantiles {list(quantiles)} repeat a value; list each quantile once")
