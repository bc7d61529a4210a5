"""Soak: gatecast at 80% of its measured maximum for 10 minutes.

Measures the maximum (wrk, 16 connections), then paces wrk at 80% of it (bench/paced.lua: each connection
waits between requests) in one-minute windows, sampling the server's memory (RSS of all its processes).
Pass: no errors, memory growth under 10% from the first to the last minute, p99 steady.

  python -m bench.soak [--minutes 10] [--workers 2] [--out docs/benchmarks]    (make soak)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.serving import LUA, ROOT, Contestant, Load, body, server, windows

PACED = ROOT / "bench" / "paced.lua"


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return total / 1024


def wrk_json(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(["wrk", *args], capture_output=True, text=True, check=True).stdout
    stats: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64, help="for measuring the maximum")
    parser.add_argument(
        "--paced-connections",
        type=int,
        default=64,
        help="for the soak: many connections, each pausing ~tens of ms (wrk pauses in whole ms)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gatecast-soak-"))
    body_file = tmp / "body.json"
    body_file.write_text(body(windows(1)))
    c = args.connections
    command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", "PORT"]
    command += ["--workers", str(args.workers)]
    quiet = {"GATECAST_LOG_LEVEL": "warning", "GATECAST_TRAINING": "off"}  # a serving install: no local Ray
    contestant = Contestant("gatecast", command, Load("/forecast", body_file), quiet)
    with server(contestant) as (url, proc):
        target = f"{url}/forecast"
        wrk_json(["-t2", f"-c{c}", "-d5s", "-s", str(LUA), target, "--", str(body_file)])  # warm-up
        # The maximum with the soak's own load shape (persistent connections stay with one worker).
        peak = wrk_json(["-t2", f"-c{c}", "-d15s", "-s", str(LUA), target, "--", str(body_file)])
        rate = 0.8 * peak["rps"]
        pc = args.paced_connections
        # Each connection sends a request, pauses, sends the next: the pause sets the rate. Start from
        # connections / rate (the latency at 80% load is small next to it), then correct it every minute.
        delay_ms = 1000 * pc / rate
        print(
            f"max {peak['rps']:.0f} req/s at {c} connections; soaking at {rate:.0f} req/s with {pc} paced "
            f"connections for {args.minutes} min",
            flush=True,
        )
        wrk_json(["-t2", f"-c{pc}", "-d10s", "-s", str(PACED), target, "--", str(body_file), str(round(delay_ms))])
        minutes = []
        for minute in range(1, args.minutes + 1):
            stats = wrk_json(
                ["-t2", f"-c{pc}", "-d60s", "-s", str(PACED), target, "--", str(body_file), str(round(delay_ms))]
            )
            stats["delay_ms"] = round(delay_ms)
            delay_ms = max(1.0, delay_ms * stats["rps"] / rate)
            stats["rss_mb"] = tree_rss_mb(proc.pid)
            stats["minute"] = minute
            minutes.append(stats)
            print(
                f"  minute {minute:2d}: {stats['rps']:7.0f} req/s  p50 {stats['p50_us'] / 1000:6.2f} ms  "
                f"p99 {stats['p99_us'] / 1000:6.2f} ms  errors {stats['socket_errors'] + stats['non_2xx']}  "
                f"rss {stats['rss_mb']:.0f} MB",
                flush=True,
            )
    first, last = minutes[0], minutes[-1]
    p99s = [m["p99_us"] / 1000 for m in minutes]
    summary = {
        "workers": args.workers,
        "connections": pc,
        "achieved_rps": sum(m["requests"] for m in minutes) / sum(m["duration_us"] / 1e6 for m in minutes),
        "peak_rps": peak["rps"],
        "target_rps": rate,
        "minutes": minutes,
        "requests": sum(m["requests"] for m in minutes),
        "errors": sum(m["socket_errors"] + m["non_2xx"] for m in minutes),
        "memory_growth": (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"],
        "p99_ms_first_last_max": [p99s[0], p99s[-1], max(p99s)],
    }
    summary["pass"] = summary["errors"] == 0 and summary["memory_growth"] < 0.10
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "minutes"}, indent=2))


if __name__ == "__main__":
    main()
