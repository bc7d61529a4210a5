"""CPU profile of the request path: py-spy samples one worker of `gatecast serve` (its defaults) under wrk
load; costs grouped by layer.

  python -m bench.profile [--connections 16] [--seconds 10]    -> docs/benchmarks/profile.md
Needs py-spy (pip install py-spy) and permission to ptrace the server (root here).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.serving import LUA, ROOT, Contestant, Load, body, children, server, windows

# First match wins: a sample is charged to the innermost frame's layer.
LAYERS = [
    ("onnxruntime session.run", r"onnxruntime"),
    ("numpy", r"numpy/"),
    ("request parsing and validation (pydantic)", r"pydantic|model_validate_json|schemas\.py"),
    ("response rendering (json)", r"json/|render_json|JSONResponse|responses\.py|render"),
    ("metrics (prometheus_client)", r"prometheus_client"),
    ("HTTP protocol (uvicorn, httptools, app/httpguard.py)", r"uvicorn|httptools|httpguard"),
    ("framework (starlette, fastapi routing and middleware)", r"starlette|fastapi|anyio"),
    ("gatecast request path (app/, contract/)", r"(^|[ (/])(app|contract)/"),
    ("thread hand-off (executor, futures)", r"concurrent/futures|threading\.py|asyncio/futures"),
    ("event loop (asyncio, uvloop)", r"asyncio|uvloop|selectors"),
]


def layer(frame: str) -> str:
    for name, pattern in LAYERS:
        if re.search(pattern, frame):
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    tmp = Path(tempfile.mkdtemp(prefix="gatecast-profile-"))
    body_file = tmp / "body.json"
    body_file.write_text(body(windows(1)))
    raw = tmp / "profile.txt"
    command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", "PORT"]
    quiet = {"GATECAST_LOG_LEVEL": "warning", "GATECAST_TRAINING": "off"}  # a serving install: no local Ray
    contestant = Contestant("gatecast", command, Load("/forecast", body_file), quiet)
    with server(contestant) as (url, proc):
        worker = next(p for p in children(proc.pid) if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text())
        load = subprocess.Popen(
            [
                "wrk",
                "-t2",
                f"-c{args.connections}",
                f"-d{args.seconds + 4}s",
                "-s",
                str(LUA),
                f"{url}/forecast",
                "--",
                str(body_file),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)
        subprocess.run(
            [
                spy,
                "record",
                "--pid",
                str(worker),
                "--duration",
                str(args.seconds),
                "--rate",
                "250",
                "--format",
                "raw",
                "--threads",
                "--nonblocking",
                "-o",
                str(raw),
            ],
            check=True,
            capture_output=True,
        )
        load.wait()
    by_layer: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        leaf = frames[-1]
        if re.search(r"Condition\.wait|_worker \(concurrent|Runner\.run|select|WorkerThread\.run", leaf):
            continue  # a thread waiting for work is not a cost of the request path
        n = int(count)
        total += n
        by_layer[layer(leaf)] += n
        by_function[re.sub(r" \(/.*?(site-packages/|lib/python3\.\d+/|/main/)", " (", leaf)] += n
    lines = [
        "# CPU profile of the request path",
        "",
        "`python -m bench.profile`: py-spy sampling one worker of `gatecast serve` (defaults) at 250 Hz for "
        f"{args.seconds} s while wrk "
        f"posts one 168-point ETTh1 series per request over {args.connections} connections. {total} on-CPU "
        "samples (threads waiting for work excluded), each charged to its innermost frame.",
        "",
        "| layer | share of CPU |",
        "|---|---|",
    ]
    lines += [f"| {name} | {n / total * 100:.1f}% |" for name, n in by_layer.most_common()]
    lines += ["", "Top functions (self time):", "", "| function | share |", "|---|---|"]
    lines += [f"| `{f[:110]}` | {n / total * 100:.1f}% |" for f, n in by_function.most_common(25)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
