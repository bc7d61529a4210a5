"""contract.generation: publishes and removals counted in one file every worker stats per request."""

from __future__ import annotations

from pathlib import Path

from contract import generation


def test_a_repository_starts_at_generation_zero_and_each_change_advances_it(tmp_path: Path) -> None:
    assert generation.current(tmp_path) == 0
    generation.advance(tmp_path)
    generation.advance(tmp_path)
    assert generation.current(tmp_path) == 2


def test_advances_from_separate_writers_are_all_counted(tmp_path: Path) -> None:
    # Appends: two processes advancing at once each add their byte, so neither change is lost.
    with (
        open(tmp_path / generation.GENERATION_FILE, "ab") as first,
        open(tmp_path / generation.GENERATION_FILE, "ab") as second,
    ):
        first.write(b".")
        second.write(b".")
    generation.advance(tmp_path)
    assert generation.current(tmp_path) == 3
