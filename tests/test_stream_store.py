"""The SQLite stream store as the server's worker processes meet it: opened by all of them at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from multiprocessing.synchronize import Barrier
from pathlib import Path
from queue import Queue

import pytest

from app.stream_store import SqliteStore, switch_to_wal


def open_together(path: str, start: Barrier, errors: Queue[str]) -> None:
    start.wait()
    try:
        SqliteStore(Path(path))
        errors.put("")
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which asserts on it
        errors.put(repr(exc))


def test_workers_that_open_a_new_file_at_once_all_get_the_store(tmp_path: Path) -> None:
    """Found by CI: one of two uvicorn workers in a fresh container answered every stream call with a 503,
    "database is locked", as both switched the new file to WAL at the same moment (before the fix: 1 start in
    2 failed with 2 workers)."""
    context = multiprocessing.get_context("fork")
    workers, starts = 2, 30  # two: the CI machine's worker count, and the likeliest clash
    for start in range(starts):
        path = str(tmp_path / f"streams-{start}.sqlite3")
        barrier, errors = context.Barrier(workers), context.Queue()
        processes = [context.Process(target=open_together, args=(path, barrier, errors)) for _ in range(workers)]
        for p in processes:
            p.start()
        for p in processes:
            p.join(timeout=60)
        failed = [e for e in (errors.get(timeout=5) for _ in processes) if e]
        assert failed == [], f"start {start}: {failed}"
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_a_lock_held_past_the_busy_timeout_is_still_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry waits for other workers, not forever: a file locked past the timeout still refuses to open."""
    monkeypatch.setattr("app.stream_store.BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "held.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            switch_to_wal(sqlite3.connect(path, isolation_level=None, timeout=0.0))
    finally:
        holder.execute("ROLLBACK")
