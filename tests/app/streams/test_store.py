"""The SQLite stream store as the server's worker processes meet it: opened by all of them at once."""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import sqlite3
from multiprocessing.synchronize import Barrier
from pathlib import Path
from queue import Queue

import pytest

from app.streams.store import Created, SqliteStore, switch_to_wal


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
    monkeypatch.setattr("app.streams.store.BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "held.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            switch_to_wal(sqlite3.connect(path, isolation_level=None, timeout=0.0))
    finally:
        holder.execute("ROLLBACK")


def test_a_write_after_the_file_was_deleted_is_written_to_a_file_that_survives_a_restart(tmp_path: Path) -> None:
    """The store's file removed while the server runs (a cleanup job, an operator): the writes acknowledged after
    that, and the streams before it, are in the file a restarted server opens."""
    path = tmp_path / "state" / "streams.sqlite3"

    async def main() -> None:
        store = SqliteStore(path)
        assert await store.create("before", b"one", 10) is Created.CREATED
        shutil.rmtree(path.parent)
        assert await store.create("after", b"two", 10) is Created.CREATED
        record = await store.get("before")
        assert record is not None and await store.replace("before", record.rev, b"three")
        await store.close()
        again = SqliteStore(path)
        got_before, got_after = await again.get("before"), await again.get("after")
        assert got_before is not None and got_before.data == b"three"
        assert got_after is not None and got_after.data == b"two"
        await again.close()

    asyncio.run(main())
