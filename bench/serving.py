"""Serving benchmark: gatecast against raw onnxruntime, a bare ASGI app and peer servers, in one run.

Everything runs on the same machine in one go, so the ratios are comparable (these machines are shared
and noisy: compare within a run, not across runs):
  1. raw onnxruntime: `session.run` in-process; latency of one series, and throughput with one
     single-threaded session per core in its own process, at batch 1 and 32;
  2. gatecast as the README starts it (`gatecast serve`, its defaults) under wrk at 1, 4, 16 and 64
     connections, one real 168-point ETTh1 window per request, to the default model; 32 series per request;
     the OIP route in JSON and in Triton's binary tensor format; the workers' CPU shares at 64 connections;
  3. gatecast with one worker (the default before issue 11), for comparison;
  4. a bare ASGI app (bench/bare_app.py: json, session.run, json; no framework, no batching);
  5. peer servers, each from its own virtualenv (.bench/peers/NAME, installed from bench/peers/NAME.txt):
     LitServe and MLServer, with their native dynamic batching, given the same cores;
  6. optionally (`--sustain-s`), 64 connections held for that long against the 15-second peak.
Each wrk point follows a stability rule (perf_analyzer's): windows are repeated until three in a row agree
within 10% on throughput (at most `--max-windows`); the figures are the medians of those three. wrk runs on
the same cores as the servers: it is C and light, but the figures include it.

  python -m bench.serving [--window-s 5] [--sustain-s 600] [--out docs/benchmarks]    (make bench)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

from app.settings import available_cpus
from harness import machine
from harness.live import free_port

ROOT = Path(__file__).resolve().parent.parent
MODEL = "gatecast-base"  # the default model: what a request that names none gets
# Steps asked of /forecast: a day of hourly readings, as before the base model (whose own horizon, the default when
# none is asked, is 720: its JSON answer alone would then be 30 times longer).
HORIZON = 24
ONNX = ROOT / "models" / MODEL / "1" / "model.onnx"
LUA = ROOT / "bench" / "post.lua"
PEERS = ROOT / ".bench" / "peers"


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
    """gatecast's /forecast body (the bare app and LitServe read the same)."""
    return json.dumps(
        {
            "model": MODEL,
            "horizon": HORIZON,
            "series": [{"id": str(i), "values": [round(float(v), 3) for v in row]} for i, row in enumerate(series)],
        }
    )


def oip_body(series: np.ndarray) -> str:
    """Open Inference Protocol v2 JSON (gatecast's /v2 route and MLServer read it)."""
    values = [round(float(v), 3) for v in series.ravel()]
    return json.dumps(
        {
            "inputs": [{"name": "values", "datatype": "FP32", "shape": list(series.shape), "data": values}],
            "outputs": [{"name": "forecast"}],  # as the binary request asks: the tensors answered are the same
        }
    )


def oip_binary_body(series: np.ndarray) -> tuple[bytes, int]:
    """Triton's binary tensor extension, as tritonclient sends it: a JSON header, then raw float32."""
    raw = series.astype("<f4").tobytes()
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "values",
                    "datatype": "FP32",
                    "shape": list(series.shape),
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "forecast", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return head + raw, len(head)


# --- raw onnxruntime --------------------------------------------------------------------------------------


def raw_session(threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(ONNX), options, providers=["CPUExecutionProvider"])


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


def _raw_worker(x: np.ndarray, batch: int, seconds: float, results: Any) -> None:
    session = raw_session(1)
    xb = np.resize(x, (batch, x.shape[1]))
    for _ in range(20):
        session.run(None, {"values": xb})
    count, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        session.run(None, {"values": xb})
        count += batch
    results.put(count / seconds)


def raw_throughput(x: np.ndarray, batch: int, seconds: float = 5.0) -> float:
    """Series per second with every core busy: one single-threaded session per core, each in its own process."""
    results: Any = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=_raw_worker, args=(x, batch, seconds, results)) for _ in range(available_cpus())
    ]
    for w in workers:
        w.start()
    total = sum(results.get() for _ in workers)
    for w in workers:
        w.join()
    return float(total)


# --- servers under wrk ------------------------------------------------------------------------------------


@dataclass
class Load:
    """What a contestant is sent: the route and the body file (with the JSON header length when binary)."""

    path: str
    body_file: Path
    header_length: int | None = None
    series: int = 1


@dataclass
class Contestant:
    name: str
    command: list[str]  # PORT is replaced by the port
    load: Load
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT


@contextmanager
def server(c: Contestant):  # type: ignore[no-untyped-def]
    port = free_port()
    argv = [str(port) if a == "PORT" else a for a in c.command]
    env = {**os.environ, **c.env, "MLSERVER_HTTP_PORT": str(port)}  # MLServer takes its port from the environment
    proc = subprocess.Popen(
        argv, cwd=c.cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        content = c.load.body_file.read_bytes()
        headers = {"content-type": "application/json"}
        if c.load.header_length is not None:
            headers = {
                "content-type": "application/octet-stream",
                "inference-header-content-length": str(c.load.header_length),
            }
        while time.monotonic() < deadline:
            try:
                httpx.post(f"{url}{c.load.path}", content=content, timeout=5, headers=headers).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None:
                    raise RuntimeError(f"{c.name} exited with {proc.returncode}") from None
                time.sleep(0.5)
        else:
            raise RuntimeError(f"{c.name} did not come up")
        yield url, proc
    finally:
        with_children = [proc.pid, *children(proc.pid)]
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in with_children:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(p) for p in found]


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, load: Load, connections: int, seconds: float) -> dict[str, float]:
    threads = 1 if connections == 1 else 2
    extra = [str(load.header_length)] if load.header_length is not None else []
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{round(seconds)}s", "-s", str(LUA)]
    out = subprocess.run(
        [*command, f"{url}{load.path}", "--", str(load.body_file), *extra], capture_output=True, text=True, check=True
    ).stdout
    stats = json.loads(out.strip().splitlines()[-1])
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    return stats


def stable_point(url: str, load: Load, connections: int, window_s: float, max_windows: int) -> dict[str, Any]:
    wrk(url, load, connections, 2)  # warm-up
    runs: list[dict[str, float]] = []
    stable = False
    while len(runs) < max_windows:
        runs.append(wrk(url, load, connections, window_s))
        if len(runs) >= 3:
            last = [r["rps"] for r in runs[-3:]]
            if (max(last) - min(last)) / statistics.mean(last) <= 0.10:
                stable = True
                break
    last3 = runs[-3:]
    rps = [r["rps"] for r in last3]
    point = {
        "connections": connections,
        "rps": statistics.median(rps),
        "series_per_s": statistics.median(rps) * load.series,
        "p50_ms": statistics.median(r["p50_us"] for r in last3) / 1e3,
        "p90_ms": statistics.median(r["p90_us"] for r in last3) / 1e3,
        "p99_ms": statistics.median(r["p99_us"] for r in last3) / 1e3,
        "errors": int(sum(r["socket_errors"] + r["non_2xx"] for r in runs)),
        "windows": len(runs),
        "stable": stable,
        "spread": (max(rps) - min(rps)) / statistics.mean(rps),
    }
    print(
        f"    c={connections:<3} {point['rps']:8.0f} req/s  p50 {point['p50_ms']:6.2f} ms  p99 {point['p99_ms']:6.2f}"
        f"  errors {point['errors']}  windows {point['windows']}{'' if stable else ' (not stable)'}",
        flush=True,
    )
    return point


def worker_shares(proc: subprocess.Popen[bytes], url: str, load: Load, seconds: float) -> dict[str, Any]:
    """Throughput over `seconds` at 64 connections and each worker process's share of the CPU they used."""
    workers = [p for p in children(proc.pid) if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text()]
    before = [cpu_seconds(p) for p in workers]
    stats = wrk(url, load, 64, seconds)
    used = [cpu_seconds(p) - b for p, b in zip(workers, before, strict=True)]
    total = sum(used) or 1.0
    return {
        "seconds": seconds,
        "rps": stats["rps"],
        "p99_ms": stats["p99_us"] / 1e3,
        "errors": stats["socket_errors"] + stats["non_2xx"],
        "cpu_shares": [u / total for u in used],
        "cpu_seconds": used,
    }


# --- peers in their own virtualenvs ---------------------------------------------------------------------------


def peer_python(name: str) -> Path | None:
    """The peer's virtualenv, created from bench/peers/NAME.txt when missing; None when it cannot be installed."""
    venv = PEERS / name
    python = venv / "bin" / "python"
    requirements = ROOT / "bench" / "peers" / f"{name}.txt"
    stamp = venv / ".installed"
    if stamp.exists() and stamp.read_text() == requirements.read_text():
        return python
    print(f"installing {name} into {venv} from {requirements.relative_to(ROOT)}", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
    except subprocess.CalledProcessError as exc:
        print(f"    {name} could not be installed ({exc}); left out of this run", flush=True)
        return None
    stamp.write_text(requirements.read_text())
    return python


def mlserver_folder(tmp: Path, workers: int) -> Path:
    folder = tmp / "mlserver"
    folder.mkdir(exist_ok=True)
    shutil.copy(ROOT / "bench" / "peers" / "mlserver_runtime.py", folder)
    settings = {"parallel_workers": workers, "debug": False, "metrics_endpoint": None, "grpc_port": free_port()}
    (folder / "settings.json").write_text(json.dumps(settings))
    model = {
        "name": MODEL,
        "implementation": "mlserver_runtime.OnnxForecaster",
        "max_batch_size": 64,
        "max_batch_time": 0.001,
        "parameters": {"uri": str(ONNX)},
    }
    (folder / "model-settings.json").write_text(json.dumps(model))
    return folder


# --- the run ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window-s", type=float, default=5.0, help="seconds per measurement window")
    parser.add_argument("--max-windows", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--sustain-s", type=float, default=0, help="hold 64 connections this long (0: skip)")
    parser.add_argument("--skip-peers", action="store_true", help="leave out LitServe and MLServer")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is missing (apt-get install wrk)")
    started = time.time()
    cpus = available_cpus()
    tmp = Path(tempfile.mkdtemp(prefix="gatecast-bench-"))
    x = windows(256)
    files: dict[str, Path] = {}
    for name, text in {
        "one": body(x[:1]),
        "batch32": body(x[:32]),
        "oip": oip_body(x[:1]),
    }.items():
        files[name] = tmp / f"{name}.json"
        files[name].write_text(text)
    binary, header_length = oip_binary_body(x[:1])
    files["oip-binary"] = tmp / "oip-binary.bin"
    files["oip-binary"].write_bytes(binary)
    one = Load("/forecast", files["one"])
    infer = f"/v2/models/{MODEL}/infer"

    result: dict[str, Any] = {
        "machine": {**machine.describe(), "cpus": cpus},
        "model": MODEL,
        "series_length": 168,
        "horizon": HORIZON,
        "contestants": {},
    }
    print(f"raw onnxruntime session.run, {MODEL}, one 168-point series", flush=True)
    # Throughput is measured before and after gatecast's target points and the ratios use the mean: a shared
    # machine's speed drifts over minutes, and one 5-second measurement moved the ratios by 10%.
    raw_runs: dict[str, list[float]] = {str(b): [raw_throughput(x, b)] for b in (1, 32)}
    result["raw"] = {"latency": raw_latency(x), "throughput_runs": raw_runs}
    print(f"    latency {result['raw']['latency']}\n    throughput {raw_runs}")

    gatecast = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", "PORT"]
    # gRPC on, as by default; no training, as `make serve` on a serving install (no local Ray beside the workers)
    quiet = {"GATECAST_LOG_LEVEL": "warning", "GATECAST_GRPC_PORT": str(free_port()), "GATECAST_TRAINING": "off"}
    sweeps = result["contestants"]

    print("gatecast serve (the README's command, its defaults)", flush=True)
    with server(Contestant("gatecast", gatecast, one, quiet)) as (url, proc):
        sweeps["gatecast"] = [stable_point(url, one, c, args.window_s, args.max_windows) for c in args.concurrency]
        extra: dict[str, Any] = {}
        print("    32 series per request, 4 connections", flush=True)
        extra["batch32"] = stable_point(
            url, Load("/forecast", files["batch32"], series=32), 4, args.window_s, args.max_windows
        )
        print("    /v2 infer, JSON and binary tensors, 16 connections", flush=True)
        extra["oip_json"] = stable_point(url, Load(infer, files["oip"]), 16, args.window_s, args.max_windows)
        extra["oip_binary"] = stable_point(
            url, Load(infer, files["oip-binary"], header_length), 16, args.window_s, args.max_windows
        )
        print("    workers' CPU shares, 64 connections, 15 s", flush=True)
        extra["balance"] = worker_shares(proc, url, one, 15)
        print(f"    {extra['balance']}", flush=True)
        for b, runs in raw_runs.items():  # gatecast's workers sit idle meanwhile
            runs.append(raw_throughput(x, int(b)))
        result["raw"]["throughput_series_per_s"] = {b: statistics.mean(runs) for b, runs in raw_runs.items()}
        print(f"    raw onnxruntime again: {raw_runs}", flush=True)
        print("    the ratio targets, measured in turns (3 alternations each)", flush=True)
        w = args.window_s
        json32 = Load("/forecast", files["batch32"], series=32)
        oip_json, oip_binary = Load(infer, files["oip"]), Load(infer, files["oip-binary"], header_length)
        extra["paired"] = {
            "c16": alternate(3, lambda: raw_throughput(x, 1), lambda: wrk(url, one, 16, w)["rps"]),
            "batch32": alternate(3, lambda: raw_throughput(x, 32), lambda: wrk(url, json32, 4, w)["rps"] * 32),
            "oip_json": alternate(3, lambda: wrk(url, one, 16, w)["rps"], lambda: wrk(url, oip_json, 16, w)["rps"]),
            "oip_binary": alternate(
                3, lambda: wrk(url, oip_json, 16, w)["rps"], lambda: wrk(url, oip_binary, 16, w)["rps"]
            ),
        }
        for key, p in extra["paired"].items():
            print(f"    {key}: {[round(v, 3) for v in p['ratios']]} -> {p['ratio']:.3f}", flush=True)
        if args.sustain_s:
            print(f"    64 connections for {args.sustain_s:.0f} s", flush=True)
            extra["sustained"] = worker_shares(proc, url, one, args.sustain_s)
            print(f"    {extra['sustained']}", flush=True)
        result["gatecast_extra"] = extra

    print("gatecast, 1 worker", flush=True)
    with server(Contestant("gatecast-1", [*gatecast, "--workers", "1"], one, quiet)) as (url, _):
        sweeps["gatecast, 1 worker"] = [stable_point(url, one, c, args.window_s, args.max_windows) for c in (1, 16, 64)]

    print(f"bare ASGI app on uvicorn, {cpus} workers", flush=True)
    bare = [sys.executable, "-m", "bench.bare_app", str(ONNX), "PORT", str(cpus)]
    with server(Contestant("bare", bare, one)) as (url, _):
        sweeps["bare ASGI app"] = [stable_point(url, one, c, args.window_s, args.max_windows) for c in (1, 16, 64)]

    if not args.skip_peers:
        peers: list[Contestant] = []
        python = peer_python("litserve")
        if python:
            command = [str(python), str(ROOT / "bench" / "peers" / "litserve_server.py"), str(ONNX), "PORT", str(cpus)]
            peers.append(Contestant("LitServe", command, Load("/predict", files["one"])))
        python = peer_python("mlserver")
        if python:
            folder = mlserver_folder(tmp, cpus)
            command = [str(python.parent / "mlserver"), "start", str(folder)]
            peers.append(Contestant("MLServer", command, Load(infer, files["oip"]), cwd=folder))
        for peer in peers:
            print(f"{peer.name} ({' '.join(Path(a).name for a in peer.command[:2])}), native batching", flush=True)
            with server(peer) as (url, _):
                sweeps[peer.name] = [
                    stable_point(url, peer.load, c, args.window_s, args.max_windows) for c in (1, 16, 64)
                ]

    result["versions"] = peer_versions()
    result["ratios"] = ratios(result)
    result["seconds"] = time.time() - started
    write(result, args.out)
    print(json.dumps(result["ratios"], indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


def _raw_throughput(raw: dict[str, Any], batch: str) -> str:
    text = f"batch {batch}: {raw['throughput_series_per_s'][batch]:,.0f} series/s"
    runs = raw.get("throughput_runs", {}).get(batch, [])
    if len(runs) > 1:
        measured = " and ".join(f"{run:,.0f}" for run in runs)
        text += f" (the mean of {measured}, before and after gatecast's targets)"
    return text


def peer_versions() -> dict[str, str]:
    """The pinned versions the peers ran, as their requirement files state them."""
    out = {}
    for name in ("litserve", "mlserver"):
        pins = (ROOT / "bench" / "peers" / f"{name}.txt").read_text().splitlines()
        out[name] = next(line.split("#")[0].strip() for line in pins if line.startswith(name))
    return out


def at(points: list[dict[str, Any]], connections: int) -> dict[str, Any]:
    return next(p for p in points if p["connections"] == connections)


def best(points: list[dict[str, Any]]) -> dict[str, Any]:
    return max(points, key=lambda p: p["rps"])


def alternate(pairs: int, base: Callable[[], float], tried: Callable[[], float]) -> dict[str, Any]:
    """Measure `base` and `tried` in turn, `pairs` times: each ratio compares two measurements taken a few seconds
    apart, so a slow minute of a shared machine moves both; the target uses the median ratio."""
    runs: dict[str, list[float]] = {"base": [], "tried": []}
    for _ in range(pairs):
        runs["base"].append(base())
        runs["tried"].append(tried())
    each = [t / b for b, t in zip(runs["base"], runs["tried"], strict=True)]
    return {**runs, "ratios": each, "ratio": statistics.median(each)}


def ratios(r: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each as measured figures and a ratio."""
    raw, sweeps, extra = r["raw"], r["contestants"], r["gatecast_extra"]
    raw1 = raw["throughput_series_per_s"]["1"]
    g = sweeps["gatecast"]
    peers = {
        k: best(v)["rps"] for k, v in sweeps.items() if k not in ("gatecast", "gatecast, 1 worker", "bare ASGI app")
    }
    out: dict[str, Any] = {
        "c16_over_raw": at(g, 16)["rps"] / raw1,
        "c1_p50_minus_raw_ms": at(g, 1)["p50_ms"] - raw["latency"]["p50_ms"],
        "batch32_over_raw32": extra["batch32"]["series_per_s"] / raw["throughput_series_per_s"]["32"],
        "oip_json_over_forecast_c16": extra["oip_json"]["rps"] / at(g, 16)["rps"],
        "oip_binary_over_json": extra["oip_binary"]["rps"] / extra["oip_json"]["rps"],
        "cpu_share_spread": max(extra["balance"]["cpu_shares"]) - min(extra["balance"]["cpu_shares"]),
        "best_over_bare": best(g)["rps"] / best(sweeps["bare ASGI app"])["rps"],
        "best_over_peers": {k: best(g)["rps"] / v for k, v in peers.items()},
        "best_over_one_worker": best(g)["rps"] / best(sweeps["gatecast, 1 worker"])["rps"],
    }
    paired = extra.get("paired", {})
    for key, name in (
        ("c16", "c16_over_raw"),
        ("batch32", "batch32_over_raw32"),
        ("oip_json", "oip_json_over_forecast_c16"),
        ("oip_binary", "oip_binary_over_json"),
    ):
        if key in paired:
            out[name] = paired[key]["ratio"]
    if "sustained" in extra:
        peak = at(g, 64)["rps"]
        out["sustained_over_peak"] = extra["sustained"]["rps"] / peak
        shares = extra["sustained"]["cpu_shares"]
        out["sustained_cpu_share_spread"] = max(shares) - min(shares)
    return out


def targets(r: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each target of the serving-speed issue, from one run's JSON."""
    q, raw, sweeps, extra = r["ratios"], r["raw"], r["contestants"], r["gatecast_extra"]
    g = sweeps["gatecast"]
    paired = extra.get("paired", {})

    def measured(key: str, single: str, ratio: float) -> str:
        if key not in paired:
            return f"{single}: {ratio:.2f}x"
        p = paired[key]
        each = ", ".join(f"{t:,.0f} vs {b:,.0f}" for b, t in zip(p["base"], p["tried"], strict=True))
        return f"{len(p['ratios'])} alternations ({each}): median {ratio:.2f}x"

    rows = [
        (
            "`gatecast serve` (defaults), 16 connections: at least 0.85 x raw onnxruntime (batch 1, every core)",
            measured(
                "c16",
                f"{at(g, 16)['rps']:,.0f} req/s vs {raw['throughput_series_per_s']['1']:,.0f} series/s",
                q["c16_over_raw"],
            ),
            q["c16_over_raw"] >= 0.85,
        ),
        (
            "1 connection: median at most raw + 0.35 ms",
            f"{at(g, 1)['p50_ms']:.2f} ms vs {raw['latency']['p50_ms']:.2f} ms: +{q['c1_p50_minus_raw_ms']:.2f} ms",
            q["c1_p50_minus_raw_ms"] <= 0.35,
        ),
        (
            "32 series per request: at least 0.9 x raw onnxruntime at batch 32",
            measured(
                "batch32",
                f"{extra['batch32']['series_per_s']:,.0f} vs {raw['throughput_series_per_s']['32']:,.0f} series/s",
                q["batch32_over_raw32"],
            ),
            q["batch32_over_raw32"] >= 0.9,
        ),
        (
            "`/v2/.../infer` JSON within 10% of `/forecast` (16 connections)",
            measured(
                "oip_json",
                f"{extra['oip_json']['rps']:,.0f} vs {at(g, 16)['rps']:,.0f} req/s",
                q["oip_json_over_forecast_c16"],
            ),
            q["oip_json_over_forecast_c16"] >= 0.9,
        ),
        (
            "binary tensors faster than JSON on `/v2`",
            measured(
                "oip_binary",
                f"{extra['oip_binary']['rps']:,.0f} vs {extra['oip_json']['rps']:,.0f} req/s",
                q["oip_binary_over_json"],
            ),
            q["oip_binary_over_json"] > 1.0,
        ),
        (
            "workers' CPU shares within 10 points of each other (64 connections, 15 s)",
            ", ".join(f"{s * 100:.1f}%" for s in extra["balance"]["cpu_shares"]),
            q["cpu_share_spread"] <= 0.10,
        ),
    ]
    if "sustained_over_peak" in q:
        s = extra["sustained"]
        rows.append(
            (
                f"64 connections for {s['seconds'] / 60:.0f} min: within 10% of the peak, CPU shares within 10 points",
                f"{s['rps']:,.0f} vs {at(g, 64)['rps']:,.0f} req/s: {q['sustained_over_peak']:.2f}x; shares "
                + ", ".join(f"{v * 100:.1f}%" for v in s["cpu_shares"])
                + f"; {s['errors']} errors",
                q["sustained_over_peak"] >= 0.9 and q["sustained_cpu_share_spread"] <= 0.10,
            )
        )
    for peer, ratio in q["best_over_peers"].items():
        rows.append((f"at least 2.5 x {peer} (best throughput of each)", f"{ratio:.2f}x", ratio >= 2.5))
    rows.append(
        (
            "never slower than the bare ASGI app (best throughput of each)",
            f"{q['best_over_bare']:.2f}x",
            q["best_over_bare"] >= 1.0,
        )
    )
    return rows


def render(r: dict[str, Any]) -> str:
    """docs/benchmarks/serving.md from the JSON of one run."""
    raw, m = r["raw"], r["machine"]
    lines = [
        "# Serving benchmark",
        "",
        f"`python -m bench.serving` ({r['seconds'] / 60:.0f} min) on {machine.named(m)}, {m['platform']}, "
        f"onnxruntime {m['onnxruntime']}. The ratios to raw onnxruntime are host-dependent: onnxruntime's gain from "
        "a batch differs with the CPU's vector instructions (AVX2 or AVX-512) and cache, so the batching a server "
        "does buys more on some hosts than others; run `make bench` on yours. "
        f"Model `{r['model']}`, one real ETTh1 window of {r['series_length']} points per request"
        + (
            f", {r['horizon']} steps asked of `/forecast` (OIP answers the model's whole horizon)"
            if "horizon" in r
            else ""
        )
        + " unless stated. Every contestant runs on the same cores in the "
        "same run, with wrk (C) generating the load on those cores too. Each point: windows of 5 s repeated "
        "until three in a row agree within 10% on throughput; figures are the medians of those three. Peers: "
        + ", ".join(f"`{v}`" for v in r["versions"].values())
        + ", each in its own virtualenv, with its native dynamic batching on.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    lines += [f"| {t} | {measured} | {'yes' if met else 'no'} |" for t, measured, met in targets(r)]
    lines += [
        "",
        "## Raw onnxruntime in-process",
        "",
        f"One series, `session.run`, {m['cpus']} intra-op threads: median {raw['latency']['p50_ms']:.3f} ms, "
        f"p90 {raw['latency']['p90_ms']:.3f} ms, p99 {raw['latency']['p99_ms']:.3f} ms. Throughput with every "
        "core busy (one single-threaded session per core, each in its own process): "
        + ", ".join(_raw_throughput(raw, b) for b in raw["throughput_series_per_s"])
        + ".",
        "",
        "## One series per request",
        "",
        "| server | connections | req/s | × raw (batch 1) | p50 ms | p90 ms | p99 ms | errors | stable |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    raw1 = raw["throughput_series_per_s"]["1"]
    for name, points in r["contestants"].items():
        for p in points:
            lines.append(
                f"| {name} | {p['connections']} | {p['rps']:,.0f} | {p['rps'] / raw1:.2f} | {p['p50_ms']:.2f} | "
                f"{p['p90_ms']:.2f} | {p['p99_ms']:.2f} | {p['errors']} | {'yes' if p['stable'] else 'no'} "
                f"(spread {p['spread'] * 100:.0f}%) |"
            )
    e = r["gatecast_extra"]
    lines += [
        "",
        "## gatecast: other requests (defaults)",
        "",
        "| request | connections | req/s | series/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, key in (
        ("`/forecast`, 32 series", "batch32"),
        ("`/v2/.../infer`, JSON", "oip_json"),
        ("`/v2/.../infer`, binary tensors", "oip_binary"),
    ):
        p = e[key]
        lines.append(
            f"| {label} | {p['connections']} | {p['rps']:,.0f} | {p['series_per_s']:,.0f} | {p['p50_ms']:.2f} | "
            f"{p['p99_ms']:.2f} | {p['errors']} |"
        )
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
    for label, points in result["contestants"].items():
        c = [p["connections"] for p in points]
        ax1.plot(c, [p["p50_ms"] for p in points], marker="o", label=label)
        ax2.plot(c, [p["rps"] for p in points], marker="o", label=label)
    ax1.axhline(result["raw"]["latency"]["p50_ms"], color="k", lw=0.8, ls="--", label="raw onnxruntime, one run")
    ax2.axhline(
        result["raw"]["throughput_series_per_s"]["1"], color="k", lw=0.8, ls="--", label="raw onnxruntime, batch 1"
    )
    for ax, title, unit in ((ax1, "median latency", "ms"), (ax2, "throughput", "requests/s")):
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
