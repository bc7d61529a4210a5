"""Serving benchmark: gatecast against the raw onnxruntime floor and a naive FastAPI + PyTorch server.

Everything in one run on the same machine, so the ratios are comparable:
  1. the floor: `session.run` of the same model in-process (latency of one series; throughput with all cores);
  2. gatecast (`gatecast serve`) under wrk at 1, 4, 16, 64 connections, real ETTh1 windows of 168 points;
  3. the naive server (bench/naive_server.py) under the same load;
  4. batch requests of 1, 32 and 256 series per request: forecasts per second.
Each wrk point follows a stability rule (perf_analyzer's): measurement windows are repeated until three
consecutive ones agree within 10% on throughput (at most `--max-windows`); the figures are the medians of
those three. wrk runs on the same 2 cores as the server: it is C and light, but the figures include it.

  python -m bench.serving [--window-s 5] [--out docs/benchmarks]    (make bench)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

from app.settings import available_cpus
from tests.live import free_port

ROOT = Path(__file__).resolve().parent.parent
MODEL = "etth1-lstm"
LUA = ROOT / "bench" / "post.lua"


def windows(count: int) -> np.ndarray:
    """Real ETTh1 test windows of 168 points when the data is there, else a synthetic stand-in."""
    try:
        from training.data import load_etth1

        values = load_etth1().series[0].values
        origins = np.linspace(11520, 14400 - 24, count).astype(int)
        return np.stack([values[o - 168 : o] for o in origins]).astype(np.float32)
    except FileNotFoundError:
        t = np.arange(168)
        return np.stack([30 + 5 * np.sin(2 * np.pi * (t + i) / 24) for i in range(count)]).astype(np.float32)


def body(series: np.ndarray) -> str:
    return json.dumps(
        {
            "model": MODEL,
            "series": [{"id": str(i), "values": [round(float(v), 3) for v in row]} for i, row in enumerate(series)],
        }
    )


# --- the floor ------------------------------------------------------------------------------------------


def raw_session(threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        str(ROOT / "models" / MODEL / "1" / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )


def raw_latency(x: np.ndarray, runs: int = 5000) -> dict[str, float]:
    session = raw_session(available_cpus())
    for row in x[:200]:
        session.run(None, {"values": row[None, :]})
    times = []
    for i in range(runs):
        row = x[i % len(x)][None, :]
        t0 = time.perf_counter()
        session.run(None, {"values": row})
        times.append(time.perf_counter() - t0)
    return {
        "p50_ms": float(np.median(times)) * 1e3,
        "p90_ms": float(np.percentile(times, 90)) * 1e3,
        "p99_ms": float(np.percentile(times, 99)) * 1e3,
    }


def raw_throughput(x: np.ndarray, batch: int, seconds: float = 5.0) -> float:
    """Series per second with every core busy: one single-threaded session per core, `batch` rows a run."""
    cores = available_cpus()
    sessions = [raw_session(1) for _ in range(cores)]
    counts = [0] * cores
    stop = time.perf_counter() + seconds

    def loop(i: int) -> None:
        xb = np.resize(x, (batch, x.shape[1]))
        while time.perf_counter() < stop:
            sessions[i].run(None, {"values": xb})
            counts[i] += batch

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(cores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


# --- servers under wrk ------------------------------------------------------------------------------------


@contextmanager
def server(command: list[str], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    port = free_port()
    argv = [str(port) if a == "PORT" else a for a in command] if "PORT" in command else [*command, "--port", str(port)]
    proc = subprocess.Popen(
        argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.post(
                    f"{url}/forecast", content=body(windows(1)), timeout=2, headers={"content-type": "application/json"}
                ).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise RuntimeError(f"{command} did not come up")
        yield url, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def wrk(url: str, body_file: Path, connections: int, seconds: float) -> dict[str, float]:
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{round(seconds)}s",
            "-s",
            str(LUA),
            f"{url}/forecast",
            "--",
            str(body_file),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    stats = json.loads(out.strip().splitlines()[-1])
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    return stats


def stable_point(url: str, body_file: Path, connections: int, window_s: float, max_windows: int) -> dict[str, Any]:
    wrk(url, body_file, connections, 2)  # warm-up
    runs: list[dict[str, float]] = []
    stable = False
    while len(runs) < max_windows:
        runs.append(wrk(url, body_file, connections, window_s))
        if len(runs) >= 3:
            last = [r["rps"] for r in runs[-3:]]
            if (max(last) - min(last)) / statistics.mean(last) <= 0.10:
                stable = True
                break
    last3 = runs[-3:]
    rps = [r["rps"] for r in last3]
    return {
        "connections": connections,
        "rps": statistics.median(r["rps"] for r in last3),
        "p50_ms": statistics.median(r["p50_us"] for r in last3) / 1e3,
        "p90_ms": statistics.median(r["p90_us"] for r in last3) / 1e3,
        "p99_ms": statistics.median(r["p99_us"] for r in last3) / 1e3,
        "errors": int(sum(r["socket_errors"] + r["non_2xx"] for r in runs)),
        "windows": len(runs),
        "stable": stable,
        "spread": (max(rps) - min(rps)) / statistics.mean(rps),
    }


def sweep(url: str, body_file: Path, levels: list[int], window_s: float, max_windows: int) -> list[dict[str, Any]]:
    points = []
    for c in levels:
        point = stable_point(url, body_file, c, window_s, max_windows)
        print(
            f"    c={c:<3} {point['rps']:8.0f} req/s  p50 {point['p50_ms']:6.2f} ms  p90 {point['p90_ms']:6.2f}  "
            f"p99 {point['p99_ms']:6.2f}  errors {point['errors']}  windows {point['windows']}"
            f"{'' if point['stable'] else ' (not stable)'}",
            flush=True,
        )
        points.append(point)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window-s", type=float, default=5.0, help="seconds per measurement window")
    parser.add_argument("--max-windows", type=int, default=6)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is missing (apt-get install wrk)")
    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="gatecast-bench-"))
    x = windows(256)
    bodies = {n: tmp / f"body-{n}.json" for n in (1, 32, 256)}
    for n, path in bodies.items():
        path.write_text(body(x[:n]))

    result: dict[str, Any] = {
        "machine": {
            "cpus": available_cpus(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "processor": platform.processor() or platform.machine(),
        },
        "model": MODEL,
        "series_length": 168,
    }
    print(f"floor: raw onnxruntime session.run, {MODEL}, one 168-point series", flush=True)
    result["raw"] = {"latency": raw_latency(x)}
    result["raw"]["throughput_series_per_s"] = {str(b): raw_throughput(x, b) for b in (1, 32, 256)}
    print(f"    latency {result['raw']['latency']}\n    throughput {result['raw']['throughput_series_per_s']}")

    gatecast_cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1"]
    quiet = {"GATECAST_LOG_LEVEL": "warning"}
    result["gatecast"] = {}
    for workers in (1, 2):
        print(f"gatecast, {workers} worker(s), one series per request", flush=True)
        with server(gatecast_cmd + ["--workers", str(workers)], quiet) as (url, _):
            result["gatecast"][f"workers={workers}"] = sweep(
                url, bodies[1], args.concurrency, args.window_s, args.max_windows
            )
            if workers == 1:
                print("gatecast, 1 worker, batch requests at 4 connections", flush=True)
                batch = {}
                for n in (32, 256):
                    point = stable_point(url, bodies[n], 4, args.window_s, args.max_windows)
                    point["series_per_s"] = point["rps"] * n
                    batch[str(n)] = point
                    rate, p50 = point["series_per_s"], point["p50_ms"]
                    print(f"    {n:>3} series/request: {rate:9.0f} series/s, p50 {p50:.2f} ms")
                one = max(result["gatecast"]["workers=1"], key=lambda p: p["rps"])
                batch["1"] = {**one, "series_per_s": one["rps"]}
                result["gatecast_batch_requests"] = batch

    if not args.skip_naive:
        print("naive server: FastAPI + PyTorch eager, one request at a time", flush=True)
        naive_cmd = [
            sys.executable,
            "-m",
            "bench.naive_server",
            str(ROOT / "runs" / MODEL / "checkpoint.pt"),
            str(ROOT / "training" / "configs" / f"{MODEL}.toml"),
            "PORT",
        ]
        with server(naive_cmd) as (url, _):
            result["naive"] = sweep(url, bodies[1], args.concurrency, args.window_s, args.max_windows)

    result["ratios"] = ratios(result)
    result["seconds"] = time.time() - started
    write(result, args.out)
    print(json.dumps(result["ratios"], indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


def ratios(r: dict[str, Any]) -> dict[str, Any]:
    best = max((p for points in r["gatecast"].values() for p in points), key=lambda p: p["rps"])
    c1 = r["gatecast"]["workers=1"][0]
    out = {
        "c1_median_minus_raw_ms": c1["p50_ms"] - r["raw"]["latency"]["p50_ms"],
        "c1_p99_minus_raw_ms": c1["p99_ms"] - r["raw"]["latency"]["p99_ms"],
        "best_rps": best["rps"],
        "best_at": best["connections"],
        "best_rps_over_raw_batch1": best["rps"] / r["raw"]["throughput_series_per_s"]["1"],
    }
    if "naive" in r:
        naive_best = max(p["rps"] for p in r["naive"])
        out["naive_best_rps"] = naive_best
        out["best_rps_over_naive"] = best["rps"] / naive_best
    return out


def render(r: dict[str, Any]) -> str:
    """docs/benchmarks/serving.md from the JSON of one run."""
    raw, ratios = r["raw"], r["ratios"]
    m = r["machine"]
    lines = [
        "# Serving benchmark",
        "",
        f"`python -m bench.serving` ({r['seconds'] / 60:.0f} min), {m['cpus']} CPUs ({m['processor']}), "
        f"{m['platform']}, onnxruntime {m['onnxruntime']}. Model `{r['model']}`, one real ETTh1 window of "
        f"{r['series_length']} points per request unless stated. wrk (C) generates the load on the same cores. "
        "Each point: windows of 5 s repeated until three in a row agree within 10% on throughput (at most 6); "
        "figures are the medians of those three.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| median latency at concurrency 1 within 1.0 ms of raw onnxruntime | "
        f"{r['gatecast']['workers=1'][0]['p50_ms']:.2f} ms vs {raw['latency']['p50_ms']:.3f} ms: "
        f"+{ratios['c1_median_minus_raw_ms']:.2f} ms | {'yes' if ratios['c1_median_minus_raw_ms'] <= 1.0 else 'no'} |",
        f"| best throughput at least 60% of raw onnxruntime on the same cores | {ratios['best_rps']:.0f} req/s "
        f"(c={ratios['best_at']}) vs {raw['throughput_series_per_s']['1']:.0f} series/s: "
        f"{ratios['best_rps_over_raw_batch1'] * 100:.1f}% | "
        f"{'yes' if ratios['best_rps_over_raw_batch1'] >= 0.6 else 'no'} |",
    ]
    if "naive" in r:
        lines.append(
            f"| at least 3x the naive server's throughput | {ratios['best_rps']:.0f} vs "
            f"{ratios['naive_best_rps']:.0f} req/s: {ratios['best_rps_over_naive']:.2f}x | "
            f"{'yes' if ratios['best_rps_over_naive'] >= 3 else 'no'} |"
        )
    lines += [
        "",
        "## The floor: raw onnxruntime in-process",
        "",
        f"One series, `session.run`, {m['cpus']} intra-op threads: median {raw['latency']['p50_ms']:.3f} ms, "
        f"p90 {raw['latency']['p90_ms']:.3f} ms, p99 {raw['latency']['p99_ms']:.3f} ms. Throughput with every "
        "core busy (one single-threaded session per core): "
        + ", ".join(f"batch {b}: {v:.0f} series/s" for b, v in raw["throughput_series_per_s"].items())
        + ".",
        "",
        "## Concurrency sweep, one series per request",
        "",
        "| server | connections | req/s | p50 ms | p90 ms | p99 ms | errors | windows | stable |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    servers = {f"gatecast, {k.replace('=', ' ')}": v for k, v in r["gatecast"].items()}
    if "naive" in r:
        servers["naive FastAPI + PyTorch eager"] = r["naive"]
    for name, points in servers.items():
        for p in points:
            lines.append(
                f"| {name} | {p['connections']} | {p['rps']:.0f} | {p['p50_ms']:.2f} | {p['p90_ms']:.2f} | "
                f"{p['p99_ms']:.2f} | {p['errors']} | {p['windows']} | {'yes' if p['stable'] else 'no'} "
                f"(spread {p['spread'] * 100:.0f}%) |"
            )
    lines += [
        "",
        "## Batch requests (gatecast, 1 worker, 4 connections)",
        "",
        "| series per request | forecasts/s | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    for n, p in sorted(r["gatecast_batch_requests"].items(), key=lambda kv: int(kv[0])):
        lines.append(f"| {n} | {p['series_per_s']:.0f} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} |")
    lines += ["", "![serving](serving.png)", ""]
    return "\n".join(lines)


def write(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(result, indent=2))
    (out / "serving.md").write_text(render(result))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    series = {f"gatecast {k}": v for k, v in result["gatecast"].items()}
    if "naive" in result:
        series["naive FastAPI+PyTorch"] = result["naive"]
    for label, points in series.items():
        c = [p["connections"] for p in points]
        ax1.plot(c, [p["p50_ms"] for p in points], marker="o", label=f"{label} p50")
        ax1.plot(c, [p["p99_ms"] for p in points], marker="x", ls="--", label=f"{label} p99")
        ax2.plot(c, [p["rps"] for p in points], marker="o", label=label)
    ax1.axhline(result["raw"]["latency"]["p50_ms"], color="k", lw=0.8, label="raw onnxruntime p50")
    ax2.axhline(result["raw"]["throughput_series_per_s"]["1"], color="k", lw=0.8, label="raw onnxruntime, all cores")
    for ax, title, unit in ((ax1, "latency", "ms"), (ax2, "throughput", "requests/s")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent connections")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.legend(fontsize=7)
    ax1.set_yscale("log")
    fig.suptitle(f"{result['model']}, one 168-point series per request, {result['machine']['cpus']} CPUs")
    fig.tight_layout()
    fig.savefig(out / "serving.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
