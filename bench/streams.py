"""Live feeds, measured against `gatecast serve` (its defaults, the committed models) in one run:

1. one-reading appends per second, p50/p99, with N streams (10,000 by default) of the ETTh1 model, each
   holding the model's whole window, under wrk at 16 connections, random stream per request: on the embedded
   store (SQLite in a state folder) and on Redis (a real redis-server on loopback, started here);
2. the same model asked through `/forecast` carrying the whole 168-point window, at the same concurrency, in
   the same run: what a client pays without streams;
3. memory per stream: the record's bytes, the SQLite file and Redis' used memory over the streams;
4. ETTh1's test split replayed as a feed (24 readings per append: the same answers as one at a time), with
   the forecast-quality counters read back from /metrics: realized coverage at 80/95/99% over every step of
   the horizon, rolling MAE and MASE, and the anomaly rate at 99%.

  python -m bench.streams [--streams 10000] [--seconds 15] [--out docs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from app.settings import available_cpus
from bench.serving import MODEL, Load, body, wrk
from harness import machine
from harness.live import running_server
from harness.redis_server import redis_server

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "streams.lua"
CONNECTIONS = 16
WINDOW = 168


@contextmanager
def gatecast(env: dict[str, str], repository: Path = ROOT / "models") -> Iterator[str]:
    """`gatecast serve` with its defaults (one worker per CPU), gRPC off, on the given store."""
    with running_server(repository, workers=available_cpus(), GATECAST_LOG_LEVEL="warning", **env) as (url, _):
        yield url


def series() -> np.ndarray:
    """ETTh1's oil temperature (real data when ../shared/data is there, else a synthetic stand-in)."""
    try:
        from training.data import load_etth1

        return load_etth1().series[0].values
    except FileNotFoundError:
        t = np.arange(17420)
        return 15 + 5 * np.sin(2 * np.pi * t / 24) + np.random.default_rng(0).normal(0, 0.5, t.size)


def fill(url: str, n: int, history: np.ndarray) -> float:
    """Creates streams s0..s<n-1>, each backfilled with a 168-point window; seconds taken."""
    started = time.perf_counter()

    def one(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for k in range(i, n, 8):
                r = http.put(f"/streams/s{k}", json={"model": MODEL, "anomaly_level": 99})
                assert r.status_code in (200, 201), r.text
                origin = WINDOW + (k * 37) % (len(history) - WINDOW)
                window = [round(float(v), 3) for v in history[origin - WINDOW : origin]]
                r = http.post(f"/streams/s{k}/points", json={"values": window, "backfill": True})
                assert r.status_code == 200 and r.json()["forecast"] is not None, r.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(8)))
    return time.perf_counter() - started


def appends(url: str, n: int, level: float, seconds: float) -> dict[str, Any]:
    def command(duration: float) -> list[str]:
        script = ["-s", str(LUA), url, "--", str(n), str(level)]
        return ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{round(duration)}s", *script]

    subprocess.run(command(2), capture_output=True, check=True)  # warm-up
    time.sleep(1.5)  # every worker publishes
    before = batches(url)
    out = subprocess.run(command(seconds), capture_output=True, text=True, check=True).stdout
    time.sleep(1.5)
    after = batches(url)
    stats = json.loads(out.strip().splitlines()[-1])
    return {
        "rps": stats["requests"] / (stats["duration_us"] / 1e6),
        "p50_ms": stats["p50_us"] / 1e3,
        "p99_ms": stats["p99_us"] / 1e3,
        "errors": stats["socket_errors"] + stats["non_2xx"],
        # Appends to different streams share onnxruntime runs: series per run while wrk appended.
        "series_per_run": (after[0] - before[0]) / max(1.0, after[1] - before[1]),
    }


def batches(url: str) -> tuple[float, float]:
    """(series, runs) so far, from gatecast_batch_size_series."""
    total = runs = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in family.samples:
            if s.name == "gatecast_batch_size_series_sum":
                total += s.value
            elif s.name == "gatecast_batch_size_series_count":
                runs += s.value
    return total, runs


def full_window(url: str, history: np.ndarray, seconds: float, tmp: Path) -> dict[str, Any]:
    path = tmp / "window.json"
    path.write_text(body(history[-WINDOW:][None, :].astype(np.float32)))
    load = Load("/forecast", path)
    wrk(url, load, CONNECTIONS, 2)
    time.sleep(1.5)
    before = batches(url)
    stats = wrk(url, load, CONNECTIONS, seconds)
    time.sleep(1.5)
    after = batches(url)
    return {
        "series_per_run": (after[0] - before[0]) / max(1.0, after[1] - before[1]),
        "rps": stats["rps"],
        "p50_ms": stats["p50_us"] / 1e3,
        "p99_ms": stats["p99_us"] / 1e3,
        "errors": stats["socket_errors"] + stats["non_2xx"],
        "request_bytes": path.stat().st_size,
    }


def metric_totals(url: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in family.samples:
            if s.name.startswith("gatecast_stream_") and s.labels.get("model") == "replay":
                key = s.name + (f"@{s.labels['level']}" if "level" in s.labels else "")
                totals[key] = totals.get(key, 0.0) + s.value
    return totals


def replay(models: Path, values: np.ndarray, start: int, end: int, tmp: Path) -> dict[str, Any]:
    """ETTh1's test split through a stream of the committed model, copied as `replay` so its counters are alone."""
    repo = tmp / "replay-models"
    shutil.copytree(models / MODEL, repo / "replay")
    with gatecast({"GATECAST_STATE_DIR": str(tmp / "replay-state")}, repo) as url:
        with httpx.Client(base_url=url, timeout=120) as http:
            assert http.put("/streams/ett", json={"model": "replay", "anomaly_level": 99}).status_code == 201
            warm = [round(float(v), 3) for v in values[start - WINDOW : start]]
            assert http.post("/streams/ett/points", json={"values": warm, "backfill": True}).status_code == 200
            flagged = 0
            for lo in range(start, end, 24):
                chunk = [round(float(v), 3) for v in values[lo : min(end, lo + 24)]]
                r = http.post("/streams/ett/points", json={"values": chunk})
                assert r.status_code == 200, r.text
                flagged += len(r.json()["anomalies"])
        time.sleep(1.5)  # every worker publishes its counters
        totals = metric_totals(url)
    scored = totals["gatecast_stream_scored_total"]
    readings = totals["gatecast_stream_readings_total"] - WINDOW  # the backfill is not scored
    return {
        "readings": int(readings),
        "scored_pairs": int(scored),
        "coverage": {
            level: totals[f"gatecast_stream_interval_hits_total@{level}"] / scored for level in ("80", "95", "99")
        },
        "mae": totals["gatecast_stream_abs_error_total"] / scored,
        "mase": totals["gatecast_stream_scaled_error_total"] / totals["gatecast_stream_scaled_scored_total"],
        "anomalies": flagged,
        "anomaly_rate": flagged / readings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("redis-server") is None:
        sys.exit("bench.streams needs wrk and redis-server (./scripts/system-deps.sh)")
    values = series()
    level = float(np.mean(values[-2000:]))
    tmp = Path(tempfile.mkdtemp(prefix="gatecast-streams-"))
    result: dict[str, Any] = {
        "machine": machine.describe(),
        "model": MODEL,
        "streams": args.streams,
        "connections": CONNECTIONS,
        "seconds": args.seconds,
    }
    stores: dict[str, Any] = {}
    state = tmp / "state"
    print(f"embedded store (SQLite), {args.streams} streams", flush=True)
    with gatecast({"GATECAST_STATE_DIR": str(state)}) as url:
        fill_s = fill(url, args.streams, values)
        one = appends(url, args.streams, level, args.seconds)
        forecast = full_window(url, values, args.seconds, tmp)
        info = httpx.get(f"{url}/streams/s0").json()
    db = sum(p.stat().st_size for p in state.glob("streams.sqlite3*"))
    stores["sqlite"] = {**one, "fill_s": fill_s, "bytes_per_stream": db / args.streams}
    print(f"    {stores['sqlite']}", flush=True)
    print(f"    /forecast with the whole window: {forecast}", flush=True)
    print(f"Redis store, {args.streams} streams", flush=True)
    with redis_server() as redis_url, gatecast({"GATECAST_STREAM_STORE": redis_url}) as url:
        import redis

        client = redis.Redis.from_url(redis_url)
        empty = int(client.info("memory")["used_memory"])
        fill_s = fill(url, args.streams, values)
        one = appends(url, args.streams, level, args.seconds)
        used = int(client.info("memory")["used_memory"])
        client.close()
    stores["redis"] = {**one, "fill_s": fill_s, "bytes_per_stream": (used - empty) / args.streams}
    print(f"    {stores['redis']}", flush=True)
    result["stores"] = stores
    result["forecast_full_window"] = forecast
    result["stream_answer_bytes"] = len(json.dumps(info))
    print("ETTh1 test split replayed as a feed", flush=True)
    result["replay"] = replay(ROOT / "models", values, 14400 - 2880, 14400, tmp)
    print(f"    {result['replay']}", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "streams.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "streams.md").write_text(render(result))
    print(f"wrote {args.out / 'streams.json'} and streams.md", flush=True)


def appends_table(r: dict[str, Any]) -> list[str]:
    """Appends on each store against /forecast with the whole window (this page and the README)."""
    s, f = r["stores"], r["forecast_full_window"]
    lines = [
        "| path | requests/s | p50 | p99 | errors | series per onnxruntime run | memory per stream |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in (("sqlite", "append, embedded store (SQLite)"), ("redis", "append, Redis")):
        x = s[name]
        lines.append(
            f"| {label} | {x['rps']:,.0f} | {x['p50_ms']:.2f} ms | {x['p99_ms']:.2f} ms | {x['errors']} "
            f"| {x['series_per_run']:.1f} | {x['bytes_per_stream'] / 1024:.1f} KiB |"
        )
    lines.append(
        f"| `/forecast`, whole window ({f['request_bytes']:,} bytes a request) | {f['rps']:,.0f} "
        f"| {f['p50_ms']:.2f} ms | {f['p99_ms']:.2f} ms | {f['errors']} | {f['series_per_run']:.1f} | - |"
    )
    return lines


def render(r: dict[str, Any]) -> str:
    rep = r["replay"]
    lines = [
        "# Live feeds: streams",
        "",
        f"Generated by `python -m bench.streams` on {machine.named(r['machine'])} (`gatecast serve` defaults, model "
        f"`{r['model']}`); do not edit by hand.",
        "",
        f"One-reading appends to {r['streams']:,} streams (random stream per request, {r['connections']} "
        f"connections, {r['seconds']:g} s), against `/forecast` carrying the whole {WINDOW}-point window:",
        "",
    ]
    lines += appends_table(r)
    cov = rep["coverage"]
    lines += [
        "",
        "An append does more than a forecast: it reads and writes the stream's record, judges the reading against",
        "the forecast made before it, and scores it against every forecast that predicted it.",
        "",
        f"ETTh1's test split replayed as a feed ({rep['readings']:,} readings, {rep['scored_pairs']:,} "
        "(reading, forecast step) pairs scored by the server's own counters):",
        "",
        "| realized coverage 80% | 95% | 99% | MAE | MASE | anomalies at 99% |",
        "|---|---|---|---|---|---|",
        f"| {cov['80']:.1%} | {cov['95']:.1%} | {cov['99']:.1%} | {rep['mae']:.3f} | {rep['mase']:.3f} "
        f"| {rep['anomalies']} ({rep['anomaly_rate']:.2%} of readings) |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
