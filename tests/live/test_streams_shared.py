"""Streams shared by several gatecast processes: two real servers on one store (a real Redis server, or one
SQLite file) appending to the same streams alternately and concurrently, and a restart that keeps them."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.live import running_server
from harness.redis_server import redis_server
from tests.markers import needs_redis
from tests.synthetic import seasonal_series

pytestmark = pytest.mark.slow  # live servers, or a network service

WINDOW = 48  # what the tiny model reads (tests/synthetic.tiny_config)


@pytest.fixture(params=["redis", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The environment that points a server at the shared store."""
    if request.param == "redis":
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server missing (apt-get install redis-server)")
        with redis_server() as url:
            yield {"GATECAST_STREAM_STORE": url}
    else:
        folder = tempfile.mkdtemp(prefix="gatecast-state-")
        yield {"GATECAST_STATE_DIR": folder}
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def two_servers(repository: Path, store: dict[str, str]) -> Iterator[list[str]]:
    with ExitStack() as stack:
        yield [stack.enter_context(running_server(repository, **store))[0] for _ in range(2)]


def readings_total(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "gatecast_stream_readings_total"
    )


def test_alternate_appends_from_two_servers_make_one_stream(two_servers: list[str]) -> None:
    a, b = two_servers
    assert httpx.put(f"{a}/streams/alt", json={"model": "tiny", "level": [80]}).status_code == 201
    assert httpx.put(f"{b}/streams/alt", json={"model": "tiny", "level": [80]}).status_code == 200  # it exists
    values = [round(float(v), 4) for v in seasonal_series(70, seed=4)]
    for i, v in enumerate(values):
        r = httpx.post(f"{two_servers[i % 2]}/streams/alt/points", json={"values": [v]})
        assert r.status_code == 200 and r.json()["points"] == i + 1, r.text
    seen = [httpx.get(f"{url}/streams/alt").json() for url in two_servers]
    assert seen[0] == seen[1]
    assert seen[0]["points"] == 70 and seen[0]["recent"] == pytest.approx(values[-WINDOW:])
    alone = httpx.post(
        f"{b}/forecast", json={"model": "tiny", "level": [80], "series": [{"id": "x", "values": values}]}
    ).json()["forecasts"][0]
    np.testing.assert_allclose(seen[0]["forecast"]["mean"], alone["mean"], rtol=1e-6)


def test_concurrent_appends_lose_nothing_and_duplicate_nothing(two_servers: list[str]) -> None:
    """Four clients, two per server, append 30 readings each to one stream as fast as they can: every append
    lands exactly once, and each client's readings keep their order."""
    a, _ = two_servers
    assert httpx.put(f"{a}/streams/busy", json={"model": "tiny"}).status_code == 201
    before = sum(readings_total(url) for url in two_servers)
    per_client = 30

    def client(k: int) -> list[int]:
        points = []
        with httpx.Client(base_url=two_servers[k % 2], timeout=30) as http:
            for j in range(per_client):
                r = http.post("/streams/busy/points", json={"values": [1000.0 * (k + 1) + j]})
                assert r.status_code == 200, r.text
                points.append(r.json()["points"])
        return points

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(client, range(4)))
    counts = sorted(p for points in answers for p in points)
    assert counts == list(range(1, 4 * per_client + 1))  # each append saw a distinct stream length
    final = httpx.get(f"{a}/streams/busy").json()
    assert final["points"] == 4 * per_client
    recent = final["recent"]
    assert len(recent) == WINDOW and len(set(recent)) == WINDOW  # nothing applied twice
    for k in range(4):
        mine = [v for v in recent if 1000 * (k + 1) <= v < 1000 * (k + 2)]
        assert mine == sorted(mine)  # each client's readings in the order it sent them
    assert sum(readings_total(url) for url in two_servers) - before == 4 * per_client


def test_a_restarted_server_keeps_every_stream(repository: Path, store: dict[str, str]) -> None:
    values = [round(float(v), 4) for v in seasonal_series(40, seed=9)]
    with running_server(repository, **store) as (url, _):
        for name in ("s1", "s2", "s3"):
            assert httpx.put(f"{url}/streams/{name}", json={"model": "tiny"}).status_code == 201
            assert httpx.post(f"{url}/streams/{name}/points", json={"values": values}).status_code == 200
        before = {name: httpx.get(f"{url}/streams/{name}").json() for name in ("s1", "s2", "s3")}
    with running_server(repository, **store) as (url, _):
        assert httpx.get(f"{url}/streams").json()["streams"] == ["s1", "s2", "s3"]
        for name, state in before.items():
            assert httpx.get(f"{url}/streams/{name}").json() == state


@needs_redis
def test_an_unreachable_redis_is_a_503_that_changes_nothing(repository: Path) -> None:
    from harness.live import free_port

    with running_server(repository, GATECAST_STREAM_STORE=f"redis://127.0.0.1:{free_port()}/0") as (url, _):
        r = httpx.put(f"{url}/streams/x", json={"model": "tiny"})
        assert r.status_code == 503 and "stream store (redis)" in r.json()["message"], r.text
        assert "retry-after" in r.headers
        body = {"model": "tiny", "series": [{"id": "a", "values": [1.0] * 48}]}
        assert httpx.post(f"{url}/forecast", json=body).status_code == 200  # forecasts carry on
