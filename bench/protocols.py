"""The clients users already hold, measured against `gatecast serve` (its defaults, the committed models) in one run:

1. latency, one call at a time, of the same forecast asked three ways: `/forecast` JSON (httpx), OIP v2 over HTTP
   with binary tensors (tritonclient.http) and OIP v2 over gRPC (tritonclient.grpc); 1 and 32 series per call,
   the three interleaved round by round so that the machine's drift hits them alike;
2. throughput at 16 calls in flight from the asyncio clients (tritonclient.http.aio, tritonclient.grpc.aio), in
   series per second; gRPC over one connection (the client's default: one worker process serves it) and over
   several; the Python clients run on the same cores as the server;
3. cross-validation: windows per second of `POST /cross_validation` (every window of a request in batched
   onnxruntime runs) against the same windows asked one `/forecast` call each, one after another.

The series are real ETTh1 windows when ../shared/data is there (bench.serving.windows), else synthetic.

  python -m bench.protocols [--calls 2000] [--out docs/benchmarks]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tritonclient.grpc as tgrpc
import tritonclient.grpc.aio as tgrpc_aio
import tritonclient.http as thttp
import tritonclient.http.aio as thttp_aio

from bench.serving import MODEL, windows
from harness import machine
from harness.live import free_port, wait_ready

ROOT = Path(__file__).resolve().parent.parent
HORIZON = 24
CONNECTIONS = 4  # gRPC connections for the second gRPC throughput figure


@contextmanager
def gatecast() -> Iterator[tuple[str, str]]:
    """`gatecast serve` with its defaults (one worker per CPU, gRPC on) on free ports: (HTTP url, gRPC address)."""
    http_port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECAST_")}
    env["GATECAST_GRPC_PORT"] = str(grpc_port)
    env["GATECAST_TRAINING"] = "off"  # a serving install: no local Ray beside the workers
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(http_port)]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        wait_ready(url, proc)
        yield url, f"127.0.0.1:{grpc_port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def _summary(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(times) * 1e3,
        "p99_ms": float(np.percentile(times, 99)) * 1e3,
        "calls": len(times),
    }


def latency(url: str, address: str, x: np.ndarray, calls: int) -> dict[str, dict[str, float]]:
    """p50/p99 of one call at a time, the three ways interleaved in rounds of 50."""
    body = {"model": MODEL, "series": [{"id": str(i), "values": row.round(3).tolist()} for i, row in enumerate(x)]}
    encoded = json.dumps(body).encode()
    http_input = thttp.InferInput("values", list(x.shape), "FP32")
    http_input.set_data_from_numpy(x, binary_data=True)
    grpc_input = tgrpc.InferInput("values", list(x.shape), "FP32")
    grpc_input.set_data_from_numpy(x)
    with (
        httpx.Client(base_url=url) as plain,
        thttp.InferenceServerClient(url.removeprefix("http://")) as http,
        tgrpc.InferenceServerClient(address) as grpc,
    ):
        ways: dict[str, Callable[[], object]] = {
            "/forecast JSON (httpx)": lambda: plain.post(
                "/forecast", content=encoded, headers={"content-type": "application/json"}
            ).raise_for_status(),
            "OIP v2 HTTP, binary tensors (tritonclient.http)": lambda: http.infer(MODEL, [http_input]),
            "OIP v2 gRPC (tritonclient.grpc)": lambda: grpc.infer(MODEL, [grpc_input]),
        }
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(20):  # connections open, caches warm
            for call in ways.values():
                call()
        for _ in range(max(1, calls // 50)):
            for name, call in ways.items():
                for _ in range(50):
                    t0 = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - t0)
    return {name: _summary(t) for name, t in times.items()}


async def _throughput_async(url: str, address: str, x: np.ndarray, seconds: float, inflight: int) -> dict[str, float]:
    http_input = thttp_aio.InferInput("values", list(x.shape), "FP32")
    http_input.set_data_from_numpy(x, binary_data=True)
    grpc_input = tgrpc_aio.InferInput("values", list(x.shape), "FP32")
    grpc_input.set_data_from_numpy(x)
    http = thttp_aio.InferenceServerClient(url.removeprefix("http://"), conn_limit=inflight)
    grpc = tgrpc_aio.InferenceServerClient(address)
    # gRPC multiplexes every call of a channel over one connection, which one worker process serves; channels
    # with their own subchannel pool open their own connections, which the kernel spreads over the workers.
    own = [("grpc.use_local_subchannel_pool", 1)]
    spread = [tgrpc_aio.InferenceServerClient(address, channel_args=own) for _ in range(CONNECTIONS)]
    turn = itertools.cycle(spread)
    calls: dict[str, Callable[[], Any]] = {
        "OIP v2 HTTP, binary tensors (tritonclient.http.aio)": lambda: http.infer(MODEL, [http_input]),
        "OIP v2 gRPC, one connection (tritonclient.grpc.aio)": lambda: grpc.infer(MODEL, [grpc_input]),
        f"OIP v2 gRPC, {CONNECTIONS} connections (tritonclient.grpc.aio)": lambda: next(turn).infer(
            MODEL, [grpc_input]
        ),
    }
    out = {}
    try:
        for name, call in calls.items():

            async def worker(until: float, call: Callable[[], Any] = call) -> int:
                done = 0
                while time.perf_counter() < until:
                    await call()
                    done += 1
                return done

            await asyncio.gather(*(worker(time.perf_counter() + 1.0) for _ in range(inflight)))  # warm-up
            started = time.perf_counter()
            counts = await asyncio.gather(*(worker(started + seconds) for _ in range(inflight)))
            out[name] = sum(counts) * len(x) / (time.perf_counter() - started)
    finally:
        for client in (http, grpc, *spread):
            await client.close()
    return out


def throughput(url: str, address: str, x: np.ndarray, seconds: float, turns: int = 3) -> dict[str, float]:
    """Series per second at 16 calls in flight, the median of `turns` alternations."""
    runs: dict[str, list[float]] = {}
    for _ in range(turns):
        for name, value in asyncio.run(_throughput_async(url, address, x, seconds, 16)).items():
            runs.setdefault(name, []).append(value)
    return {name: statistics.median(v) for name, v in runs.items()}


def cross_validation(url: str, series: np.ndarray, n_windows: int) -> dict[str, float]:
    """Windows per second: one /cross_validation request against the same windows as /forecast calls."""
    body = {
        "model": MODEL,
        "h": HORIZON,
        "n_windows": n_windows,
        "step_size": HORIZON,
        "level": [80, 95],
        "series": [{"id": str(i), "values": row.round(3).tolist()} for i, row in enumerate(series)],
    }
    windows_total = len(series) * n_windows
    with httpx.Client(base_url=url, timeout=120) as client:
        client.post("/cross_validation", json=body).raise_for_status()  # warm
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            answer = client.post("/cross_validation", json=body)
            times.append(time.perf_counter() - t0)
            answer.raise_for_status()
        assert sum(len(s["windows"]) for s in answer.json()["series"]) == windows_total
        # The same windows, one /forecast call each (what a client without the route does).
        singles = []
        for row in series:
            for w in range(n_windows):
                cut = len(row) - HORIZON * (n_windows - w)
                singles.append(
                    {
                        "model": MODEL,
                        "horizon": HORIZON,
                        "level": [80, 95],
                        "series": [{"id": "s", "values": row[:cut].round(3).tolist()}],
                    }
                )
        t0 = time.perf_counter()
        for one in singles:
            client.post("/forecast", json=one).raise_for_status()
        one_by_one = time.perf_counter() - t0
    return {
        "series": len(series),
        "n_windows": n_windows,
        "windows": windows_total,
        "cross_validation_windows_per_s": windows_total / statistics.median(times),
        "forecast_calls_windows_per_s": windows_total / one_by_one,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="calls per way and batch size for the latencies")
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput turn")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    x = windows(64)
    long_series = _long_series(32, 168 + HORIZON * 20)
    result: dict[str, Any] = {
        "machine": machine.describe(),
        "model": MODEL,
        "series_length": int(x.shape[1]),
    }
    with gatecast() as (url, address):
        print("latency, one call at a time", flush=True)
        result["latency"] = {str(b): latency(url, address, x[:b], args.calls) for b in (1, 32)}
        for b, ways in result["latency"].items():
            for name, s in ways.items():
                print(f"  {b:>2} series  {name:<52} p50 {s['p50_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms", flush=True)
        print("throughput, 16 calls in flight", flush=True)
        result["throughput"] = {str(b): throughput(url, address, x[:b], args.seconds) for b in (1, 32)}
        print(f"  {result['throughput']}", flush=True)
        print("cross-validation", flush=True)
        result["cross_validation"] = [cross_validation(url, long_series[:s], w) for s, w in ((1, 20), (32, 20))]
        print(f"  {result['cross_validation']}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "protocols.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "protocols.md").write_text(render(result))
    print(f"-> {args.out / 'protocols.json'}, {args.out / 'protocols.md'}")


def _long_series(count: int, length: int) -> np.ndarray:
    """`count` ETTh1 stretches of `length` points (synthetic without the data)."""
    try:
        from training.data import load_etth1

        values = load_etth1().series[0].values
        starts = np.linspace(0, len(values) - length, count).astype(int)
        return np.stack([values[s : s + length] for s in starts]).astype(np.float64)
    except FileNotFoundError:
        t = np.arange(length)
        return np.stack([30 + 5 * np.sin(2 * np.pi * (t + i) / 24) for i in range(count)])


def render(r: dict[str, Any]) -> str:
    lines = [
        "# The clients users already hold: gRPC beside HTTP, and cross-validation",
        "",
        f"`python -m bench.protocols` on {machine.named(r['machine'])}, `gatecast serve` with its defaults, model "
        f"`{r['model']}`, {r['series_length']}-point series. The clients run on the same cores as the server.",
        "",
        "## Latency, one call at a time",
        "",
        "| way | series per call | p50 | p99 |",
        "|---|---|---|---|",
    ]
    for b, ways in r["latency"].items():
        for name, s in ways.items():
            lines.append(f"| {name} | {b} | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms |")
    lines += ["", "## Throughput, 16 calls in flight (series per second)", "", "| way | 1 series | 32 series |"]
    lines.append("|---|---|---|")
    for name in r["throughput"]["1"]:
        lines.append(f"| {name} | {r['throughput']['1'][name]:,.0f} | {r['throughput']['32'][name]:,.0f} |")
    lines += [
        "",
        "## Cross-validation",
        "",
        f"Rolling origins {HORIZON} steps apart, horizon {HORIZON}, 80% and 95% intervals, scores per window.",
        "",
        "| series x windows | `POST /cross_validation` | the same windows as one `/forecast` call each |",
        "|---|---|---|",
    ]
    for c in r["cross_validation"]:
        lines.append(
            f"| {c['series']} x {c['n_windows']} | {c['cross_validation_windows_per_s']:,.0f} windows/s | "
            f"{c['forecast_calls_windows_per_s']:,.0f} windows/s |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
