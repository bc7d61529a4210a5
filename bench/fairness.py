"""Fairness: how long a small `/forecast` waits while heavy jobs run on the same server.

`gatecast serve` with its defaults (one worker per CPU, the committed models, gRPC on) is probed by a steady
stream of small calls (one series of 168 values, etth1-lstm, one every 50 ms, open loop) first on
its own (idle), then while each kind of heavy job runs, one at a time and four at once. A heavy job is a request
at the limits of what the server admits, of the kinds that turn one request into many model windows:

  cv           POST /cross_validation, one series, 10,000 windows of one step (a 60 KB body)
  anomalies    POST /anomalies, one series of 10,048 values: 10,000 one-step forecasts
  calibration  POST /forecast with calibration "history": 9 series of 1,100 values, 1,024 past forecasts each
  timegpt-cv   POST /v2/cross_validation as the nixtla client sends it, 9,000 windows
  stream       POST /streams/{id}/points, 1,000 readings (one forecast per reading)
  forecast     POST /forecast, 10,000 series of 168 values (a 10 MB body)
  grpc         ModelInfer over gRPC, 10,000 x 168 FP32
  oip          POST /v2/models/etth1-lstm/infer, 10,000 x 168 binary FP32

Each heavy run reports the probes' p50 and p99 beside the idle run's, and what the heavy requests got (status
and seconds). Targets (issue 32): probe p99 <= 1 s under any single heavy job and <= 2 s under four, with the
heavy jobs still completing.

  python -m bench.fairness [--kinds cv,stream] [--out docs/benchmarks]    (make bench-fairness)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.settings import available_cpus
from harness import machine
from harness.heavy import MODEL, heavy_requests, values
from harness.live import free_port, running_server

ROOT = Path(__file__).resolve().parent.parent
PROBE_EVERY_S = 0.05  # a probe is sent this often, whether or not the earlier ones were answered
PROBE_CONNECTIONS = 8  # keep-alive connections the probes take turns on
IDLE_S = 10.0
MIN_PROBES = 40  # a heavy run lasts at least until this many probes were answered
TARGET_ONE_S, TARGET_FOUR_S = 1.0, 2.0


PROBE = {"model": MODEL, "series": [{"id": "probe", "values": values(168)}]}


async def probe_loop(url: str, stop: asyncio.Event, latencies: list[float], failures: list[str]) -> None:
    """Open loop: a probe every PROBE_EVERY_S whatever the earlier ones are doing, each timed from when it was due,
    so a stalled worker shows in every probe it holds up (a closed loop would send one and wait). The probes take
    turns on PROBE_CONNECTIONS keep-alive connections, as a load balancer's pool would, which the kernel spread over
    the workers when they were opened."""
    one_each = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(base_url=url, timeout=60, limits=one_each) for _ in range(PROBE_CONNECTIONS)]

    async def one(client: httpx.AsyncClient, due: float) -> None:
        try:
            r = await client.post("/forecast", json=PROBE)
            if r.status_code == 200:
                latencies.append(time.perf_counter() - due)
            else:
                failures.append(str(r.status_code))
        except httpx.HTTPError as exc:
            failures.append(type(exc).__name__)

    tasks: set[asyncio.Task[None]] = set()
    due = time.perf_counter()
    sent = 0
    while not stop.is_set():
        task = asyncio.create_task(one(clients[sent % len(clients)], due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
        due += PROBE_EVERY_S
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
    await asyncio.gather(*tasks)
    for client in clients:
        await client.aclose()


async def measure(
    url: str, heavy: Callable[[httpx.AsyncClient, int], Awaitable[tuple[int, float]]] | None, at_once: int
) -> dict[str, Any]:
    stop = asyncio.Event()
    latencies: list[float] = []
    failures: list[str] = []
    probes = [asyncio.create_task(probe_loop(url, stop, latencies, failures))]
    await asyncio.sleep(0.5)  # the probes' connections are open and warm
    latencies.clear()
    started = time.perf_counter()
    outcomes: list[tuple[int | str, float]] = []
    if heavy is None:
        await asyncio.sleep(IDLE_S)
    else:
        async with httpx.AsyncClient(base_url=url, timeout=180) as client:

            async def one(i: int) -> tuple[int | str, float]:
                t0 = time.perf_counter()
                try:
                    return await heavy(client, i)
                except httpx.HTTPError as exc:
                    return type(exc).__name__, time.perf_counter() - t0

            outcomes = list(await asyncio.gather(*(one(i) for i in range(at_once))))
        while len(latencies) < MIN_PROBES:
            await asyncio.sleep(0.05)
    seconds = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*probes)
    ms = np.asarray(latencies) * 1e3
    return {
        "probes": len(latencies),
        "probe_failures": failures,
        "p50_ms": float(np.median(ms)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "seconds": seconds,
        "heavy": [{"status": s, "seconds": round(t, 3)} for s, t in outcomes],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="", help="comma-separated heavy kinds (default: all)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    args = parser.parse_args()
    grpc_port = free_port()
    repo = Path(tempfile.mkdtemp(prefix="gatecast-fairness-")) / "models"
    repo.symlink_to(ROOT / "models")
    kinds = heavy_requests(f"127.0.0.1:{grpc_port}")
    chosen = [k for k in args.kinds.split(",") if k] or list(kinds)
    env = {"GATECAST_GRPC_PORT": str(grpc_port), "GATECAST_LOG_LEVEL": "warning"}
    workers = available_cpus()
    runs: dict[str, Any] = {}
    with running_server(repo, workers=workers, **env) as (url, _):
        httpx.post(f"{url}/forecast", json=PROBE, timeout=30)  # every worker's first request is not timed
        runs["idle"] = asyncio.run(measure(url, None, 0))
        print(f"idle: p50 {runs['idle']['p50_ms']:.1f} ms, p99 {runs['idle']['p99_ms']:.1f} ms", flush=True)
        for kind in chosen:
            for at_once in (1, 4):
                key = f"{kind} x{at_once}"
                runs[key] = run = asyncio.run(measure(url, kinds[kind], at_once))
                got = ", ".join(f"{h['status']} in {h['seconds']:.1f} s" for h in run["heavy"])
                print(
                    f"{key}: probes p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms, max "
                    f"{run['max_ms']:.0f} ms ({run['probes']} probes, {len(run['probe_failures'])} failed); heavy: "
                    f"{got}",
                    flush=True,
                )
    result = {
        "machine": machine.describe(),
        "workers": workers,
        "model": MODEL,
        "targets": {"p99_one_s": TARGET_ONE_S, "p99_four_s": TARGET_FOUR_S},
        "runs": runs,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fairness.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "fairness.md").write_text(render(result))
    print(f"-> {out / 'fairness.json'}, {out / 'fairness.md'}")


def render(r: dict[str, Any]) -> str:
    idle = r["runs"]["idle"]
    lines = [
        "# Fairness: small forecasts while heavy jobs run",
        "",
        f"Generated by `python -m bench.fairness` (`make bench-fairness`) on {machine.named(r['machine'])}, "
        f"`gatecast serve` with {r['workers']} workers and the committed models. "
        f"A probe, one series of 168 values to `{r['model']}`, is sent every {PROBE_EVERY_S * 1000:.0f} ms whether "
        "or not the earlier ones were answered, and timed from when it was due, taking turns on "
        f"{PROBE_CONNECTIONS} keep-alive connections, while the heavy requests run; the "
        "heavy kinds are described in bench/fairness.py. Targets: probe p99 at most "
        f"{r['targets']['p99_one_s']:g} s under one heavy request and {r['targets']['p99_four_s']:g} s under four.",
        "",
        "| heavy job | at once | probes | probe p50 ms | probe p99 ms | probe max ms | p99 / idle | target | "
        "heavy requests got |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| none (idle) | 0 | {idle['probes']} | {idle['p50_ms']:.1f} | {idle['p99_ms']:.1f} | {idle['max_ms']:.1f} | "
        "1.0 | | |",
    ]
    for key, run in r["runs"].items():
        if key == "idle":
            continue
        kind, at_once = key.rsplit(" x", 1)
        target = r["targets"]["p99_one_s" if at_once == "1" else "p99_four_s"] * 1000
        met = "met" if run["p99_ms"] <= target and not run["probe_failures"] else "**missed**"
        got = ", ".join(f"{h['status']} in {h['seconds']:.1f} s" for h in run["heavy"])
        failed = f" ({len(run['probe_failures'])} failed)" if run["probe_failures"] else ""
        lines.append(
            f"| {kind} | {at_once} | {run['probes']}{failed} | {run['p50_ms']:.1f} | {run['p99_ms']:.1f} | "
            f"{run['max_ms']:.0f} | "
            f"{run['p99_ms'] / idle['p99_ms']:.1f} | {met} | {got} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
