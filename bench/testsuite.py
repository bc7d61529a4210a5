"""How long the test suites take, and that they pass while the machine is busy: `make test-quick` (no live
servers) and `make test`'s pytest, each run with N CPU-bound processes beside it (a training run, a build),
round after round. Writes docs/benchmarks/testsuite.json; the README renders its summary.

  python -m bench.testsuite --busy 4 --rounds 2      (make bench-tests)

Each round runs the quick suite, then the full one, in a fresh process, with the busy processes running from
before the suite starts until it ends; the load average is read at the end of each suite.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import machine

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks" / "testsuite.json"
SUITES = {"quick": ["-m", "not slow"], "full": []}  # the Makefile's test-quick and test run these pytest arguments


def _spin() -> None:  # pragma: no cover - runs in a child process until terminated
    while True:
        pass


def outcome(text: str) -> dict[str, int]:
    """pytest's closing line ("12 passed, 1 skipped in 3.2s") as counts by outcome."""
    last = [line for line in text.splitlines() if re.search(r"\b(passed|failed|error)", line)]
    counts = re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", last[-1] if last else "")
    return {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in counts}


def run_suite(name: str, busy: int) -> dict[str, Any]:
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(busy)]
    for hog in hogs:
        hog.start()
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES[name]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ},
        )
    finally:
        load = os.getloadavg()[0]
        for hog in hogs:
            hog.terminate()
        for hog in hogs:
            hog.join()
    seconds = time.perf_counter() - started
    counts = outcome(done.stdout)
    failures = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    result = {
        "suite": name,
        "busy": busy,
        "seconds": round(seconds, 1),
        "returncode": done.returncode,
        "load_1min_at_end": round(load, 2),
        "counts": counts,
        "failures": failures,
    }
    if done.returncode:  # what a failure said, so a run on a busy machine can be diagnosed afterwards
        log = OUT.with_name(f"testsuite-{name}-failed.log")
        log.write_text(done.stdout[-200_000:] + done.stderr[-20_000:])
        result["log"] = log.name
    print(
        f"{name:5s} busy={busy} {seconds:7.1f} s  rc={done.returncode}  load {load:.1f}  {counts}"
        + ("".join(f"\n  {f}" for f in failures)),
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busy", type=int, default=4, help="CPU-bound processes running beside each suite")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--suites", nargs="+", default=list(SUITES), choices=list(SUITES))
    args = parser.parse_args()
    runs = [run_suite(name, args.busy) for _ in range(args.rounds) for name in args.suites]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    result = {
        "machine": machine.describe(),
        "commit": commit.stdout.strip(),
        "busy": args.busy,
        "rounds": args.rounds,
        "runs": runs,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {OUT}")
    if any(r["returncode"] for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
