"""The dynamic batcher on its own, with a real onnxruntime session and with controllable fake runs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from app import batcher as batcher_module
from app.batcher import Batcher
from app.errors import InferenceFailed, Overloaded
from harness.waiting import until


def held_run() -> tuple[Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], threading.Event, threading.Event]:
    """A run that says when it has started (`entered`) and holds its thread until `gate` is set."""
    entered, gate = threading.Event(), threading.Event()

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        entered.set()
        gate.wait(5)
        return x, x[:, 0]

    return run, entered, gate


def make(run, **kw: int) -> Batcher:  # type: ignore[no-untyped-def]
    settings = {"max_batch_series": 64, "max_queue_delay_us": 0, "max_queue_series": 1000, **kw}
    return Batcher(run, ThreadPoolExecutor(2), "m", "1", **settings)


def test_batched_answers_equal_unbatched_ones_with_ragged_lengths(tiny_artifact: Path) -> None:
    session = ort.InferenceSession(str(tiny_artifact), providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f, s = session.run(None, {"values": x})
        return f, s

    rng = np.random.default_rng(0)
    requests = [
        [rng.normal(size=int(n)).cumsum().astype(np.float32) + 50 for n in rng.integers(30, 60, size=k)]
        for k in rng.integers(1, 6, size=40)
    ]

    async def main() -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
        batcher = make(run, max_queue_delay_us=2000)
        out = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.close()
        return out

    results = asyncio.run(main())
    for windows, (forecasts, scales) in zip(requests, results, strict=True):
        for w, f, s in zip(windows, forecasts, scales, strict=True):
            want_f, want_s = run(w[None, :])
            # MLAS may block a batched GEMM differently from a single row: equal to float32 rounding.
            np.testing.assert_allclose(f, want_f[0], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(s, want_s[0], rtol=1e-6)


def test_concurrent_requests_are_coalesced_into_one_run() -> None:
    sizes: list[int] = []
    gate = threading.Event()

    entered = threading.Event()

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        entered.set()
        gate.wait(5)
        sizes.append(len(x))
        return x[:, :2] * 2, x[:, 0]

    async def main() -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
        batcher = make(run)
        first = asyncio.ensure_future(batcher.submit([np.ones(4, np.float32)]))
        await until(entered.is_set)  # the first run is now blocked in its thread; the rest queue up
        rest = [asyncio.ensure_future(batcher.submit([np.full(4, i, np.float32)])) for i in range(10)]
        await until(lambda: batcher.queued_series == 10)
        gate.set()
        out = await asyncio.gather(first, *rest)
        await batcher.close()
        return out

    results = asyncio.run(main())
    assert sizes == [1, 10]
    assert [float(r[0][0][0]) for r in results[1:]] == [2.0 * i for i in range(10)]


def test_a_full_queue_answers_overloaded_and_recovers() -> None:
    run, entered, gate = held_run()

    async def main() -> None:
        batcher = make(run, max_queue_series=5)
        busy = asyncio.ensure_future(batcher.submit([np.ones(3, np.float32)]))
        await until(entered.is_set)
        queued = [asyncio.ensure_future(batcher.submit([np.ones(3, np.float32)] * 2)) for _ in range(2)]
        await until(lambda: batcher.queued_series == 4)
        with pytest.raises(Overloaded) as info:
            await batcher.submit([np.ones(3, np.float32)] * 2)
        assert info.value.retry_after >= 1 and "limit 5" in info.value.message
        gate.set()
        await asyncio.gather(busy, *queued)
        assert batcher.queued_series == 0
        await batcher.submit([np.ones(3, np.float32)])  # accepted again
        await batcher.close()

    asyncio.run(main())


def test_a_failing_run_fails_its_requests_and_the_batcher_keeps_going() -> None:
    calls = {"n": 0}

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return x, x[:, 0]

    async def main() -> None:
        batcher = make(run)
        with pytest.raises(InferenceFailed, match="m@1 failed on this request"):
            await batcher.submit([np.ones(3, np.float32)])
        forecasts, _ = await batcher.submit([np.ones(3, np.float32)])
        assert forecasts[0].shape == (3,)
        await batcher.close()

    asyncio.run(main())


def test_one_request_the_model_cannot_take_does_not_fail_its_batch_neighbours() -> None:
    """A shared run that fails is retried request by request: only the request that breaks the model fails."""
    runs: list[int] = []
    release = threading.Event()

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        runs.append(len(x))
        release.wait(5)  # hold the first run so the others queue up and share the next one
        if np.any(x[:, 0] < 0):
            raise RuntimeError("this graph cannot take negative values")
        return x, x[:, 0]

    async def main() -> list[object]:
        batcher = make(run)
        first = asyncio.ensure_future(batcher.submit([np.ones(3, np.float32)]))
        await until(lambda: len(runs) == 1)  # the first run is now in progress
        others = [asyncio.ensure_future(batcher.submit([np.full(3, value, np.float32)])) for value in (2.0, -1.0, 4.0)]
        await until(lambda: batcher.queued_series == 3)
        release.set()
        out = await asyncio.gather(first, *others, return_exceptions=True)
        await batcher.close()
        return out

    first, good, bad, also_good = asyncio.run(main())
    assert runs[:2] == [1, 3]  # the three queued requests shared one run, which failed
    assert isinstance(bad, InferenceFailed)
    for result, value in ((first, 1.0), (good, 2.0), (also_good, 4.0)):
        assert not isinstance(result, BaseException), result
        forecasts, _ = result  # type: ignore[misc]
        assert float(forecasts[0][0]) == value


def test_queue_delay_waits_for_more_series() -> None:
    sizes: list[int] = []

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sizes.append(len(x))
        return x, x[:, 0]

    async def main() -> None:
        batcher = make(run, max_queue_delay_us=50_000)
        first = asyncio.ensure_future(batcher.submit([np.ones(3, np.float32)]))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(batcher.submit([np.ones(3, np.float32)]))
        await asyncio.wait_for(asyncio.gather(first, second), 30)
        await batcher.close()

    asyncio.run(main())
    assert sizes == [2]


def test_inline_runs_stay_on_the_event_loop_and_still_batch_what_waited() -> None:
    """Small batches run in the event loop's thread (no hand-off); requests that arrived during a run still
    share the next one; a batch above the inline size goes to the executor."""
    threads: list[tuple[int, str | None]] = []

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        threads.append((len(x), threading.current_thread().name))
        return x[:, :2] * 2, x[:, 0]

    async def main() -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
        batcher = make(run, inline_max_series=8)
        out = await asyncio.gather(*(batcher.submit([np.full(4, i, np.float32)]) for i in range(6)))
        big = await batcher.submit([np.full(4, 1, np.float32)] * 9)
        await batcher.close()
        return [*out, big]

    results = asyncio.run(main())
    loop_thread = threading.main_thread().name
    assert threads[0] == (6, loop_thread), threads  # the six submitted together ran as one batch, inline
    assert threads[-1][0] == 9 and threads[-1][1] != loop_thread  # above the inline size: a worker thread
    assert [float(r[0][0][0]) for r in results[:6]] == [2.0 * i for i in range(6)]


def test_an_inline_run_that_fails_fails_only_its_request() -> None:
    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if (x < 0).any():
            raise RuntimeError("the model cannot take negative values")
        return x, x[:, 0]

    async def main() -> None:
        batcher = make(run, inline_max_series=8)
        bad = asyncio.ensure_future(batcher.submit([np.full(3, -1, np.float32)]))
        good = asyncio.ensure_future(batcher.submit([np.ones(3, np.float32)]))
        with pytest.raises(InferenceFailed):
            await bad
        forecasts, _ = await good
        assert forecasts[0].tolist() == [1.0, 1.0, 1.0]
        await batcher.close()

    asyncio.run(main())


# Gathering: closed-loop clients (each sends again as soon as it is answered) are merged into one batch.


def closed_loop(  # type: ignore[no-untyped-def]
    batcher: Batcher,
    source: object,
    rounds: int,
    start: float = 0,
    round_trip: float = 0,
):
    async def client() -> None:
        batcher_module.current_source.set(source)  # what the request envelope does per connection
        await asyncio.sleep(start)
        for _ in range(rounds):
            await batcher.submit([np.ones(4, np.float32)])
            if round_trip:  # the answer's way back to the client and its next request's way in
                await asyncio.sleep(round_trip)

    return client()


def slow_run(sizes: list[int], seconds: float = 0.002, first: float | None = None):  # type: ignore[no-untyped-def]
    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        time.sleep(first if first is not None and not sizes else seconds)
        sizes.append(len(x))
        return x[:, :2], x[:, 0]

    return run


@pytest.mark.parametrize("gather_wait_us", [0, 50_000])
def test_gathering_merges_closed_loop_clients_that_alternate_without_it(gather_wait_us: int) -> None:
    sizes: list[int] = []

    async def main() -> None:
        # Runs of 10 ms against a 1 ms way back: the pattern survives a busy machine's scheduling delays.
        batcher = make(slow_run(sizes, seconds=0.01, first=0.1), gather_wait_us=gather_wait_us)
        # Clients that connect at different moments: b and c arrive while a's first run is under way.
        clients = (closed_loop(batcher, s, 30, start=i * 0.01, round_trip=0.001) for i, s in enumerate("abc"))
        await asyncio.gather(*clients)
        await batcher.close()

    asyncio.run(main())
    assert sum(sizes) == 90
    steady = sizes[5:-5]
    if gather_wait_us:
        assert all(n == 3 for n in steady), sizes  # every client's next request joins the same run
    else:
        # Without gathering the first client runs alone and the other two share the next run: alternation, with
        # at most a rare merge where a stalled scheduler let the three meet.
        assert steady.count(3) <= len(steady) // 10 and steady.count(1) >= len(steady) // 3, sizes


def test_a_lone_client_and_requests_without_a_source_never_wait() -> None:
    sizes: list[int] = []

    async def main() -> Batcher:
        batcher = make(slow_run(sizes, 0), gather_wait_us=1_000_000)
        await closed_loop(batcher, "alone", 50)
        # No source (a protocol that does not set one): nothing is tracked, nothing is awaited.
        await asyncio.gather(*(closed_loop(batcher, None, 20) for _ in range(3)))
        await batcher.close()
        return batcher

    batcher = asyncio.run(asyncio.wait_for(main(), 60))
    assert batcher.gather_waits == 0  # not one gathering wait was begun
    assert sum(sizes) == 110


def test_a_client_that_stops_costs_the_others_one_bounded_wait() -> None:
    sizes: list[int] = []

    async def main() -> tuple[int, int]:
        batcher = make(slow_run(sizes), gather_wait_us=100_000)
        await asyncio.gather(closed_loop(batcher, "a", 10), closed_loop(batcher, "b", 10))
        waits, timeouts = batcher.gather_waits, batcher.gather_timeouts
        await closed_loop(batcher, "a", 5)  # b has stopped
        await batcher.close()
        return batcher.gather_waits - waits, batcher.gather_timeouts - timeouts

    waits, timeouts = asyncio.run(asyncio.wait_for(main(), 60))
    # a waited for b once, until gather_wait ran out; b, no longer counted as recent, is not waited for again.
    assert (waits, timeouts) == (1, 1)


def test_gathering_never_holds_a_full_batch() -> None:
    sizes: list[int] = []

    async def main() -> Batcher:
        batcher = make(slow_run(sizes), gather_wait_us=1_000_000, max_batch_series=2)
        await asyncio.gather(*(closed_loop(batcher, source, 20) for source in ("a", "b", "c", "d")))
        await batcher.close()
        return batcher

    batcher = asyncio.run(asyncio.wait_for(main(), 60))
    assert max(sizes) == 2 and sum(sizes) == 80
    assert batcher.gather_timeouts == 0  # every wait ended when the batch filled, none ran its second out


# Fair shares: a large request is served slice by slice, interleaved with the others.


def test_a_small_request_behind_a_large_one_is_answered_within_a_run_or_two() -> None:
    sizes: list[int] = []
    order: list[str] = []

    async def main() -> None:
        batcher = make(slow_run(sizes, seconds=0.002), max_batch_series=8, max_queue_series=100_000)
        big = asyncio.ensure_future(batcher.submit([np.full(4, 1, np.float32)] * 400))  # 50 runs alone
        await asyncio.sleep(0.01)
        small = await batcher.submit([np.full(4, 7, np.float32)])
        order.append("small")
        assert not big.done()  # answered while the large request is still being served
        forecasts, _ = await big
        order.append("big")
        assert forecasts.shape == (400, 2) and float(forecasts[399, 0]) == 1.0
        assert float(small[0][0, 0]) == 7.0
        await batcher.close()

    asyncio.run(main())
    assert order == ["small", "big"] and sum(sizes) == 401
    assert max(sizes) == 8  # the large request never had a run larger than a batch


def test_shares_are_max_min_fair() -> None:
    seen: list[list[float]] = []
    gate = threading.Event()

    entered = threading.Event()

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        entered.set()
        gate.wait(5)
        seen.append(sorted(x[:, 0].tolist()))
        return x[:, :2], x[:, 0]

    async def main() -> None:
        batcher = make(run, max_batch_series=10)
        first = asyncio.ensure_future(batcher.submit([np.zeros(4, np.float32)]))
        await until(entered.is_set)  # held in its run; the three below queue up
        jobs = [
            asyncio.ensure_future(batcher.submit([np.full(4, value, np.float32)] * count))
            for value, count in ((1.0, 20), (2.0, 2), (3.0, 20))
        ]
        await until(lambda: batcher.queued_series == 42)
        gate.set()
        await asyncio.gather(first, *jobs)
        await batcher.close()

    asyncio.run(main())
    # The request of 2 takes what it needs; the two of 20 split the rest of the run equally.
    assert seen[1] == [1.0] * 4 + [2.0] * 2 + [3.0] * 4


def test_admission_counts_the_windows_ahead_under_fair_sharing() -> None:
    run, entered, gate = held_run()

    async def main() -> None:
        batcher = make(run, max_batch_series=4, max_queue_series=100)
        held = asyncio.ensure_future(batcher.submit([np.ones(3, np.float32)]))
        await until(entered.is_set)
        backlog = asyncio.ensure_future(batcher.submit([np.ones(3, np.float32)] * 90))
        await asyncio.sleep(0)
        assert batcher.ahead(1) == 2  # a one-window request waits for one of the backlog's windows
        small = asyncio.ensure_future(batcher.submit([np.ones(3, np.float32)]))
        await asyncio.sleep(0)
        medium = asyncio.ensure_future(batcher.submit([np.ones(3, np.float32)] * 20))  # 20 + 20 + 1 ahead
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as info:  # 90 + 90 + 20 + 1 would run before the last of these 90
            await batcher.submit([np.ones(3, np.float32)] * 90)
        assert "limit 100" in info.value.message and "GATECAST_MAX_QUEUE_SERIES" in info.value.message
        gate.set()
        await asyncio.gather(held, backlog, small, medium)
        await batcher.close()

    asyncio.run(main())
