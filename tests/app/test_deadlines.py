"""app.deadlines: the request time limit, one timer per worker."""

from __future__ import annotations

import asyncio

import pytest

from app.deadlines import Deadlines


def test_a_task_past_its_limit_is_cancelled_and_told_apart_from_other_cancellations() -> None:
    async def scenario() -> None:
        deadlines = Deadlines(0.05)
        loop = asyncio.get_running_loop()

        async def request(work_s: float) -> str:
            task = deadlines.start()
            try:
                await asyncio.sleep(work_s)
                return "answered"
            except asyncio.CancelledError:
                if not deadlines.expired(task):
                    raise
                return "timed out"
            finally:
                deadlines.finish(task)

        started = loop.time()
        assert await asyncio.create_task(request(5.0)) == "timed out"
        assert 0.05 <= loop.time() - started < 0.05 + deadlines.tick_s + 0.5
        assert await asyncio.create_task(request(0.001)) == "answered"

        shutdown = asyncio.create_task(request(5.0))
        await asyncio.sleep(0.01)
        shutdown.cancel()  # not the limit: the cancellation goes on
        with pytest.raises(asyncio.CancelledError):
            await shutdown
        await asyncio.sleep(2 * deadlines.tick_s)
        assert not deadlines._running and deadlines._timer is None  # nothing kept, no timer while idle

    asyncio.run(scenario())


def test_the_check_interval_follows_the_limit_within_bounds() -> None:
    assert Deadlines(30).tick_s == 0.5
    assert Deadlines(0.1).tick_s == 0.005
    assert Deadlines(1e-6).tick_s == 0.005
