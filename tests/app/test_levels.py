"""app.levels: interval levels and quantiles as requests ask for them."""

from __future__ import annotations

import math

import pytest

from app.errors import InvalidInput
from app.levels import MAX_LEVELS, check_levels, check_quantiles, level_key, quantile_level


def test_levels_come_back_sorted_as_floats() -> None:
    assert check_levels([95, 80]) == [80.0, 95.0]


@pytest.mark.parametrize(
    ("levels", "why"),
    [
        ([0], "strictly between 0 and 100"),
        ([100], "strictly between 0 and 100"),
        ([math.nan], "out of range"),
        ([80, 80], "repeats a value"),
        (list(range(1, MAX_LEVELS + 2)), f"at most {MAX_LEVELS}"),
    ],
)
def test_levels_that_cannot_be_answered_are_refused(levels: list[float], why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        check_levels(levels)


@pytest.mark.parametrize(
    ("quantiles", "why"),
    [([0.0], "strictly between 0 and 1"), ([1.0], "strictly between 0 and 1"), ([0.1, 0.1], "repeat a value")],
)
def test_quantiles_that_cannot_be_answered_are_refused(quantiles: list[float], why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        check_quantiles(quantiles)


@pytest.mark.parametrize(("q", "level"), [(0.1, 80.0), (0.9, 80.0), (0.5, 0.0), (0.025, 95.0), (0.975, 95.0)])
def test_a_quantile_bounds_the_symmetric_interval_at_its_level(q: float, level: float) -> None:
    assert quantile_level(q) == level


@pytest.mark.parametrize(("level", "key"), [(80, "80"), (80.0, "80"), (99.5, "99.5")])
def test_a_level_has_one_spelling_in_every_answer(level: float, key: str) -> None:
    assert level_key(level) == key
