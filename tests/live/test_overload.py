"""A short load test of the real server process: beyond capacity it sheds load with 503 + Retry-After,
answers nothing else, and recovers when the load drops. SIGTERM drains in-flight requests."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path

import httpx
import pytest

from harness.live import running_server
from harness.load import ONE, hammer, rss_kb
from harness.waiting import wait_for

pytestmark = pytest.mark.slow
MODELS = Path(__file__).resolve().parents[2] / "models"


def test_beyond_capacity_the_server_sheds_with_503_and_recovers(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    repo.symlink_to(MODELS)
    # A small queue, so that 32 clients sending 64 series each overflow it.
    env = {"GATECAST_MAX_QUEUE_SERIES": "128", "GATECAST_MAX_BATCH_SERIES": "64", "GATECAST_LOG_LEVEL": "warning"}
    with running_server(repo, **env) as (url, proc):
        start_rss = rss_kb(proc.pid)
        outcomes = asyncio.run(hammer(url, seconds=15, concurrency=32))
        assert set(outcomes) <= {"200", "503"}, outcomes
        assert outcomes["200"] > 0 and outcomes["503"] > 0, outcomes
        # recovered: the next requests are served at once
        for _ in range(20):
            assert httpx.post(f"{url}/forecast", json=ONE, timeout=5).status_code == 200
        metrics = httpx.get(f"{url}/metrics").text
        assert 'gatecast_errors_total{reason="overloaded"}' in metrics
        assert rss_kb(proc.pid) < max(2 * start_rss, start_rss + 200_000), "memory grew without bound"


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    repo.symlink_to(MODELS)
    big = {
        "model": "etth1-lstm",
        "series": [{"id": str(i), "values": [float((i + j) % 24) for j in range(168)]} for i in range(4000)],
    }
    with running_server(repo) as (url, proc):
        result: dict[str, object] = {}

        def post() -> None:
            result["status"] = httpx.post(f"{url}/forecast", json=big, timeout=60).status_code

        def in_flight() -> float:
            text = httpx.get(f"{url}/metrics").text
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("gatecast_requests_in_flight ")
            )

        worker = threading.Thread(target=post)
        worker.start()
        assert wait_for(lambda: in_flight() >= 1), "the request never reached the server"
        proc.send_signal(signal.SIGTERM)
        worker.join(timeout=60)
        assert result.get("status") == 200
        # one worker: uvicorn re-raises SIGTERM after its graceful shutdown, so the status says "terminated by it"
        assert proc.wait(timeout=30) == -signal.SIGTERM
    log = next(tmp_path.glob("server-*.log")).read_text()
    assert "Application shutdown complete" in log and "Finished server process" in log
