"""The real server inside a memory cgroup, hit with concurrent bodies at the request limits: memory admission
answers 503 (or 413 when one request alone would not fit) before the kernel's OOM killer has a reason to act.

Needs root and a writable memory controller (cgroup v1 or v2); skips with the reason otherwise.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.cgroup import MemoryCgroup, memory_cgroup
from harness.heavy import heavy_requests
from harness.live import free_port, running_server
from harness.load import storm_body as body
from harness.load import wave

pytestmark = pytest.mark.slow
MODELS = Path(__file__).resolve().parents[2] / "models"
MiB = 2**20


@pytest.fixture
def cgroup_1g() -> Iterator[MemoryCgroup]:
    with memory_cgroup(1024 * MiB) as group:
        if group is None:
            pytest.skip("no writable memory cgroup here (needs root and the cgroup v1 or v2 memory controller)")
        yield group


def test_concurrent_maximal_bodies_under_1_gib_get_200_or_503_and_nothing_dies(
    tmp_path: Path, cgroup_1g: MemoryCgroup
) -> None:
    """The Kubernetes manifest's limit (1 GiB), one worker, six clients at once, each with a body at the limits:
    16 MiB, 10,000 series. One such request peaks near 240 MiB (bench/memory_cost.py)."""
    repo = tmp_path / "models"
    repo.symlink_to(MODELS)
    payload = body(10_000, 262)
    assert 15 * MiB < len(payload) <= 16 * MiB
    outcomes: collections.Counter[int | str] = collections.Counter()
    with running_server(repo, cgroup_procs=cgroup_1g.procs, GATECAST_LOG_LEVEL="warning") as (url, proc):
        for _ in range(3):
            for status, response in asyncio.run(wave(url, payload, 6)):
                outcomes[status] += 1
                if status == 503:
                    assert response is not None and response.headers["retry-after"] == "1"
                    assert "short of memory" in response.json()["message"]
        assert proc.poll() is None, "the server died"
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
        small = {"model": "etth1-lstm", "series": [{"id": "a", "values": [20.0 + i % 24 for i in range(168)]}]}
        assert httpx.post(f"{url}/forecast", json=small).status_code == 200
        metrics = httpx.get(f"{url}/metrics").text
    assert set(outcomes) <= {200, 503}, outcomes
    assert outcomes[200] >= 3 and outcomes[503] > 0, outcomes
    assert cgroup_1g.oom_kills() == 0
    assert 'gatecast_errors_total{reason="memory_budget"}' in metrics
    print(f"outcomes {dict(outcomes)}; cgroup peak {cgroup_1g.peak_bytes() / MiB:.0f} MiB of 1024")


def test_a_request_bigger_than_the_whole_budget_is_told_to_split(tmp_path: Path) -> None:
    """The issue's case: 400 MB, about 9.5 MB and 9,500 series each, six at once. Such a request needs more than
    a worker under 400 MB can spare: 413 with what to do, and the server stays up. While the others' bodies are
    being read, one may not even fit its body: 503 and Retry-After, and sent again it is told to split."""
    # The five univariate models the issue measured with: a worker's budget is what its models leave free.
    repo = tmp_path / "models"
    for name in ("etth1-gru", "etth1-lstm", "m4-hourly-gru", "vix-gru", "vix-lstm"):
        shutil.copytree(MODELS / name, repo / name)
    payload = body(9_500, 168)
    with memory_cgroup(400 * MiB) as group:
        if group is None:
            pytest.skip("no writable memory cgroup here (needs root and the cgroup v1 or v2 memory controller)")
        with running_server(repo, cgroup_procs=group.procs, GATECAST_LOG_LEVEL="warning") as (url, proc):
            results = asyncio.run(wave(url, payload, 6))
            assert proc.poll() is None
            busy = [r for status, r in results if status == 503]
            retried = [
                httpx.post(f"{url}/forecast", content=payload, headers={"content-type": "application/json"})
                for _ in busy
            ]
            small = body(200, 168)
            assert (
                httpx.post(f"{url}/forecast", content=small, headers={"content-type": "application/json"}).status_code
                == 200
            )
        assert group.oom_kills() == 0
    statuses = [status for status, _ in results]
    assert 413 in statuses and set(statuses) <= {413, 503}, results
    assert all(r is not None and r.headers.get("retry-after") for r in busy)
    assert [r.status_code for r in retried] == [413] * len(busy)
    for _, r in results:
        if r is not None and r.status_code == 413:
            message = r.json()["message"]
            assert "split the request" in message and "GATECAST_MEMORY_BUDGET_MB" in message
    print(f"six at once: {statuses}; the 503s sent again alone: {[r.status_code for r in retried]}")


def test_two_workers_with_every_committed_model_take_every_worst_case_job_at_once_under_1_gib(
    cgroup_1g: MemoryCgroup,
) -> None:
    """The default server (2 workers here, the committed models) inside the manifests' 1 GiB, with every heavy
    job kind of issue 32 sent at once, twice each (harness/heavy.py: 10,000-window backtests, anomaly scoring
    and calibration on history, 10,000-series bodies on JSON, OIP binary and gRPC, 1,000-reading stream appends).
    Each one is answered (200, or 413/422/503 saying why); no worker is killed; small calls still work. The client
    honours Retry-After as a real one would: a 503 is sent again after a second, until a deadline. Which requests
    are shed depends on their order of arrival, which a busy machine shuffles, so only the retried outcome is
    asserted to include a 200."""
    grpc_port = str(free_port())
    with running_server(
        MODELS, workers=2, cgroup_procs=cgroup_1g.procs, GATECAST_GRPC_PORT=grpc_port, GATECAST_LOG_LEVEL="warning"
    ) as (url, proc):
        kinds = heavy_requests(f"127.0.0.1:{grpc_port}")

        async def fire() -> list[tuple[str, int | str]]:
            async with httpx.AsyncClient(base_url=url, timeout=120) as client:

                async def one(kind: str, i: int) -> tuple[str, int | str]:
                    while True:
                        try:
                            status, _ = await kinds[kind](client, i)
                        except httpx.HTTPError as exc:  # a reset: a worker died under it
                            return kind, type(exc).__name__
                        if status != 503 or time.monotonic() > deadline:
                            return kind, status
                        shed[kind] += 1
                        await asyncio.sleep(1.0)  # the server's Retry-After

                return list(await asyncio.gather(*(one(kind, i) for kind in kinds for i in range(2))))

        shed: collections.Counter[str] = collections.Counter()
        deadline = time.monotonic() + 120
        outcomes = asyncio.run(fire())
        assert proc.poll() is None, "the server died"
        small = {"model": "etth1-lstm", "series": [{"id": "a", "values": [20.0 + i % 24 for i in range(168)]}]}
        assert all(httpx.post(f"{url}/forecast", json=small).status_code == 200 for _ in range(8))
    assert {status for _, status in outcomes} <= {200, 413, 422, 503}, outcomes
    assert any(status == 200 for _, status in outcomes), outcomes  # shed under pressure, not refused wholesale
    assert cgroup_1g.oom_kills() == 0
    peak = cgroup_1g.peak_bytes() / MiB
    print(f"outcomes {sorted(outcomes)}; 503s retried {dict(shed)}; cgroup peak {peak:.0f} MiB of 1024")


def test_more_workers_than_the_limit_holds_stop_the_start_and_say_how_many_fit(tmp_path: Path) -> None:
    """The committed models take about 335 MiB a worker (the base model about 120 of them): two workers and the
    supervisor do not fit 600 MiB, one does. The server stops at startup with the reason, rather than start workers
    the kernel would kill under load."""
    with memory_cgroup(600 * MiB) as group:
        if group is None:
            pytest.skip("no writable memory cgroup here (needs root and the cgroup v1 or v2 memory controller)")
        command = [sys.executable, "-m", "app.cli", "serve", "--port", str(free_port()), "--workers", "2"]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GATECAST_")},
            "GATECAST_MODEL_REPOSITORY": str(MODELS),
            "GATECAST_GRPC_PORT": "0",
            "GATECAST_STATE_DIR": str(tmp_path / "state"),
            # Serving's own rule; a local Ray for training would share the limit (docs/operations.md#training).
            "GATECAST_TRAINING": "off",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        done = subprocess.run(
            ["sh", "-c", f'echo $$ > "{group.procs}" && exec "$@"', "sh", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode != 0
    assert "do not fit the memory limit" in done.stderr and "GATECAST_WORKERS=1" in done.stderr, done.stderr[-2000:]
