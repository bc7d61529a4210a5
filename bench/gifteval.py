"""GIFT-Eval on the nine configurations rebuilt from ../shared/data, scored through POST /forecast.

  1. The protocol checks itself: seasonal naive must reproduce the published MASE of every configuration
     (and ND 0.2717 on ett1/H/short), or the run stops, naming the configuration (bench.giftprotocol).
  2. Training (unless --score-only): the base model fine-tuned (training.finetune, the code a user's fine-tuning job
     runs) on every channel before the earliest test window of the configurations each model answers: at 15
     minutes on that resolution, hourly and daily on all four of ETT's (`FINETUNED`); weekly is answered by the
     base model itself. Those choices were made on validation windows (bench.finetune_validation), also against
     `gatecast pipeline` models trained from training/configs/gifteval-candidates/*.toml on long-format files this
     module writes (`training_file`). M4 Hourly's model is trained by `make models` (its own TOML).
  3. The models are served by `gatecast serve` (one worker). Each model's interval widths (its own, or
     calibrated on the history sent, "auto") are chosen on validation windows: the test's windows moved to end
     at the model's training cut. Then every test window is forecast with a POST /forecast holding all series
     of the configuration, asking quantiles 0.1 ... 0.9 (and 0.025/0.975 for the 95% coverage). The server's
     CPU time over repeated rounds of those requests gives the cost per series.

  python -m bench.gifteval [--ett ETTm1.csv.gz] [--m4 m4/] [--configs ...] [--out docs/benchmarks]
                                          (make bench-gifteval: train, serve, score)
  python -m bench.gifteval --score-only     score the models in models/ (the committed ones), train nothing
  python -m bench.gifteval --data-only      write the training files of the pipeline candidates (build/gifteval/)
  python -m bench.gifteval --finetune-only  fine-tune the models that start from the base model (make models)

The foundation models' figures are published zero-shot results; gatecast's models are trained per dataset.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
import pandas as pd

from app.calibration import readings
from bench import giftprotocol as protocol
from harness import machine
from training import data as datasets

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "gifteval"  # the training files the configs read (git-ignored)
COVERAGE_QUANTILES = (0.025, 0.975)
# The interval widths compared on validation: the model's conformal table, or calibrated on each series' history
# in the request (app.calibration), which follows a level of volatility the validation split did not have.
CALIBRATIONS = ("model", "auto")
AUTO_MIN_GAIN = 0.01  # the share of validation CRPS "auto" must save over the model's widths to be served
CALIBRATION_WORDS = {"model": "the model's widths", "auto": "the history sent (`auto`)"}

# The served model answering each configuration, chosen on validation windows (bench.finetune_validation): the
# base fine-tuned at 15 minutes; the base fine-tuned on every resolution of the station hourly and daily; the base
# itself, never trained on ETT, weekly (both fine-tunings lost to it there, and the weekly `gatecast pipeline` model
# cannot train before the validation windows).
MODEL_FOR = {
    "ett1/15T/short": "gifteval-ett1-15t",
    "ett1/15T/medium": "gifteval-ett1-15t",
    "ett1/15T/long": "gifteval-ett1-15t",
    "ett1/H/short": "gifteval-ett1-h-d",
    "ett1/H/medium": "gifteval-ett1-h-d",
    "ett1/H/long": "gifteval-ett1-h-d",
    "ett1/D/short": "gifteval-ett1-h-d",
    "ett1/W/short": "gatecast-base",
    "m4_hourly/H/short": "m4-hourly-gru",
}
# Daily and weekly ETT have 725 and 103 points: their models also train on the same sensors summed from
# every hour (daily) or day (weekly) offset of the finer data before the test windows, relabelled onto the
# target axis. Each offset is a distinct series of the same process. (Hourly from every 15-minute offset lost
# to the 7 channels alone on the validation windows.) resolution -> (label unit, offsets per period, label step).
OFFSETS = {"D": ("h", 24, 1), "W": ("D", 7, 1)}


def training_file(
    model: str, resolution: str, tasks: dict[str, protocol.Task], ett_csv: Path, folder: Path = BUILD
) -> Path:
    """The long-format file the pipeline candidate `model` trains on: every series cut before the earliest test
    window of `tasks`' configurations at `resolution`."""
    answered = [t for c, t in tasks.items() if c.startswith(f"ett1/{resolution}/")]
    if not answered:
        raise ValueError(f"no configuration at {resolution!r} among {sorted(tasks)}")
    cut = min(t.first_origin for t in answered)
    index = answered[0].data.index
    assert index is not None
    frames = []
    base = answered[0].data
    for sid, values in zip(base.ids, base.values, strict=True):
        frames.append(pd.DataFrame({"unique_id": sid, "ds": index[:cut], "y": values[:cut]}))
    if resolution in OFFSETS:
        frames += offset_series(base, cut, ett_csv, resolution)
    path = folder / f"{model}.csv"
    folder.mkdir(parents=True, exist_ok=True)
    pd.concat(frames).to_csv(path, index=False)
    return path


def offset_series(base: protocol.Data, cut: int, ett_csv: Path, resolution: str) -> list[pd.DataFrame]:
    """The same sums started `k` hours (daily) or days (weekly) later, for every k in the period, labelled
    with the base period they start in; only periods that end before the base's row `cut` begins."""
    unit, count, step = OFFSETS[resolution]
    fine = pd.read_csv(ett_csv, parse_dates=["date"]).set_index("date").astype(np.float64)
    per = {"D": 96, "W": 96 * 7}[resolution]
    table = fine[base.ids].to_numpy()
    first = np.stack([v[0] for v in base.values])
    if not np.allclose(table[:per].sum(axis=0), first):  # the base's first period starts at the file's first row
        raise ValueError(f"ETT {resolution}: the first period does not start at the file's first row")
    assert base.index is not None
    frames = []
    for k in range(1, count):
        skip = per * k // count
        blocks = (cut * per - skip) // per  # whole periods from `skip` that end before the cut
        sums = table[skip : skip + blocks * per].reshape(blocks, per, -1).sum(axis=1)
        for i, sid in enumerate(base.ids):
            frames.append(
                pd.DataFrame({"unique_id": f"{sid}+{k * step}{unit}", "ds": base.index[:blocks], "y": sums[:, i]})
            )
    return frames


# --- training ---------------------------------------------------------------------------------------------

# The `gatecast pipeline` candidates compared on validation (bench.finetune_validation) and their resolution.
CANDIDATE_CONFIGS = ROOT / "training" / "configs" / "gifteval-candidates"
RESOLUTION_OF = {
    "gifteval-ett1-15t": "15T",
    "gifteval-ett1-h": "H",
    "gifteval-ett1-d": "D",
    "gifteval-ett1-w": "W",
}


class Recipe(NamedTuple):
    steps: int
    depth: int
    spread: str | None  # "per step": quantile factors fitted on validation windows (bench.spread_validation)
    # The ETT resolutions whose 7 channels it fine-tunes on, all cut at the time of the earliest test window it
    # answers; () for the channels of the resolution it answers alone.
    resolutions: tuple[str, ...] = ()


# Models fine-tuned from the base model (training.finetune, the code a user's fine-tuning job runs) instead of trained
# by `gatecast pipeline`, chosen per configuration on validation windows (bench.finetune_validation,
# docs/benchmarks/finetune-validation.json). At 15 minutes: the 7 channels at that resolution, and a spread fitted
# per step on validation windows (there it brought the intervals to their levels at a CRPS within 0.5%). Hourly and
# daily: one model fine-tuned on every resolution of the station, ahead there of the base and of a model per
# resolution.
ALL_ETT = ("15T", "H", "D", "W")
FINETUNED = {
    "gifteval-ett1-15t": Recipe(300, 5, "per step"),
    "gifteval-ett1-h-d": Recipe(300, 5, None, ALL_ETT),
}
# When each resolution's value ends, after its label (a week is labelled with its last day).
PERIOD = {"15T": pd.Timedelta("15min"), "H": pd.Timedelta("1h"), "D": pd.Timedelta("1D"), "W": pd.Timedelta("1D")}


def series_before(tasks: dict[str, protocol.Task], resolutions: tuple[str, ...], cut: pd.Timestamp) -> list[np.ndarray]:
    """Every channel of each of `resolutions` (from `tasks`' data) up to its last value that ends by `cut`."""
    data = {t.data.resolution: t.data for t in tasks.values()}
    missing = [r for r in resolutions if r not in data]
    if missing:
        raise ValueError(f"resolutions {missing} have no configuration among {sorted(tasks)}")
    out = []
    for r in resolutions:
        index = data[r].index
        assert index is not None
        keep = int(np.sum(index + PERIOD[r] <= cut))
        out += [np.asarray(v[:keep], np.float32) for v in data[r].values]
    return out


BASE_MODEL = ROOT / "models" / "gatecast-base" / "1"
BASE_CHECKPOINT = ROOT / "runs" / "gatecast-base" / "checkpoint.pt"


def finetune_model(name: str, tasks: dict[str, protocol.Task], root: Path = ROOT) -> float:
    """Fine-tune the base on every channel (of its recipe's resolutions) before the earliest test window `name`
    answers; publish it as <root>/models/<name>/1, its checkpoint in <root>/runs/<name>/ and its record in
    <root>/reports/<name>/; return the CPU seconds it took (the spread's fitting included)."""
    from training.finetune import CHECKPOINT_FILE, FinetuneSpec, finetune

    answered = {c: tasks[c] for c, m in MODEL_FOR.items() if m == name and c in tasks}
    recipe = FINETUNED[name]
    if recipe.spread and recipe.resolutions:
        raise ValueError(f"{name}: a spread is fitted for a model of one resolution (validation_spread)")
    if recipe.resolutions:
        cut: int | str = str(min(t.data.index[t.first_origin] for t in answered.values()))  # type: ignore[index]
        series = series_before(tasks, recipe.resolutions, pd.Timestamp(cut))
    else:
        cut = model_cut(name, tasks)
        series = [np.asarray(v[:cut], np.float32) for v in next(iter(answered.values())).data.values]
    started = time.process_time()
    spread = validation_spread(answered, recipe) if recipe.spread else None
    with tempfile.TemporaryDirectory(prefix="finetune-") as tmp:
        spec = FinetuneSpec(BASE_MODEL, name, series, recipe.steps, recipe.depth, "default", 0, "make models", spread)
        record = finetune(spec, Path(tmp), runs_dir=ROOT / "runs")
        seconds = time.process_time() - started
        run = root / "runs" / name
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        shutil.move(Path(tmp) / name / "1" / CHECKPOINT_FILE, run / CHECKPOINT_FILE)
        shutil.rmtree(root / "models" / name, ignore_errors=True)
        shutil.move(Path(tmp) / name, root / "models" / name)
    report = root / "reports" / name
    shutil.rmtree(report, ignore_errors=True)
    report.mkdir(parents=True)
    training = {"seconds": round(seconds, 1), "clock": "CPU", "series": len(series), "cut": cut}
    (report / "metrics.json").write_text(json.dumps({"training": training, "finetune": record}, indent=1) + "\n")
    return seconds


def validation_spread(answered: dict[str, protocol.Task], recipe: Recipe) -> np.ndarray:
    """The spread's factors fitted on the validation windows of the configurations answered (each test's windows
    moved before its first test window), forecast by the base fine-tuned the same way on the values before them."""
    import onnxruntime as ort

    from bench.base_variants import write
    from bench.spread_validation import fit, heads
    from contract.card import ModelCard
    from training import finetune_base

    validation = {c: protocol.validation_task(t, t.first_origin) for c, t in answered.items()}
    cut = min(t.first_origin for t in validation.values())
    series = [np.asarray(v[:cut], np.float32) for v in next(iter(validation.values())).values]
    card = ModelCard.from_props(
        dict(ort.InferenceSession(str(BASE_MODEL / "model.onnx")).get_modelmeta().custom_metadata_map)
    )
    model, _ = finetune_base.finetune(
        card, BASE_CHECKPOINT, series, recipe.steps, recipe.depth, 0, report=lambda _: None, cancelled=lambda: False
    )
    with tempfile.TemporaryDirectory(prefix="spread-") as tmp:
        path = Path(tmp) / "model.onnx"
        write(model, path, BASE_MODEL / "model.onnx", model.config.input_length)
        found, levels = heads(path, validation)
    return fit(validation, found, levels, per_step=recipe.spread == "per step")


def train_models(tasks: dict[str, protocol.Task], names: list[str]) -> None:
    """Fine-tune each of `names` (FINETUNED) from the base."""
    for name in names:
        print(f"  fine-tuning {name} from {BASE_MODEL.parent.name}: {FINETUNED[name]}", flush=True)
        print(f"    {finetune_model(name, tasks):.0f} CPU s (fine-tune, export)", flush=True)


def training_words(model: str, seconds: float | None) -> str:
    if seconds:
        return f"{seconds:.0f}"
    return "pretrained, not counted (zero-shot)" if model == BASE_MODEL.parent.name else "not recorded"


def training_seconds(model: str) -> float | None:
    """The training time the pipeline or the fine-tuning recorded (reports/<model>/metrics.json)."""
    path = ROOT / "reports" / model / "metrics.json"
    return float(json.loads(path.read_text())["training"]["seconds"]) if path.exists() else None


# --- scoring through the server --------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """CPU seconds of a process and all its descendants (the server and its worker)."""
    from bench.serving import children, cpu_seconds

    return cpu_seconds(pid) + sum(process_cpu(c) for c in children(pid))


def forecast_task(
    client: httpx.Client, task: protocol.Task, model: str, context: int, calibration: str = "model"
) -> list[list[dict[float, np.ndarray]]]:
    """Every window of `task` as one POST /forecast with all its series: the last `context` values each, and
    with calibration "auto" the history its widths are calibrated on before them."""
    h = task.config.horizon
    asked = sorted({*protocol.QUANTILES, *COVERAGE_QUANTILES})
    sent = context + (readings(h) if calibration != "model" else 0)
    per_series: list[list[dict[float, np.ndarray]]] = [[] for _ in task.values]
    for k in range(len(task.origins[0])):
        series = [
            {"id": str(i), "values": values[: origins[k]][-sent:].tolist()}
            for i, (values, origins) in enumerate(zip(task.values, task.origins, strict=True))
        ]
        body = {"model": model, "horizon": h, "quantiles": asked, "series": series, "calibration": calibration}
        answer = client.post("/forecast", json=body)
        if answer.status_code != 200:
            raise RuntimeError(f"{task.config.name} window {k}: {answer.status_code} {answer.text[:300]}")
        for i, forecast in enumerate(answer.json()["forecasts"]):
            per_series[i].append({float(q): np.asarray(v, dtype=np.float64) for q, v in forecast["quantiles"].items()})
    return per_series


def serving_cpu(
    client: httpx.Client, pid: int, task: protocol.Task, model: str, context: int, calibration: str, min_s: float = 2.0
) -> tuple[float, int]:
    """The server's CPU seconds over repeated rounds of the task's requests (at least 3 and `min_s` of wall
    time: the kernel counts CPU in 10 ms ticks, more than a small configuration's whole round), and the rounds."""
    cpu0, t0, rounds = process_cpu(pid), time.perf_counter(), 0
    while rounds < 3 or time.perf_counter() - t0 < min_s:
        forecast_task(client, task, model, context, calibration)
        rounds += 1
    return process_cpu(pid) - cpu0, rounds


BATCH, BATCH_HORIZON = 32, 48  # the serving target's request: 32 series, 48 steps (bench.zeroshot measures the same)


def batched_cpu(client: httpx.Client, pid: int, task: protocol.Task, model: str, context: int) -> dict[str, Any]:
    """Server CPU per series for requests of BATCH series (every window of `task`'s series, as separate series),
    BATCH_HORIZON steps, the quantiles 0.1 ... 0.9 and the model's own widths, over at least 3 rounds and 2 s."""
    windows = [v[:o][-context:].tolist() for v, origins in zip(task.values, task.origins, strict=True) for o in origins]
    windows = windows * -(-BATCH // len(windows))  # a configuration with fewer windows than a request sends some twice
    body = {"model": model, "horizon": BATCH_HORIZON, "quantiles": list(protocol.QUANTILES)}
    requests = [
        {**body, "series": [{"id": str(j), "values": w} for j, w in enumerate(windows[i : i + BATCH])]}
        for i in range(0, len(windows) - BATCH + 1, BATCH)
    ]
    client.post("/forecast", json=requests[0]).raise_for_status()  # warm
    cpu0, t0, n = process_cpu(pid), time.perf_counter(), 0
    while n < 3 * BATCH * len(requests) or time.perf_counter() - t0 < 2.0:
        for request in requests:
            client.post("/forecast", json=request).raise_for_status()
            n += BATCH
    return {"server_cpu_ms_per_series": 1000 * (process_cpu(pid) - cpu0) / n, "series": n, "context": context}


def model_cut(model: str, tasks: dict[str, protocol.Task], like: str | None = None) -> int:
    """The index before which `model` trains: the earliest first test window of the configurations it answers (with
    `like`, of those at that configuration's resolution: a model answering daily and weekly has a cut in each)."""
    answered = [c for c, m in MODEL_FOR.items() if m == model and c in tasks]
    if like is not None:
        answered = [c for c in answered if tasks[c].data.resolution == tasks[like].data.resolution]
    return min(tasks[c].first_origin for c in answered)


def choose_calibration(
    client: httpx.Client, tasks: dict[str, protocol.Task], model: str, context: int
) -> tuple[str, dict[str, Any]]:
    """The model's own widths, or the series' history ("auto") where it lowers the CRPS (geometric mean over the
    configurations the model answers) by at least AUTO_MIN_GAIN on validation windows: the test's windows moved
    before the model's training cut."""
    answered = [c for c, m in MODEL_FOR.items() if m == model and c in tasks]
    found: dict[str, dict[str, Any]] = {}
    for mode in CALIBRATIONS:
        found[mode] = {}
        for name in answered:
            val = protocol.validation_task(tasks[name], model_cut(model, tasks, name))
            s = protocol.score(val, forecast_task(client, val, model, context, mode))
            found[mode][name] = {"mase": s.mase, "crps": s.crps, "coverage": {str(k): v for k, v in s.coverage.items()}}
    gm = {mode: float(np.exp(np.mean([np.log(found[mode][n]["crps"]) for n in answered]))) for mode in CALIBRATIONS}
    # The history's calibration costs a forecast per past origin: it is served only where it earns its cost.
    chosen = "auto" if gm["auto"] < (1 - AUTO_MIN_GAIN) * gm["model"] else "model"
    for mode in CALIBRATIONS:
        cover = "  ".join(
            f"{n} {v['coverage'].get('80', math.nan):.3f}/{v['coverage'].get('95', math.nan):.3f}"
            for n, v in found[mode].items()
        )
        print(
            f"  validation {model:18s} calibration {mode:5s} CRPS (geometric mean) {gm[mode]:.4f}  cover {cover}",
            flush=True,
        )
    return chosen, {"chosen": chosen, "crps_geometric_mean": gm, "configs": found}


def score_served(
    tasks: dict[str, protocol.Task], models: Path
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Each configuration's test windows through the server, with the calibration chosen on validation; the
    scores, the validation runs behind each model's choice, and each model's cost in requests of BATCH series."""
    from harness.live import running_server

    needed = sorted({MODEL_FOR[c] for c in tasks})
    missing = [m for m in needed if not (models / m).is_dir()]
    if missing:
        raise SystemExit(
            f"models {missing} are not in {models}: run without --score-only (make bench-gifteval) to train them"
        )
    out: dict[str, dict[str, Any]] = {}
    validation: dict[str, Any] = {}
    batched: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gifteval-") as tmp:
        repo = Path(tmp) / "models"
        repo.mkdir()
        for m in needed:  # copies: the registry refuses files that resolve outside its repository
            shutil.copytree(models / m, repo / m)
        with running_server(repo, workers=1) as (url, proc), httpx.Client(base_url=url, timeout=600) as client:
            contexts = {
                m: int(client.get(f"/models/{m}").json()["versions"][-1]["input_window"]["trained"]) for m in needed
            }
            chosen = {}
            for m in needed:
                chosen[m], validation[m] = choose_calibration(client, tasks, m, contexts[m])
            for name, task in tasks.items():
                model = MODEL_FOR[name]
                context, calibration = contexts[model], chosen[model]
                t0 = time.perf_counter()
                forecasts = forecast_task(client, task, model, context, calibration)
                wall = time.perf_counter() - t0
                s = protocol.score(task, forecasts)
                n = sum(len(o) for o in task.origins)
                cpu, rounds = serving_cpu(client, proc.pid, task, model, context, calibration)
                n_cost = n * rounds
                # The model's widths alone, for the cost of a forecast without the history's extra forecasts.
                plain_cpu, plain_rounds = (
                    (cpu, rounds)
                    if calibration == "model"
                    else serving_cpu(client, proc.pid, task, model, context, "model")
                )
                out[name] = {
                    "model": model,
                    "calibration": calibration,
                    "mase": s.mase,
                    "crps": s.crps,
                    "nd": s.nd,
                    "coverage": {str(k): v for k, v in s.coverage.items()},
                    "series_windows": n,
                    "server_cpu_ms_per_series": 1000 * cpu / n_cost,
                    "server_cpu_ms_per_series_model_widths": 1000 * plain_cpu / (n * plain_rounds),
                    "wall_s": wall,
                }
                print(
                    f"  {name:18s} {model:18s} {calibration:5s} MASE {s.mase:.3f}  CRPS {s.crps:.3f}  cover80 "
                    f"{s.coverage.get(80, math.nan):.3f} cover95 {s.coverage.get(95, math.nan):.3f}  "
                    f"{1000 * cpu / n_cost:.2f} CPU ms/series",
                    flush=True,
                )
            for m in needed:  # the model's cost in the serving target's request shape
                first = next(n for n, model in MODEL_FOR.items() if model == m and n in tasks)
                batched[m] = batched_cpu(client, proc.pid, tasks[first], m, contexts[m])
                print(f"  {m:18s} {batched[m]['server_cpu_ms_per_series']:.3f} CPU ms/series, 32 a request", flush=True)
    return out, validation, batched


# --- the report -------------------------------------------------------------------------------------------


def summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Geometric means of the ratio to the published seasonal naive, gatecast's and each published model's,
    over the configurations scored."""
    names = list(results)
    naive = {k: {n: protocol.PUBLISHED[n]["Seasonal naive"][i] for n in names} for i, k in enumerate(("mase", "crps"))}
    out: dict[str, Any] = {
        "gatecast": {k: protocol.geometric_ratio({n: results[n][k] for n in names}, naive[k]) for k in naive}
    }
    for model in protocol.MODELS:
        out[model] = {
            k: protocol.geometric_ratio({n: protocol.PUBLISHED[n][model][i] for n in names}, naive[k])
            for i, k in enumerate(("mase", "crps"))
        }
    return out


def render_markdown(report: dict[str, Any]) -> str:
    configs, agg, check = report["configs"], report["summary"], report["protocol_check"]
    shown = ("Chronos-2", "TiRex", "TimesFM-2.5", "PatchTST")
    lines = [
        "# GIFT-Eval: the nine configurations rebuilt from ../shared/data",
        "",
        "Generated by `python -m bench.gifteval` (`make bench-gifteval`) from `gifteval.json`. MASE / CRPS; lower is "
        "better. gatecast's 15-minute, hourly and daily models are the base model **fine-tuned on the dataset** "
        "(15 minutes: on that resolution; hourly and daily: one model on all four of ETT's) on everything before the "
        "first test window of the configurations they answer; weekly ETT is answered by the base model itself, "
        "never trained on ETT; M4 Hourly by a GRU trained on its training part (choices on validation only, "
        "`bench.finetune_validation`). All are scored through `POST /forecast` "
        "with quantiles 0.1 ... 0.9; Chronos-2, TiRex and TimesFM-2.5 are published **zero-shot** figures (one model "
        "for all data, not trained on these series); PatchTST is published, trained per dataset.",
        "",
        "| config | gatecast (model) | "
        + " | ".join(shown)
        + " | seasonal naive | gatecast / best zero-shot | 80% / 95% coverage |",
        "|---|---|" + "---|" * (len(shown) + 3),
    ]
    for name, r in configs.items():
        pub = protocol.PUBLISHED[name]
        best_mase = min(pub[m][0] for m in shown[:3])
        best_crps = min(pub[m][1] for m in shown[:3])
        cover = r["coverage"]
        lines.append(
            f"| {name} | {r['mase']:.3f} / {r['crps']:.3f} (`{r['model']}`) | "
            + " | ".join(f"{pub[m][0]:.3f} / {pub[m][1]:.3f}" for m in shown)
            + f" | {pub['Seasonal naive'][0]:.3f} / {pub['Seasonal naive'][1]:.3f}"
            + f" | {r['mase'] / best_mase:.2f} / {r['crps'] / best_crps:.2f}"
            + f" | {cover.get('80', math.nan):.3f} / {cover.get('95', math.nan):.3f} |"
        )
    lines.append(
        "| **geometric mean of the ratio to seasonal naive** | "
        f"**{agg['gatecast']['mase']:.3f} / {agg['gatecast']['crps']:.3f}** | "
        + " | ".join(f"{agg[m]['mase']:.3f} / {agg[m]['crps']:.3f}" for m in shown)
        + " | 1.000 / 1.000 | | |"
    )
    lines += [
        "",
        "The ratio columns divide by the best of the three zero-shot models on that configuration (above 1: gatecast "
        "loses, by that factor). Seasonal naive's CRPS is the published one (statsforecast's probabilistic seasonal "
        "naive); the protocol check reproduces its MASE on every configuration "
        f"({check['configs']} of {len(protocol.CONFIGS)}) and ND {check['nd_h_short']:.4f} on ett1/H/short.",
        "",
        "## Cost",
        "",
        "| model | answers | training (CPU s) | calibration (chosen on validation) | server CPU ms per series "
        "forecast, as served | with the model's widths | in requests of 32 series, 48 steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in sorted({r["model"] for r in configs.values()}):
        answered = [n for n, r in configs.items() if r["model"] == model]
        cpu = np.mean([configs[n]["server_cpu_ms_per_series"] for n in answered])
        plain = np.mean([configs[n].get("server_cpu_ms_per_series_model_widths", math.nan) for n in answered])
        trained = report["training_seconds"].get(model)
        calibration = configs[answered[0]].get("calibration", "model")
        cost = report.get("batched_cost", {}).get(model)
        batch = f"{cost['server_cpu_ms_per_series']:.2f}" if cost else "not measured"
        lines.append(
            f"| `{model}` | {', '.join(answered)} | {training_words(model, trained)} | "
            f"{CALIBRATION_WORDS[calibration]} | {cpu:.2f} | {plain:.2f} | {batch} |"
        )
    lines += [
        "",
        "Server CPU is the `gatecast serve` process tree's user + system time over the requests, divided by the "
        "series forecast (JSON decode, model, quantiles, JSON encode; with the history's calibration, its past "
        "forecasts too). A configuration's own requests hold its 7 series (M4 Hourly: 414), so the cost of a request "
        "weighs on few series; the last column sends every test window as a series, 32 a request, asking 48 steps "
        "and the quantiles 0.1 ... 0.9 (the shape `bench.zeroshot` measures the base model in). "
        "The published models are models of another size: "
        "[Chronos-2](https://huggingface.co/amazon/chronos-2) has 120M parameters, "
        "[TimesFM-2.5](https://huggingface.co/google/timesfm-2.5-200m-pytorch) 200M and "
        "[TiRex](https://huggingface.co/NX-AI/TiRex) 35M, run from PyTorch and usually on a GPU (TiRex's package "
        "was tested on NVIDIA GPUs of compute capability 8.0 and up, [tirex-ts](https://pypi.org/p/tirex-ts)).",
        "",
        "## Validation: the calibration each model serves with",
        "",
        "The test's windows moved before each model's training cut (`giftprotocol.validation_task`), forecast "
        'through the same server with the model\'s conformal widths and with `"calibration": "auto"` (widths '
        "recalibrated on the history each request sends). `auto` is served on the test windows where it lowers the "
        "CRPS (geometric mean over the configurations the model answers) by at least "
        f"{AUTO_MIN_GAIN:.0%}: it costs a forecast per past origin.",
        "",
        "| model | calibration | config | MASE | CRPS | 80% / 95% coverage |",
        "|---|---|---|---|---|---|",
    ]
    for model, v in report.get("validation", {}).items():
        for mode, per in v["configs"].items():
            mark = " (chosen)" if mode == v["chosen"] else ""
            for name, f in per.items():
                cover = f["coverage"]
                lines.append(
                    f"| `{model}` | {mode}{mark} | {name} | {f['mase']:.3f} | {f['crps']:.3f} | "
                    f"{cover.get('80', math.nan):.3f} / {cover.get('95', math.nan):.3f} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = datasets.data_dir()
    parser.add_argument("--ett", type=Path, default=root / "ett" / "ETTm1.csv.gz", help="an ETTm1-format CSV")
    parser.add_argument("--m4", type=Path, default=root / "m4", help="a folder with Hourly-train.csv, Hourly-test.csv")
    parser.add_argument("--configs", nargs="*", default=None, help="configurations to score (default: all nine)")
    parser.add_argument("--score-only", action="store_true", help="score the models there are; train nothing")
    parser.add_argument("--data-only", action="store_true", help="write the pipeline candidates' training files")
    parser.add_argument("--finetune-only", action="store_true", help="fine-tune FINETUNED from the base (make models)")
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="the model folder to serve")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    tasks = protocol.tasks(args.ett if args.ett.exists() else None, args.m4 if args.m4.is_dir() else None)
    if not tasks:
        raise SystemExit(f"no data: {args.ett} and {args.m4} are absent (GATECAST_DATA_DIR)")
    print("protocol check: seasonal naive against the published MASE", flush=True)
    try:
        check = protocol.check_protocol(tasks)
    except ValueError as exc:
        raise SystemExit(f"protocol check failed: {exc}") from None
    print(f"  {len(check)} configurations reproduce the published seasonal-naive MASE", flush=True)
    if args.configs:
        unknown = [c for c in args.configs if c not in tasks]
        if unknown:
            raise SystemExit(f"configurations {unknown} are unknown or lack data; there are {list(tasks)}")
        tasks = {c: tasks[c] for c in args.configs}
    out_json = args.out / "gifteval.json"
    previous = json.loads(out_json.read_text()) if out_json.exists() else {}
    if args.data_only:
        for name, resolution in RESOLUTION_OF.items():
            print(f"  wrote {training_file(name, resolution, tasks, args.ett).relative_to(ROOT)}")
        return
    if not args.score_only:
        train_models(tasks, sorted({MODEL_FOR[c] for c in tasks} & set(FINETUNED)))
    if args.finetune_only:
        return
    scored, validation, batched = score_served(tasks, args.models)
    results = {**previous.get("configs", {}), **scored}
    results = {c.name: results[c.name] for c in protocol.CONFIGS if c.name in results}
    serving = {r["model"] for r in results.values()}  # a retired model's validation rows go with it
    validation = {m: v for m, v in {**previous.get("validation", {}), **validation}.items() if m in serving}
    report = {
        "configs": results,
        "summary": summary(results),
        "validation": validation,
        "training_seconds": {m: training_seconds(m) for m in sorted({r["model"] for r in results.values()})},
        "batched_cost": {m: v for m, v in {**previous.get("batched_cost", {}), **batched}.items() if m in serving},
        "protocol_check": {"configs": len(check), "nd_h_short": check.get("ett1/H/short", {}).get("nd", math.nan)},
        "published": {n: protocol.PUBLISHED[n] for n in results},
        "machine": machine.describe(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "gifteval.md").write_text(render_markdown(report))
    plot(report, args.out / "gifteval.png")
    agg = report["summary"]["gatecast"]
    print(f"geometric mean ratio to seasonal naive: MASE {agg['mase']:.3f}  CRPS {agg['crps']:.3f}", flush=True)
    print(f"wrote {out_json}, gifteval.md, gifteval.png", flush=True)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = report["configs"]
    names = list(configs)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (i, metric) in zip(axes, enumerate(("mase", "crps")), strict=True):
        x = np.arange(len(names))
        contestants = [("gatecast (trained)", [configs[n][metric] for n in names])]
        contestants += [
            (f"{m} (zero-shot)", [protocol.PUBLISHED[n][m][i] for n in names])
            for m in ("Chronos-2", "TiRex", "TimesFM-2.5")
        ]
        width = 0.8 / len(contestants)
        for j, (label, figures) in enumerate(contestants):
            naive = [protocol.PUBLISHED[n]["Seasonal naive"][i] for n in names]
            ax.bar(x + j * width, np.divide(figures, naive), width, label=label)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xticks(x + 0.4 - width / 2, names, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{metric.upper()} / seasonal naive (lower is better)")
    axes[0].legend(fontsize=8, loc="lower left", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
