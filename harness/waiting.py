"""Waiting for a condition with a deadline, never for a fixed time: a test on a busy machine waits longer, a test on
a quiet one no longer than it must."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], seconds: float = 30.0, every: float = 0.05) -> bool:
    """True as soon as `condition()` holds; its last value at the deadline otherwise."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


async def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Yield to the event loop until `condition()` holds; TimeoutError at the deadline."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the condition did not hold within {seconds} s")
        await asyncio.sleep(0.001)
