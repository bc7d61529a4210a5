"""Load against a live server: closed-loop clients for a while (`hammer`), one wave of identical bodies at once
(`wave`), bodies at the request limits (`storm_body`), and a process's resident memory (`rss_kb`)."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import httpx

ONE = {"model": "etth1-lstm", "series": [{"id": "a", "values": [float(i % 24) for i in range(168)]}]}
HEAVY = {
    "model": "etth1-lstm",
    "series": [{"id": str(i), "values": [float((i + j) % 24) for j in range(168)]} for i in range(64)],
}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def hammer(url: str, seconds: float, concurrency: int) -> collections.Counter[str]:
    """`concurrency` clients sending HEAVY for `seconds`: outcomes by status (or exception name). A 503 must carry
    Retry-After: 1 and say to retry."""
    outcomes: collections.Counter[str] = collections.Counter()
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker() -> None:
            while time.monotonic() < stop:
                try:
                    r = await client.post("/forecast", json=HEAVY)
                    outcomes[str(r.status_code)] += 1
                    if r.status_code == 503:
                        assert r.headers.get("retry-after") == "1"
                        assert "retry" in r.json()["message"]
                except httpx.HTTPError as exc:
                    outcomes[type(exc).__name__] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def storm_body(series: int, values: int) -> bytes:
    """A JSON /forecast body of `series` series of `values` values each (about 6 bytes a value)."""
    row = ",".join(f"{20 + (j % 24) * 0.25:.2f}" for j in range(values))
    items = ",".join(f'{{"id":"s{i}","values":[{row}]}}' for i in range(series))
    return f'{{"model":"etth1-lstm","series":[{items}]}}'.encode()


async def wave(
    url: str, payload: bytes, concurrency: int, path: str = "/forecast"
) -> list[tuple[int | str, httpx.Response | None]]:
    """`concurrency` copies of `payload` at once: each status, or the exception name of a reset connection
    (what a killed worker looks like)."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def one() -> tuple[int | str, httpx.Response | None]:
            try:
                r = await client.post(path, content=payload, headers={"content-type": "application/json"})
                return r.status_code, r
            except httpx.HTTPError as exc:
                return type(exc).__name__, None

        return await asyncio.gather(*(one() for _ in range(concurrency)))
