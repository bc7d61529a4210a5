"""Dynamic batching with fair shares: concurrent requests for one model version share onnxruntime runs, and no request
can hold the runs while others wait. More: docs/design.md#appbatcher.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from app import metrics
from app.errors import InferenceFailed, Overloaded
from app.model_statistics import ModelStats

log = logging.getLogger("gatecast.batcher")
# A series' model input: its window (T,) float32, or the window with its covariate inputs (contract.signature
# order, each with time as its first axis). Series of one window length are stacked input by input.
Window = np.ndarray | tuple[np.ndarray, ...]
# stacked inputs -> forecast (B, H) (a quantile model's: (B, H, 1 + Q), app.runtime), scale (B,)
RunFn = Callable[..., tuple[np.ndarray, np.ndarray]]

# The connection a request came from (HTTP: the client's address and port); None where unknown.
current_source: contextvars.ContextVar[Hashable | None] = contextvars.ContextVar("gatecast_source", default=None)
RECENT_S = 0.02  # a connection answered this recently is expected to send again
MAX_TRACKED_SOURCES = 256  # more recent connections than this: open traffic, nothing to gather, run at once


@dataclass(eq=False)
class _Pending:
    windows: list[Window]  # one per series
    future: asyncio.Future[tuple[np.ndarray, np.ndarray]]
    source: Hashable | None
    enqueued: float = field(default_factory=time.perf_counter)
    taken: int = 0  # windows handed to runs so far
    filled: int = 0  # windows answered so far
    forecasts: np.ndarray | None = None  # (n, H) float32, allocated with the first answers
    scales: np.ndarray | None = None  # (n,) float32
    failed: bool = False
    steps: int | None = None  # forecast steps the request keeps (None: all the graph answers)

    @property
    def remaining(self) -> int:
        return len(self.windows) - self.taken


class _Slice(NamedTuple):
    """Windows start:stop of one request, in one run."""

    pending: _Pending
    start: int
    stop: int


class Batcher:
    def __init__(
        self,
        run: RunFn,
        executor: ThreadPoolExecutor,
        model: str,
        version: str,
        max_batch_series: int,
        max_queue_delay_us: int,
        max_queue_series: int,
        stats: ModelStats | None = None,
        inline_max_series: int = 0,
        gather_wait_us: int = 0,
    ) -> None:
        self._run = run
        self.stats = stats or ModelStats()
        self._executor = executor
        self._labels = {"model": model, "version": version}
        # This version's metric children, looked up once: `labels()` takes a lock and sorts its arguments.
        self._queue_wait = metrics.QUEUE_WAIT.labels(**self._labels)
        self._series = metrics.SERIES_FORECAST.labels(**self._labels)
        self._inference = metrics.INFERENCE_DURATION.labels(**self._labels)
        self._batch_size = metrics.BATCH_SIZE.labels(**self._labels)
        self.max_batch_series = max_batch_series
        self.max_queue_delay = max_queue_delay_us / 1e6
        self.max_queue_series = max_queue_series
        self.inline_max_series = inline_max_series  # batches up to this size run on the event loop
        self.gather_wait = gather_wait_us / 1e6
        self._answered: dict[Hashable, float] = {}  # source -> when it was last answered (perf_counter)
        self._missing: set[Hashable] | None = None  # while gathering: the sources not queued yet
        self._gathered: asyncio.Future[bool] | None = None  # its result: whether the wait timed out
        self.gather_waits = 0  # gathering waits begun, and those that ran to gather_wait: what the policy did
        self.gather_timeouts = 0
        self._queue: deque[_Pending] = deque()  # requests with windows not yet handed to a run
        self._queued_series = 0  # their windows not yet handed to a run
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def queued_series(self) -> int:
        return self._queued_series

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain(), name=f"batcher-{self._labels}")

    async def close(self) -> None:
        """Finish what is queued, then stop."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    def ahead(self, n: int) -> int:
        """Windows that run before the last of a new request of `n` windows, under fair sharing."""
        return n + sum(min(p.remaining, n) for p in self._queue)

    async def submit(self, windows: list[Window], steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Forecasts (W, H) and scales (W,) of `windows`, in order, as float32; with `steps`, only the first `steps`
        of H are kept (a 720-step head's rows are not held for a one-step job)."""
        if self._closed:
            raise Overloaded("the model is being unloaded; retry shortly", retry_after=1.0)
        n = len(windows)
        queued = self._queued_series
        if queued and queued + n > self.max_queue_series and (ahead := self.ahead(n)) > self.max_queue_series:
            raise Overloaded(
                f"the queue for {self._labels['model']} holds {self._queued_series} windows, and {ahead} would run "
                f"before this request's last (limit {self.max_queue_series}, GATECAST_MAX_QUEUE_SERIES); retry "
                "after a short wait",
                retry_after=1.0,
            )
        self.start()
        source = current_source.get()
        pending = _Pending(windows, asyncio.get_running_loop().create_future(), source, steps=steps)
        if not n:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.float32)
        self._queue.append(pending)
        self._queued_series += n
        self._wakeup.set()
        if self._missing is not None:
            self._missing.discard(source)
            if not self._missing or self._queued_series >= self.max_batch_series:
                self._end_gathering()
        return await pending.future

    async def _drain(self) -> None:
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.max_queue_delay and self._queued_series < self.max_batch_series:
                deadline = self._queue[0].enqueued + self.max_queue_delay
                while self._queued_series < self.max_batch_series and (wait := deadline - time.perf_counter()) > 0:
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), wait)
                    except TimeoutError:
                        break
            if self.gather_wait and self._queued_series < self.max_batch_series:
                await self._gather()
            batch = self._take()
            if batch:  # a run in a thread yields the loop; an inline one runs only with nothing else queued
                await self._execute(batch, inline=not self._queue)

    async def _gather(self) -> None:
        """Wait, at most gather_wait, for the connections answered in the last RECENT_S that are not queued."""
        now = time.perf_counter()
        answered = self._answered
        if len(answered) > MAX_TRACKED_SOURCES:
            self._answered = answered = {s: t for s, t in answered.items() if now - t < RECENT_S}
            if len(answered) > MAX_TRACKED_SOURCES:
                return
        missing = {s for s, t in answered.items() if now - t < RECENT_S}
        if len(missing) <= 1:
            return  # one recent connection at most: nothing to gather (a lone client's own request is here)
        missing.difference_update(item.source for item in self._queue)
        if not missing:
            return
        loop = asyncio.get_running_loop()
        self._missing, self._gathered = missing, loop.create_future()
        self.gather_waits += 1
        timer = loop.call_later(self.gather_wait, self._end_gathering, True)
        try:
            if await self._gathered:  # timed out: do not wait for the late ones again until they are answered
                self.gather_timeouts += 1
                for late in self._missing:
                    answered.pop(late, None)
        finally:
            timer.cancel()
            self._missing = self._gathered = None

    def _end_gathering(self, timed_out: bool = False) -> None:
        if self._gathered is not None and not self._gathered.done():
            self._gathered.set_result(timed_out)

    def _take(self) -> list[_Slice]:
        """Up to max_batch_series windows, shared max-min fairly among the waiting requests (queue order breaks
        ties); a request whose client went away is dropped, so nothing is computed for nobody."""
        queue, started = self._queue, time.perf_counter()
        if any(p.future.done() for p in queue):
            for gone in [p for p in queue if p.future.done()]:
                queue.remove(gone)
                self._queued_series -= gone.remaining
        if self._queued_series <= self.max_batch_series:  # everything fits: whole requests, no shares to compute
            batch = [_Slice(p, p.taken, len(p.windows)) for p in queue]
            for p in queue:
                if not p.taken:
                    self._observe_wait(started - p.enqueued)
                p.taken = len(p.windows)
            queue.clear()
            self._queued_series = 0
            return batch
        waiting = sorted(queue, key=lambda p: p.remaining)  # stable: queue order among equals
        room, shares = self.max_batch_series, {}
        for k, p in enumerate(waiting):
            share = min(p.remaining, room // (len(waiting) - k) or 1)
            if share <= 0 or room <= 0:
                break
            shares[id(p)] = share
            room -= share
        batch = []
        for p in list(queue):  # slices in queue order: the oldest request's first
            share = shares.get(id(p), 0)
            if not share:
                continue
            if not p.taken:
                self._observe_wait(started - p.enqueued)
            batch.append(_Slice(p, p.taken, p.taken + share))
            p.taken += share
            self._queued_series -= share
            if not p.remaining:
                queue.remove(p)
        return batch

    def _observe_wait(self, seconds: float) -> None:
        self._queue_wait.observe(seconds)
        self.stats.queue.add(seconds)

    async def _execute(self, batch: list[_Slice], inline: bool) -> None:
        windows = [w for s in batch for w in s.pending.windows[s.start : s.stop]]
        loop = asyncio.get_running_loop()
        try:
            if inline and len(windows) <= self.inline_max_series:
                forecasts, scales, runs = self._run_grouped(windows)
            else:
                forecasts, scales, runs = await loop.run_in_executor(self._executor, self._run_grouped, windows)
        except Exception as exc:
            if len(batch) == 1:
                self._fail(batch[0].pending, exc)
                return
            for piece in batch:  # isolate the request the model cannot take; the others still get answers
                if not piece.pending.failed:
                    await self._execute([piece], inline)
            return
        offset = 0
        answered = time.perf_counter()
        for piece in batch:
            p, n = piece.pending, piece.stop - piece.start
            rows = forecasts[offset : offset + n]
            if p.steps is not None and p.steps < rows.shape[1]:
                rows = np.ascontiguousarray(rows[:, : p.steps])  # a copy: the run's full rows are not kept alive
            if n == len(p.windows) and not p.future.done():  # the whole request in this run: views of its rows
                p.future.set_result((rows, scales[offset : offset + n]))
                if p.source is not None:
                    self._answered[p.source] = answered
            elif not p.failed and not p.future.done():
                if p.forecasts is None:
                    p.forecasts = np.empty((len(p.windows), *rows.shape[1:]), np.float32)
                    p.scales = np.empty(len(p.windows), np.float32)
                p.forecasts[piece.start : piece.stop] = rows
                p.scales[piece.start : piece.stop] = scales[offset : offset + n]  # type: ignore[index]
                p.filled += n
                if p.filled == len(p.windows):
                    p.future.set_result((p.forecasts, p.scales))  # type: ignore[arg-type]
                    if p.source is not None:
                        self._answered[p.source] = answered
            offset += n
        self._series.inc(len(windows))
        for size, seconds in runs:  # recorded here, on the event loop, not in the run's thread
            self.stats.run(size, seconds)

    def _fail(self, item: _Pending, exc: Exception) -> None:
        log.error("onnxruntime failed on a request to %s@%s: %s", self._labels["model"], self._labels["version"], exc)
        item.failed = True
        if item in self._queue:  # its other windows are not run
            self._queue.remove(item)
            self._queued_series -= item.remaining
        if not item.future.done():
            item.future.set_exception(
                InferenceFailed(
                    f"the model {self._labels['model']}@{self._labels['version']} failed on this request "
                    f"({type(exc).__name__}); the failure is logged for the operator"
                )
            )

    def _run_grouped(self, windows: list[Window]) -> tuple[np.ndarray, np.ndarray, list[tuple[int, float]]]:
        """One run per distinct window length, in chunks of max_batch_series; results (W, H) and (W,) in input
        order, and each run's (batch size, seconds)."""
        runs: list[tuple[int, float]] = []
        forecasts: np.ndarray | None = None
        scales = np.empty(len(windows), np.float32)
        by_length: dict[int, list[int]] = {}
        for i, w in enumerate(windows):
            by_length.setdefault(len(w) if isinstance(w, np.ndarray) else len(w[0]), []).append(i)
        for indices in by_length.values():
            for start in range(0, len(indices), self.max_batch_series):
                chunk = indices[start : start + self.max_batch_series]
                first = windows[chunk[0]]
                if len(chunk) == 1:  # a lone window: a view with a batch axis, not a stacked copy
                    inputs: tuple[np.ndarray, ...] = tuple(
                        np.ascontiguousarray(part[None])
                        for part in ((first,) if isinstance(first, np.ndarray) else first)
                    )
                elif isinstance(first, np.ndarray):
                    inputs = (np.stack([windows[i] for i in chunk]),)
                else:
                    inputs = tuple(np.stack(part) for part in zip(*(windows[i] for i in chunk), strict=True))
                t0 = time.perf_counter()
                f, s = self._run(*inputs)
                seconds = time.perf_counter() - t0
                runs.append((len(chunk), seconds))
                self._inference.observe(seconds)
                self._batch_size.observe(len(chunk))
                if len(chunk) == len(windows):  # one run for all: its outputs as they are
                    return np.asarray(f), np.asarray(s).reshape(len(chunk), -1)[:, 0], runs
                if forecasts is None:
                    forecasts = np.empty((len(windows), *np.shape(f)[1:]), np.float32)
                forecasts[chunk] = f
                scales[chunk] = np.asarray(s).reshape(len(chunk), -1)[:, 0]
        assert forecasts is not None
        return forecasts, scales, runs
