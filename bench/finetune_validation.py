"""Per-dataset models fine-tuned from the base model, scored on GIFT-Eval's validation windows beside the base
itself: does fine-tuning from the base pay, and where? (Issue 45 asks this of every configuration, before anything
is trained for the test windows.)

For each ETT station 1 resolution: the base model fine-tuned (training.finetune_base, the path the nixtla client's
`finetune` takes) on every channel's values before that resolution's earliest validation window; then the base and
the fine-tuned model on that resolution's validation windows (bench.zeroshot.validate). Only that resolution's
configurations are scored: the others come from the same station, and their windows overlap what it trained on.

  python -m bench.finetune_validation [--resolutions 15T H D W] [--steps 300] [--depth 5] [--out docs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench import giftprotocol as protocol
from bench.base_variants import write
from bench.zeroshot import validate, validation_tasks
from contract.card import ModelCard
from training import data as datasets
from training import finetune_base

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
) -> dict[str, Any]:
    """One resolution: the cut, the fine-tuning summary, and each configuration's validation MASE and CRPS for the
    base and the fine-tuned model."""
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
    summary["cpu_seconds"] = round(time.process_time() - started, 1)
    with tempfile.TemporaryDirectory() as folder:
        tuned = Path(folder) / "model.onnx"
        write(model, tuned, base, model.config.input_length)
        scores = validate([base, tuned], mine)
    return {
        "cut": cut,
        "channels": len(series),
        "fine_tuning": summary,
        "configs": {
            n: {"base": scores[str(base)]["configs"][n], "fine-tuned": scores[str(tuned)]["configs"][n]} for n in names
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.finetune_validation", description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", nargs="+", default=["15T", "H", "D", "W"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--depth", type=int, default=5, help="1-5: how far from the output inwards weights train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args(argv)
    ett = datasets.data_dir() / "ett" / "ETTm1.csv.gz"
    if not ett.exists():
        raise SystemExit(f"no data: {ett} is absent (GATECAST_DATA_DIR)")
    tasks = validation_tasks(protocol.tasks(ett, None))
    report: dict[str, Any] = {
        "what": "the base model fine-tuned per ETT resolution before its validation windows, on those windows",
        "settings": {"steps": args.steps, "depth": args.depth, "seed": args.seed},
        "resolutions": {},
    }
    for resolution in args.resolutions:
        found = fine_tune_and_score(tasks, resolution, args.steps, args.depth, args.seed)
        report["resolutions"][resolution] = found
        for name, pair in found["configs"].items():
            b, t = pair["base"], pair["fine-tuned"]
            print(
                f"{name}: base {b['mase']:.3f} / {b['crps']:.3f}, fine-tuned {t['mase']:.3f} / {t['crps']:.3f} "
                f"(best step {found['fine_tuning']['best_step']} of {args.steps})",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "finetune-validation.json").write_text(json.dumps(report, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
