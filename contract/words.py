"""Counts in messages, in English: "1 value", "2 values" (both halves write messages a person reads)."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
