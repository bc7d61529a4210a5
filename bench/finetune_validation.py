"""Per-dataset models fine-tuned from the base model, scored on GIFT-Eval's validation windows beside the base
itself: does fine-tuning from the base pay, and where? (Issue 45 asks this of every configuration, before anything
is trained for the test windows.)

For each ETT station 1 resolution: the base model fine-tuned (training.finetune_base, the path the nixtla client's
`finetune` takes) on every channel's values before that resolution's earliest validation window; then the base and
the fine-tuned model on that resolution's validation windows (bench.zeroshot.validate). Only that resolution's
configurations are scored: the others come from the same station, and their windows overlap what it trained on.
With --joint, also the base fine-tuned once on every resolution, all cut before the earliest validation window of
any, scored on every ETT configuration.

  python -m bench.finetune_validation [--resolutions 15T H D W] [--steps 300] [--depth 5] [--pipeline] [--joint]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

from bench import giftprotocol as protocol
from bench.base_variants import write
from bench.spread_validation import cross_fitted
from bench.zeroshot import validate, validation_tasks
from contract.card import ModelCard
from training import data as datasets
from training import finetune_base, quantile_spread

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "models" / "gatecast-base" / "1" / "model.onnx"
CHECKPOINT = ROOT / "runs" / "gatecast-base" / "checkpoint.pt"


def fine_tune_and_score(
    tasks: dict[str, protocol.Task],
    resolution: str,
    steps: int,
    depth: int,
    seed: int,
    base: Path = BASE,
    checkpoint: Path = CHECKPOINT,
    pipeline: bool = False,
) -> dict[str, Any]:
    """One resolution: the cut, the fine-tuning summary, and each configuration's validation MASE, CRPS and coverage
    for the base, the fine-tuned model, the fine-tuned model with its quantiles spread on its held-out tail
    (training.quantile_spread), the base and the fine-tuned model with a spread cross-fitted on the validation
    windows (bench.spread_validation) and, with `pipeline`, the model `gatecast pipeline` trains from the candidate
    TOML on the same values and the mean of its quantiles and the fine-tuned model's."""
    names = [n for n in tasks if n.startswith(f"ett1/{resolution}/")]
    if not names:
        raise ValueError(f"no configuration at {resolution!r}; have {sorted(tasks)}")
    mine = {n: tasks[n] for n in names}
    cut = min(min(o[0] for o in task.origins) for task in mine.values())
    series = [np.asarray(v[:cut], np.float32) for v in mine[names[0]].values]
    card = ModelCard.from_props(dict(ort.InferenceSession(str(base)).get_modelmeta().custom_metadata_map))
    started = time.process_time()
    model, summary = finetune_base.finetune(
        card, checkpoint, series, steps, depth, seed, report=lambda _: None, cancelled=lambda: False
    )
    factors, spread = finetune_base.spread_on_tail(model, series, seed)
    summary["cpu_seconds"] = round(time.process_time() - started, 1)
    summary["spread"] = spread
    with tempfile.TemporaryDirectory() as folder:
        tuned, spread_file = Path(folder) / "model.onnx", Path(folder) / "spread.onnx"
        write(model, tuned, base, model.config.input_length)
        write(quantile_spread.Spread(model, factors), spread_file, base, model.config.input_length)
        scores = validate([base, tuned, spread_file], mine)
        crossed = {"base": cross_fitted(base, mine), "fine-tuned": cross_fitted(tuned, mine)}
    found = {
        n: {
            "base": scores[str(base)]["configs"][n],
            "fine-tuned": scores[str(tuned)]["configs"][n],
            "fine-tuned, spread": scores[str(spread_file)]["configs"][n],
            **{
                f"{label}, validation {kind} (cross-fitted)": v
                for label, c in crossed.items()
                for kind, v in c["configs"][n].items()
                if kind != "as is"
            },
        }
        for n in names
    }
    out: dict[str, Any] = {"cut": cut, "channels": len(series), "fine_tuning": summary, "configs": found}
    if pipeline:
        out["pipeline"] = pipeline_candidate(mine, resolution, found, crossed["fine-tuned"])
    return out


def pipeline_candidate(
    tasks: dict[str, protocol.Task], resolution: str, found: dict[str, dict[str, Any]], tuned: dict[str, Any]
) -> dict[str, Any]:
    """bench.gifteval's model for `resolution` trained by `gatecast pipeline` from its TOML on the values before
    `tasks`' windows (the same file bench.gifteval writes, cut earlier), served, and scored on those windows with
    its own widths; its scores go into `found` as "pipeline", and those of the mean of its quantiles and the
    fine-tuned model's (`tuned`: spread_validation.cross_fitted's) as "fine-tuned + pipeline"."""
    from bench import gifteval
    from harness.live import running_server

    model = next(m for m, r in gifteval.RESOLUTION_OF.items() if r == resolution)
    ett_csv = datasets.data_dir() / "ett" / "ETTm1.csv.gz"
    with tempfile.TemporaryDirectory(prefix="pipeline-candidate-") as folder:
        root = Path(folder)
        data = gifteval.training_file(model, resolution, tasks, ett_csv, root / "data")
        config = (gifteval.CANDIDATE_CONFIGS / f"{model}.toml").read_text()
        config = re.sub(r'(?m)^dataset = ".*"$', f"dataset = {json.dumps(str(data))}", config)
        (root / f"{model}.toml").write_text(config)
        started = time.perf_counter()
        trained = subprocess.run(
            [sys.executable, "-m", "app.cli", "pipeline", str(root / f"{model}.toml"), "--quiet", "--root", str(root)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        if trained.returncode != 0:  # weekly: too few weeks before the validation windows for its own splits
            return {"model": model, "failed": (trained.stderr.strip().splitlines() or ["(no output)"])[-1]}
        with running_server(root / "models", workers=1) as (url, _), httpx.Client(base_url=url, timeout=600) as client:
            context = int(client.get(f"/models/{model}").json()["versions"][-1]["input_window"]["trained"])
            for name, task in tasks.items():
                served = gifteval.forecast_task(client, task, model, context)
                found[name]["pipeline"] = scores_of(task, served)
                levels = tuned["levels"]
                mean = [
                    [{p: (q[p] + head[:, levels.index(p)]) / 2 for p in q} for q, head in zip(a, b, strict=True)]
                    for a, b in zip(served, tuned["heads"][name], strict=True)
                ]
                found[name]["fine-tuned + pipeline"] = scores_of(task, mean)
    return {"model": model, "wall_seconds": round(seconds, 1)}


def joint_candidate(tasks: dict[str, protocol.Task], steps: int, depth: int, seed: int) -> dict[str, Any]:
    """The base fine-tuned once on every ETT resolution's channels, all cut at the time of the earliest validation
    window of any of them (so no resolution's values from any validation window's period are read), and scored on
    every ETT configuration's validation windows."""
    from bench.gifteval import ALL_ETT, series_before

    ett = {n: t for n, t in tasks.items() if n.startswith("ett1/")}
    cut = min(t.data.index[t.first_origin] for t in ett.values())  # type: ignore[index]
    series = series_before(ett, ALL_ETT, cut)
    card = ModelCard.from_props(dict(ort.InferenceSession(str(BASE)).get_modelmeta().custom_metadata_map))
    started = time.process_time()
    model, summary = finetune_base.finetune(
        card, CHECKPOINT, series, steps, depth, seed, report=lambda _: None, cancelled=lambda: False
    )
    summary["cpu_seconds"] = round(time.process_time() - started, 1)
    with tempfile.TemporaryDirectory() as folder:
        joint = Path(folder) / "model.onnx"
        write(model, joint, BASE, model.config.input_length)
        scores = validate([joint], ett)[str(joint)]["configs"]
    return {"cut": str(cut), "series": len(series), "fine_tuning": summary, "configs": scores}


def scores_of(task: protocol.Task, forecasts: list[list[dict[float, np.ndarray]]]) -> dict[str, Any]:
    s = protocol.score(task, forecasts)
    return {"mase": s.mase, "crps": s.crps, "coverage": {str(k): v for k, v in s.coverage.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.finetune_validation", description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", nargs="+", default=["15T", "H", "D", "W"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--depth", type=int, default=5, help="1-5: how far from the output inwards weights train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument(
        "--pipeline", action="store_true", help="also train bench.gifteval's `gatecast pipeline` candidate on them"
    )
    parser.add_argument("--joint", action="store_true", help="also fine-tune once on every resolution (all cut early)")
    args = parser.parse_args(argv)
    ett = datasets.data_dir() / "ett" / "ETTm1.csv.gz"
    if not ett.exists():
        raise SystemExit(f"no data: {ett} is absent (GATECAST_DATA_DIR)")
    tasks = validation_tasks(protocol.tasks(ett, None))
    report: dict[str, Any] = {
        "what": "the base model fine-tuned per ETT resolution before its validation windows, on those windows",
        "settings": {
            "steps": args.steps,
            "depth": args.depth,
            "seed": args.seed,
            "pipeline": args.pipeline,
            "joint": args.joint,
        },
        "resolutions": {},
    }
    for resolution in args.resolutions:
        found = fine_tune_and_score(tasks, resolution, args.steps, args.depth, args.seed, pipeline=args.pipeline)
        report["resolutions"][resolution] = found
        for name, candidates in found["configs"].items():
            shown = "  ".join(
                f"{label} {v['mase']:.3f} / {v['crps']:.3f} ({v['coverage'].get('80', math.nan):.2f}, "
                f"{v['coverage'].get('95', math.nan):.2f})"
                for label, v in candidates.items()
            )
            print(f"{name}: {shown}  (best step {found['fine_tuning']['best_step']} of {args.steps})", flush=True)
    if args.joint:
        report["joint"] = joint_candidate(tasks, args.steps, args.depth, args.seed)
        for name, v in report["joint"]["configs"].items():
            print(f"{name}: fine-tuned on every resolution {v['mase']:.3f} / {v['crps']:.3f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "finetune-validation.json").write_text(json.dumps(report, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
