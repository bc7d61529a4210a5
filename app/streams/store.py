"""Where streams live: an SQLite file in the state folder (the default: survives a restart, no extra service) or Redis
(`GATECAST_STREAM_STORE=redis://...`: every replica serves every stream). More: docs/design.md#appstreamsstore.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from app.errors import Overloaded

log = logging.getLogger("gatecast")


@dataclass(frozen=True)
class Record:
    rev: int
    touched: float  # time.time() of its last write
    data: bytes


class Created(Enum):
    CREATED = "created"
    EXISTS = "exists"
    FULL = "full"  # the store holds its maximum number of streams


class StreamStore(Protocol):
    name: str  # "sqlite" or "redis", for messages and metrics

    async def get(self, stream_id: str) -> Record | None: ...

    async def create(self, stream_id: str, data: bytes, max_streams: int) -> Created: ...

    async def replace(self, stream_id: str, rev: int, data: bytes) -> bool:
        """Writes `data` as revision rev + 1 if the stream is still at `rev`; False if not (or gone)."""
        ...

    async def delete(self, stream_id: str) -> bool: ...

    async def page(self, after: str, limit: int) -> list[str]:
        """Stream ids in ascending order, those after `after` (all when empty)."""
        ...

    async def count(self) -> int: ...

    async def sweep(self, idle_before: float) -> int:
        """Deletes the streams last written before `idle_before` (a time.time()); how many."""
        ...

    async def close(self) -> None: ...


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def check_url(url: str) -> str:
    """For the setting: refuses a store URL `open_store` would not understand."""
    if url in ("", "sqlite") or url.startswith(("sqlite:///", *REDIS_SCHEMES)):
        return url
    raise ValueError(f"{url!r} is not a stream store: use sqlite, sqlite:///path/to/file or redis://host:6379/0")


def open_store(url: str, state_dir: Path) -> StreamStore:
    """`redis://`, `rediss://` and `unix://` URLs name a Redis server; `sqlite:///path/to/file` an SQLite
    file; empty or `sqlite`, the file `streams.sqlite3` in `state_dir`. A file that cannot be opened (a
    read-only folder) leaves the server up, its stream routes answering 503 with the reason."""
    if url.startswith(REDIS_SCHEMES):
        return RedisStore(url)
    path = Path(url.removeprefix("sqlite:///")).expanduser() if url.startswith("sqlite:///") else None
    path = path or state_dir / "streams.sqlite3"
    try:
        return SqliteStore(path)
    except (OSError, sqlite3.Error) as exc:
        log.error("the stream store %s cannot be opened (%s): stream routes answer 503", path, exc)
        return UnavailableStore(f"sqlite {path}", exc)


class UnavailableStore:
    """Stands in for a store that could not be opened at start: every call is a 503 that says why."""

    name = "unavailable"

    def __init__(self, store: str, reason: BaseException) -> None:
        self.store = store
        self.reason = reason

    def _fail(self) -> Overloaded:
        return Overloaded(
            f"the stream store ({self.store}) could not be opened at start: {self.reason}; set GATECAST_STATE_DIR "
            "to a writable folder or GATECAST_STREAM_STORE, and restart",
            30.0,
            "store_unavailable",
        )

    async def get(self, stream_id: str) -> Record | None:
        raise self._fail()

    async def create(self, stream_id: str, data: bytes, max_streams: int) -> Created:
        raise self._fail()

    async def replace(self, stream_id: str, rev: int, data: bytes) -> bool:
        raise self._fail()

    async def delete(self, stream_id: str) -> bool:
        raise self._fail()

    async def page(self, after: str, limit: int) -> list[str]:
        raise self._fail()

    async def count(self) -> int:
        return 0

    async def sweep(self, idle_before: float) -> int:
        return 0

    async def close(self) -> None:
        return None


def unavailable(store: str, exc: BaseException) -> Overloaded:
    """The store could not be reached or was busy past its timeout: 503, the request changed nothing."""
    return Overloaded(f"the stream store ({store}) did not answer: {exc}; try again", 1.0, "store_unavailable")


BUSY_TIMEOUT_S = 10.0  # how long a statement waits for another process's lock before the call is a 503


def switch_to_wal(db: sqlite3.Connection) -> None:
    """Puts the file in WAL mode, waiting for the other workers that are doing the same. On a new file, workers
    that start together each read it, then each ask for the exclusive lock the switch needs; SQLite refuses
    all but one at once ("database is locked") rather than call its busy handler, which would deadlock them.
    So the wait is here: a short, jittered retry until the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))


def _identity(path: Path) -> tuple[int, int] | None:
    """The file at `path` (device, inode), or None when there is none."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class SqliteStore:
    """One file, shared by the worker processes of one host (WAL mode: readers never wait for the writer).
    Every call runs on one thread of its own, which owns the connection: the event loop never waits on disk."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gatecast-streams")
        self._db: sqlite3.Connection | None = None
        try:
            self._call(self._open)
        except BaseException:
            self._thread.shutdown(wait=False)
            raise

    def _open(self) -> None:
        # isolation_level=None: statements autocommit; create() opens its own transaction.
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
        switch_to_wal(db)
        db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash can lose the last commits, never corrupt the file
        db.execute(
            "CREATE TABLE IF NOT EXISTS streams "
            "(id TEXT PRIMARY KEY, rev INTEGER NOT NULL, touched REAL NOT NULL, data BLOB NOT NULL) WITHOUT ROWID"
        )
        db.execute("CREATE INDEX IF NOT EXISTS streams_touched ON streams (touched)")
        self._db = db
        self._file = _identity(self.path)

    def _durable(self) -> None:
        """After a write, in the store's thread: the file written is still the one at `path`. When it was deleted
        or replaced while open, the writes went to a file no restart will see; its rows (the newer revision of
        each) are written to the file at `path`, created anew if need be, before the write is acknowledged."""
        if _identity(self.path) == self._file:
            return
        log.error(
            "the stream store %s was deleted or replaced while open; its streams are written there again", self.path
        )
        orphan = self.db
        rows = orphan.execute("SELECT id, rev, touched, data FROM streams").fetchall()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT INTO streams VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET rev = excluded.rev, "
                "touched = excluded.touched, data = excluded.data WHERE excluded.rev > streams.rev",
                rows,
            )
            self.db.execute("COMMIT")
        except (OSError, sqlite3.Error) as exc:
            self._db = orphan
            raise sqlite3.OperationalError(f"the store's file vanished and cannot be written again ({exc})") from exc
        orphan.close()
        if _identity(self.path) != self._file:  # replaced again meanwhile: not acknowledged
            raise sqlite3.OperationalError("the store's file keeps changing under the server")

    def _call(self, fn: Any, *args: Any) -> Any:
        return self._thread.submit(fn, *args).result()

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.wrap_future(self._thread.submit(fn, *args))
        except sqlite3.OperationalError as exc:  # "database is locked" past the timeout, a full disk
            raise unavailable(f"sqlite {self.path}", exc) from exc

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None
        return self._db

    async def get(self, stream_id: str) -> Record | None:
        def get() -> Record | None:
            row = self.db.execute("SELECT rev, touched, data FROM streams WHERE id = ?", (stream_id,)).fetchone()
            return Record(row[0], row[1], row[2]) if row else None

        result: Record | None = await self._run(get)
        return result

    async def create(self, stream_id: str, data: bytes, max_streams: int) -> Created:
        def create() -> Created:
            db = self.db
            db.execute("BEGIN IMMEDIATE")  # the count and the insert, atomically across processes
            try:
                if db.execute("SELECT 1 FROM streams WHERE id = ?", (stream_id,)).fetchone():
                    return Created.EXISTS
                if db.execute("SELECT count(*) FROM streams").fetchone()[0] >= max_streams:
                    return Created.FULL
                db.execute("INSERT INTO streams VALUES (?, 1, ?, ?)", (stream_id, time.time(), data))
            finally:
                db.execute("COMMIT")
            self._durable()
            return Created.CREATED

        result: Created = await self._run(create)
        return result

    async def replace(self, stream_id: str, rev: int, data: bytes) -> bool:
        def replace() -> bool:
            cursor = self.db.execute(
                "UPDATE streams SET rev = rev + 1, touched = ?, data = ? WHERE id = ? AND rev = ?",
                (time.time(), data, stream_id, rev),
            )
            self._durable()
            return cursor.rowcount == 1

        result: bool = await self._run(replace)
        return result

    async def delete(self, stream_id: str) -> bool:
        def delete() -> bool:
            gone = self.db.execute("DELETE FROM streams WHERE id = ?", (stream_id,)).rowcount == 1
            self._durable()
            return gone

        result: bool = await self._run(delete)
        return result

    async def page(self, after: str, limit: int) -> list[str]:
        def page() -> list[str]:
            rows = self.db.execute("SELECT id FROM streams WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
            return [r[0] for r in rows]

        result: list[str] = await self._run(page)
        return result

    async def count(self) -> int:
        result: int = await self._run(lambda: self.db.execute("SELECT count(*) FROM streams").fetchone()[0])
        return result

    async def sweep(self, idle_before: float) -> int:
        def sweep() -> int:
            return self.db.execute("DELETE FROM streams WHERE touched < ?", (idle_before,)).rowcount

        result: int = await self._run(sweep)
        return result

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self.db.close)
            self._db = None
        self._thread.shutdown(wait=True)


# Redis: a hash per stream (rev, touched, data) and two sorted sets, all under one prefix: ids (score 0, so
# ZRANGEBYLEX pages them in order and ZCARD counts them) and touched (score: last write, for the idle sweep).
# The scripts run atomically in Redis, so the check and the write of a compare-and-set cannot interleave.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then return 'full' end
redis.call('HSET', KEYS[1], 'rev', 1, 'touched', ARGV[2], 'data', ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
return 'created'
"""
_REPLACE = """
if redis.call('HGET', KEYS[1], 'rev') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'rev', tonumber(ARGV[1]) + 1, 'touched', ARGV[2], 'data', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
return 1
"""
_DELETE = """
local gone = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return gone
"""
_SWEEP = """
local idle = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 1000)
for _, id in ipairs(idle) do
  redis.call('DEL', ARGV[2] .. id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
return #idle
"""


class RedisStore:
    name = "redis"

    def __init__(self, url: str, prefix: str = "gatecast:") -> None:
        import redis.asyncio as redis  # only when Redis is configured
        from redis import exceptions

        self.client = redis.Redis.from_url(url, decode_responses=False, socket_timeout=5.0, socket_connect_timeout=2.0)
        self._down = (exceptions.ConnectionError, exceptions.TimeoutError, exceptions.BusyLoadingError)
        self.url = url
        self.prefix = prefix
        self.ids = f"{prefix}streams"
        self.touched = f"{prefix}streams:touched"
        self._create = self.client.register_script(_CREATE)
        self._replace = self.client.register_script(_REPLACE)
        self._delete = self.client.register_script(_DELETE)
        self._sweep = self.client.register_script(_SWEEP)

    async def _do(self, call: Any) -> Any:
        try:
            return await call
        except self._down as exc:
            raise unavailable("redis", exc) from exc

    def _key(self, stream_id: str) -> str:
        return f"{self.prefix}stream:{stream_id}"

    async def get(self, stream_id: str) -> Record | None:
        rev, touched, data = await self._do(self.client.hmget(self._key(stream_id), ["rev", "touched", "data"]))
        if rev is None or data is None:
            return None
        return Record(int(rev), float(touched), bytes(data))

    async def create(self, stream_id: str, data: bytes, max_streams: int) -> Created:
        keys = [self._key(stream_id), self.ids, self.touched]
        answer = await self._do(self._create(keys=keys, args=[max_streams, repr(time.time()), data, stream_id]))
        return Created(answer.decode())

    async def replace(self, stream_id: str, rev: int, data: bytes) -> bool:
        keys = [self._key(stream_id), self.ids, self.touched]
        return bool(await self._do(self._replace(keys=keys, args=[str(rev), repr(time.time()), data, stream_id])))

    async def delete(self, stream_id: str) -> bool:
        return bool(await self._do(self._delete(keys=[self._key(stream_id), self.ids, self.touched], args=[stream_id])))

    async def page(self, after: str, limit: int) -> list[str]:
        start = b"(" + after.encode() if after else b"-"
        ids = await self._do(self.client.zrangebylex(self.ids, start, b"+", start=0, num=limit))
        return [i.decode() for i in ids]

    async def count(self) -> int:
        return int(await self._do(self.client.zcard(self.ids)))

    async def sweep(self, idle_before: float) -> int:
        total = 0
        while True:  # a thousand per script call: Redis serves other clients between them
            keys = ["", self.ids, self.touched]
            n = int(await self._do(self._sweep(keys=keys, args=[repr(idle_before), f"{self.prefix}stream:"])))
            total += n
            if n < 1000:
                return total

    async def close(self) -> None:
        await self.client.aclose()
