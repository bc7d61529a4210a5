"""A series' own frequency (its `freq`, else read from its timestamps), its seasonal period, and the warning a request
gets when it names a model trained at another frequency. More: docs/design.md#appfrequency.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import pandas as pd

from app.forecast_jobs import SeriesInput
from contract.card import BASE_MODEL, ModelCard
from contract.longformat import infer_freq

# The seasonal period of each frequency, as the M4 and GIFT-Eval protocols take it (by pandas rule code).
SEASONS = {"min": 1440, "h": 24, "D": 7, "B": 5, "W": 52, "M": 12, "MS": 12, "ME": 12, "Q": 4, "QS": 4, "QE": 4}


def series_freq(s: SeriesInput) -> str | None:
    """The series' frequency: its `freq`, else read from its timestamps; None when it came without either."""
    if s.freq:
        return s.freq
    if s.timestamps is not None and len(s.timestamps) >= 3:
        try:
            return infer_freq(pd.DatetimeIndex(s.timestamps))
        except (TypeError, ValueError):
            return None
    return None


@functools.lru_cache(maxsize=256)
def _offset(freq: str) -> pd.DateOffset | None:
    try:
        return pd.tseries.frequencies.to_offset(freq)
    except (TypeError, ValueError):
        return None


def same_freq(a: str, b: str) -> bool:
    x, y = _offset(a), _offset(b)
    return x is not None and x == y


def season_of(freq: str | None) -> int:
    """The seasonal period of a frequency: 24 for hourly, 96 for 15 minutes, 7 for daily, 52 for weekly, 12 for
    monthly; 1 when unknown or yearly."""
    offset = _offset(freq) if freq else None
    if offset is None:
        return 1
    code = offset.rule_code.split("-")[0]
    if code == "min":
        return max(1, 1440 // max(int(offset.n), 1))
    if code == "h":
        return max(1, 24 // max(int(offset.n), 1))
    if code in ("s", "S"):
        return 1
    return SEASONS.get(code, 1)


def mismatch_warnings(name: str, card: ModelCard, series: Sequence[SeriesInput]) -> list[str]:
    """One warning per frequency that differs from the model's (none for a model of any frequency, or series that
    came without time information)."""
    if card.any_freq:
        return []
    by_freq: dict[str, list[str]] = {}
    for s in series:
        freq = series_freq(s)
        if freq is not None and not same_freq(freq, card.freq):
            by_freq.setdefault(freq, []).append(s.id)
    warnings = []
    for freq, ids in by_freq.items():
        shown = ", ".join(repr(i) for i in ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        warnings.append(
            f"model {name!r} was trained at freq {card.freq!r} (season {card.season}); series {shown} "
            f"{'is' if len(ids) == 1 else 'are'} at freq {freq!r} (season {season_of(freq)}): its forecast may follow "
            f"the wrong cycle. Use model {BASE_MODEL!r} (any frequency) or 'auto' (chosen on the series' own backtest)"
        )
    return warnings


def warning_headers(warnings: Sequence[str]) -> dict[str, str]:
    """An answer's warnings as one `Gatecast-Warning` header (an HTTP field value: ASCII, one line)."""
    if not warnings:
        return {}
    text = " | ".join(warnings).encode("ascii", "replace").decode()
    return {"Gatecast-Warning": text.replace("\r", " ").replace("\n", " ")}
