"""Training through the service, measured side by side in one run:

- finetune: the unmodified nixtla client fine-tunes the committed etth1-gru on 60 days of ETTh1 it never trained on
  (rows 11520-12959, the base model's test split), seconds from `finetune()` to its answer, and MASE of the base
  and each fine-tuned model on the 60 daily windows after that stretch (rows 12960-14399), each window's input the
  336 values before it; `forecast(finetune_steps=N)` first and repeated. Nothing here chooses anything: every
  configuration tried is reported.
- jobs: the same small ETTh1 config through `gatecast pipeline` (a process, as a user runs it) and through
  POST /jobs on a running server (from the POST to the record's `succeeded`), alternated, medians.
- tune: `gatecast tune` on a small ETTh1 config, trials per hour on a local Ray with this machine's CPUs.
- scaleout: the same search on a Ray cluster started with `ray start` on loopback: a head of 1 CPU alone, then with
  a worker node of 1 CPU (a second raylet process): trials per hour against one node.

-> docs/benchmarks/training.json and training.md. `python -m bench.training --part NAME` reruns one part.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from harness import machine
from harness.live import free_port, running_server

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks"
PARTS = ("finetune", "jobs", "tune", "scaleout")
ADMIN = {"authorization": "Bearer admin"}
FINETUNE_ROWS, SCORE_ROWS = (11520, 12960), (12960, 14400)
SMALL_CONFIG = """
name = "{name}"
dataset = "etth1"
[model]
cell = "gru"
hidden_size = 32
num_layers = 1
input_window = 96
min_window = 48
horizon = 24
interval_lag = 24
[train]
epochs = {epochs}
patience = 3
max_batches_per_epoch = 20
[evaluate]
stride = 24
stat_model = ""
"""


def etth1_ot() -> np.ndarray:
    from training.data import data_dir

    return pd.read_csv(data_dir() / "ett" / "ETTh1.csv")["OT"].to_numpy(dtype=np.float64)


@contextmanager
def training_server(models: list[str]) -> Iterator[str]:
    repo = Path(tempfile.mkdtemp(prefix="gatecast-bench-train-")) / "models"
    for name in models:
        shutil.copytree(ROOT / "models" / name, repo / name)
    env = {
        "GATECAST_TRAINING": "auto",
        "GATECAST_RUNS_DIR": str(ROOT / "runs"),
        "GATECAST_ADMIN_KEYS": "admin",
        "GATECAST_API_KEYS": "admin",
        "GATECAST_LOG_LEVEL": "warning",
    }
    try:
        with running_server(repo, **env) as (url, _):
            yield url
    finally:
        shutil.rmtree(repo.parent, ignore_errors=True)


def mase(url: str, model: str, y: np.ndarray, origins: list[int], window: int, scale: float) -> float:
    series = [{"id": str(t), "values": y[t - window : t].tolist()} for t in origins]
    r = httpx.post(f"{url}/forecast", json={"model": model, "horizon": 24, "series": series}, headers=ADMIN, timeout=60)
    r.raise_for_status()
    forecasts = np.array([f["mean"] for f in r.json()["forecasts"]])
    actuals = np.stack([y[t : t + 24] for t in origins])
    return float(np.mean(np.mean(np.abs(actuals - forecasts), axis=1) / scale))


def part_finetune() -> dict[str, Any]:
    from nixtla import NixtlaClient

    y = etth1_ot()
    lo, hi = FINETUNE_ROWS
    stretch = y[lo:hi]
    df = pd.DataFrame(
        {"unique_id": "ot", "ds": pd.date_range("2018-02-20", periods=len(stretch), freq="h"), "y": stretch}
    )
    origins = list(range(SCORE_ROWS[0], SCORE_ROWS[1] - 24 + 1, 24))
    scale = float(np.mean(np.abs(stretch[24:] - stretch[:-24])))  # seasonal naive's in-sample MAE on what was sent
    rows = []
    with training_server(["etth1-gru"]) as url:
        client = NixtlaClient(api_key="admin", base_url=url, max_retries=1, timeout=600)
        base = mase(url, "etth1-gru", y, origins, 336, scale)
        started = time.perf_counter()
        client.finetune(df, model="etth1-gru", finetune_steps=1, output_model_id="bench-warmup")
        cold = time.perf_counter() - started
        for steps in (10, 100, 300):
            for depth in (1, 3, 5):
                name = f"bench-{steps}-{depth}"
                started = time.perf_counter()
                made = client.finetune(
                    df, model="etth1-gru", finetune_steps=steps, finetune_depth=depth, output_model_id=name
                )
                seconds = time.perf_counter() - started
                after = mase(url, made, y, origins, 336, scale)
                card = httpx.get(f"{url}/models/{made}", headers=ADMIN).json()["versions"][0]["metrics"]["finetune"]
                rows.append(
                    {
                        "steps": steps,
                        "depth": depth,
                        "seconds": round(seconds, 2),
                        "mase": after,
                        "best_step": card["best_step"],
                        "heldout_mase_before": card["heldout_mase_before"],
                        "heldout_mase_after": card["heldout_mase_after"],
                    }
                )
                print(f"finetune steps {steps} depth {depth}: {seconds:.1f} s, MASE {base:.4f} -> {after:.4f}")
        history = df.iloc[-336:]
        started = time.perf_counter()
        client.forecast(history, h=24, model="etth1-gru", finetune_steps=50)
        first = time.perf_counter() - started
        started = time.perf_counter()
        client.forecast(history, h=24, model="etth1-gru", finetune_steps=50)
        again = time.perf_counter() - started
    return {
        "base_model": "etth1-gru",
        "finetune_rows": list(FINETUNE_ROWS),
        "score_rows": list(SCORE_ROWS),
        "windows": len(origins),
        "base_mase": base,
        "cold_first_call_seconds": round(cold, 2),
        "rows": rows,
        "forecast_with_finetune_steps": {
            "steps": 50,
            "first_seconds": round(first, 2),
            "again_seconds": round(again, 2),
        },
    }


def part_jobs(rounds: int = 3) -> dict[str, Any]:
    cli, job = [], []
    with training_server(["etth1-gru"]) as url:  # a model loaded: the server is ready
        # A first job starts the trainer process (imports torch): measured apart, as the cold start it is.
        warm = httpx.post(
            f"{url}/jobs",
            content=SMALL_CONFIG.format(name="warm", epochs=1),
            headers={**ADMIN, "content-type": "application/toml"},
        )
        warm.raise_for_status()
        cold = wait_job(url, warm.json()["id"])
        for r in range(rounds):
            root = Path(tempfile.mkdtemp(prefix="gatecast-bench-cli-"))
            config = root / "small.toml"
            config.write_text(SMALL_CONFIG.format(name="small", epochs=4))
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "app.cli", "pipeline", str(config), "--root", str(root), "--quiet"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            cli.append(time.perf_counter() - started)
            assert done.returncode == 0, done.stderr[-2000:]
            shutil.rmtree(root, ignore_errors=True)
            started = time.perf_counter()
            r_ = httpx.post(
                f"{url}/jobs",
                content=SMALL_CONFIG.format(name=f"small{r}", epochs=4),
                headers={**ADMIN, "content-type": "application/toml"},
            )
            r_.raise_for_status()
            record = wait_job(url, r_.json()["id"])
            job.append(time.perf_counter() - started)
            assert record["state"] == "succeeded", record
            print(f"round {r + 1}: CLI {cli[-1]:.1f} s, job {job[-1]:.1f} s")
    return {
        "rounds": rounds,
        "cli_seconds": [round(s, 2) for s in cli],
        "job_seconds": [round(s, 2) for s in job],
        "cli_median": statistics.median(cli),
        "job_median": statistics.median(job),
        "overhead_median": statistics.median(job) - statistics.median(cli),
        "cold_job_record": {"state": cold["state"], "started_at": cold["started_at"], "created_at": cold["created_at"]},
    }


def wait_job(url: str, job_id: str, deadline_s: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        record = httpx.get(f"{url}/jobs/{job_id}", headers=ADMIN).json()
        if record["state"] in ("succeeded", "failed", "cancelled"):
            return dict(record)
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} did not end within {deadline_s} s")


def tune_config(folder: Path) -> Path:
    path = folder / "tune-small.toml"
    path.write_text(SMALL_CONFIG.format(name="tune-small", epochs=4))
    return path


def run_tune(trials: int, address: str | None) -> dict[str, Any]:
    from training import tune
    from training.config import RunConfig

    folder = Path(tempfile.mkdtemp(prefix="gatecast-bench-tune-"))
    try:
        config = RunConfig.load(tune_config(folder))
        report = tune.run(config, folder, trials=trials, cpus_per_trial=1.0, max_epochs=4, seed=0, address=address)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    keep = (
        "trials",
        "finished",
        "stopped_early",
        "failed",
        "seconds",
        "trials_per_hour",
        "cluster_cpus",
        "gain_over_default",
    )
    out = {k: report[k] for k in keep}
    out["best_val_mase"] = report["best"]["val_mase"]
    out["default_val_mase"] = report["default"]["val_mase"] if report["default"] else None
    print(f"tune ({address or 'local'}): {out}")
    return out


def part_tune(trials: int) -> dict[str, Any]:
    return run_tune(trials, None)


@contextmanager
def ray_cluster(workers: int) -> Iterator[str]:
    """`ray start --head` with 1 CPU and `workers` worker nodes of 1 CPU each, on loopback."""
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    ray = str(Path(sys.executable).parent / "ray")
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    subprocess.run(
        [ray, "start", "--head", "--port", str(port), "--include-dashboard", "false", *common],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        for _ in range(workers):
            subprocess.run(
                [ray, "start", "--address", f"127.0.0.1:{port}", *common],
                env=env,
                check=True,
                capture_output=True,
                timeout=120,
            )
        os.environ["RAY_AUTH_MODE"] = "token"
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
        os.environ.pop("RAY_AUTH_MODE", None)


def part_scaleout(trials: int) -> dict[str, Any]:
    out = {}
    for nodes in (1, 2):
        with ray_cluster(workers=nodes - 1) as address:
            out[f"{nodes}_node"] = run_tune(trials, address)
    out["speedup"] = out["2_node"]["trials_per_hour"] / out["1_node"]["trials_per_hour"]
    return out


def render(r: dict[str, Any]) -> str:
    lines = [
        "# Training through the service",
        "",
        f"Generated by `python -m bench.training` (`make bench-training`) on {machine.named(r.get('machine'))}, "
        f"{r.get('date', '')}. [Back to benchmarks](../benchmarks.md)",
        "",
    ]
    f = r.get("finetune")
    if f:
        lines += [
            "## Fine-tuning with the nixtla client",
            "",
            f'`client.finetune(df, model="{f["base_model"]}", ...)` on ETTh1\'s oil temperature, rows '
            f"{f['finetune_rows'][0]}-{f['finetune_rows'][1] - 1} (60 "
            "days the base model never trained on); MASE on the "
            f"{f['windows']} daily 24-step windows after them (rows {f['score_rows'][0]}-{f['score_rows'][1] - 1}), "
            "each "
            "reading the 336 values before it, scaled by seasonal naive's in-sample error on the 60 days sent. Every "
            "configuration tried is shown; none was chosen.",
            "",
            f"Base model: MASE **{f['base_mase']:.4f}**. The first call of a fresh server took "
            f"{f['cold_first_call_seconds']:.1f} s (1 step: the trainer process starting and importing torch).",
            "",
            "The fine-tuning keeps the weights with the lowest loss on the held-out last fifth of the 60 days (checked "
            "every 10 steps, the base weights included): `kept step` is the step it kept (0: the base weights), and "
            "the held-out MASE is the tail's, before and after. The MASE after is on the later 60 days.",
            "",
            "| steps | depth | seconds from `finetune()` to its answer | kept step | held-out MASE before, after | "
            "MASE after (later days) | against the base |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in f["rows"]:
            change = row["mase"] / f["base_mase"] - 1
            held = f"{row['heldout_mase_before']:.4f}, {row['heldout_mase_after']:.4f}" if "best_step" in row else "-"
            lines.append(
                f"| {row['steps']} | {row['depth']} | {row['seconds']:.1f} | {row.get('best_step', '-')} | {held} | "
                f"{row['mase']:.4f} | {100 * change:+.1f}% |"
            )
        fs = f["forecast_with_finetune_steps"]
        lines += [
            "",
            f"`forecast(df, h=24, finetune_steps={fs['steps']})` on the "
            f"last 336 values: {fs['first_seconds']:.1f} s the "
            f"first time (fine-tuning, then the forecast), {fs['again_seconds']:.2f} s the second (the model made the "
            "first time, found by the digest of the history and settings).",
            "",
        ]
    j = r.get("jobs")
    if j:
        lines += [
            "## A training job against the CLI",
            "",
            "The same small ETTh1 config (GRU 32, window 96, 4 epochs "
            f"of 20 batches), {j['rounds']} rounds alternated: "
            f"`gatecast pipeline` as a process {j['cli_median']:.1f} s (median; {j['cli_seconds']}), POST /jobs to the "
            f"record's `succeeded` {j['job_median']:.1f} s ({j['job_seconds']}): "
            f"**{j['overhead_median']:+.1f} s** for the job. The CLI's "
            "time includes starting Python and importing torch; "
            "the job's trainer process was already warm (a first job before the rounds), and the job also copies the "
            "checkpoint beside the model and renames it into the repository.",
            "",
        ]
    t = r.get("tune")
    if t:
        lines += [
            "## Tuning",
            "",
            f"`gatecast tune` on the small ETTh1 config, {t['trials']} "
            "trials of at most 4 epochs, 1 CPU each, on a local "
            f"Ray with {t['cluster_cpus']:g} CPUs: {t['seconds']:.0f} "
            f"s, **{t['trials_per_hour']:.0f} trials per hour**; "
            f"{t['finished']} finished, {t['stopped_early']} stopped early "
            "by ASHA. Validation MASE: the config as written "
            f"{_f(t['default_val_mase'])}, the best trial {_f(t['best_val_mase'])}.",
            "",
        ]
    s = r.get("scaleout")
    if s:
        one, two = s["1_node"], s["2_node"]
        lines += [
            "## Scale-out on a two-node Ray cluster",
            "",
            "The same search with GATECAST_RAY_ADDRESS pointing at a cluster started with `ray start` on loopback: a "
            "head node of 1 CPU, then the head and a worker node of 1 CPU (a second raylet process; both on this "
            "machine, so this shows trials spreading over nodes, not a second machine's cores).",
            "",
            "| cluster | CPUs | seconds | trials per hour |",
            "|---|---|---|---|",
            f"| head only | {one['cluster_cpus']:g} | {one['seconds']:.0f} | {one['trials_per_hour']:.0f} |",
            f"| head + worker | {two['cluster_cpus']:g} | {two['seconds']:.0f} | {two['trials_per_hour']:.0f} |",
            "",
            f"Two nodes: **{s['speedup']:.2f}x** the trials per hour of one.",
            "",
        ]
    return "\n".join(lines)


def _f(v: float | None) -> str:
    return f"{v:.4f}" if v is not None else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all")
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    path = OUT / "training.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    for part in PARTS if args.part == "all" else (args.part,):
        if part == "finetune":
            result["finetune"] = part_finetune()
        elif part == "jobs":
            result["jobs"] = part_jobs()
        elif part == "tune":
            result["tune"] = part_tune(args.trials)
        else:
            result["scaleout"] = part_scaleout(args.trials)
        result["machine"], result["date"] = machine.describe(), time.strftime("%Y-%m-%d")
        path.write_text(json.dumps(result, indent=1) + "\n")
    (OUT / "training.md").write_text(render(result))
    print(f"-> {path} and training.md")


if __name__ == "__main__":
    main()
