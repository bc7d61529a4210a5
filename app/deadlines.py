"""The request time limit (GATECAST_REQUEST_TIMEOUT_S) of one worker, kept with one timer for all requests. More:
docs/design.md#appdeadlines.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

MAX_TICK_S = 0.5
MIN_TICK_S = 0.005


class Deadlines:
    """Not thread-safe: used from the worker's event loop only."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.tick_s = min(MAX_TICK_S, max(MIN_TICK_S, limit_s / 20))
        # task -> (deadline on the loop's clock, the task's cancellation count when it started)
        self._running: dict[asyncio.Task[object], tuple[float, int]] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the timer's (a test client may run a new loop)

    def start(self) -> asyncio.Task[object]:
        """Starts the limit for the current task (the request's); pair with `finish`."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadlines.start() needs a running task")
        loop = task.get_loop()
        self._running[task] = (loop.time() + self.limit_s, task.cancelling())
        if self._timer is None or self._loop is not loop:
            self._loop = loop
            self._timer = loop.call_later(self.tick_s, self._check, loop)
        return task

    def expired(self, task: asyncio.Task[object]) -> bool:
        """For a CancelledError caught in the request: True when the limit caused it (and the cancellation is
        then withdrawn, so the request can be answered), False when someone else cancelled the task."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        _, cancelling = self._running.pop(task)  # no second cancellation while the timeout is answered
        return task.uncancel() <= cancelling

    def extend(self, task: asyncio.Task[object], seconds: float) -> None:
        """Let `task` run until `seconds` from now, if that is later than its deadline."""
        if task in self._running:
            deadline, cancelling = self._running[task]
            self._running[task] = (max(deadline, task.get_loop().time() + seconds), cancelling)

    def finish(self, task: asyncio.Task[object]) -> None:
        self._running.pop(task, None)
        self._expired.discard(task)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return  # a timer left on a loop this worker no longer serves from
        now = loop.time()
        for task, (deadline, _) in list(self._running.items()):
            if deadline <= now and task not in self._expired and not task.done():
                self._expired.add(task)
                task.cancel()
        self._timer = loop.call_later(self.tick_s, self._check, loop) if self._running else None


# The limit of the call in progress (set by app.envelope), for the few routes that wait on longer work by design.
current: ContextVar[tuple[Deadlines, asyncio.Task[object]] | None] = ContextVar("gatecast_deadline", default=None)


def allow(seconds: float) -> None:
    """The current call may run `seconds` from now (a fine-tuning call waits for its job; it answers before the
    extended limit with its own message)."""
    call = current.get()
    if call is not None:
        call[0].extend(call[1], seconds)
