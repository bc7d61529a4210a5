"""Renders the README's figures from their sources, so none is typed by hand:

- `models`: the committed models' cards (models/<name>/<version>/model.onnx) and reports (reports/<name>/);
- `serving` and `scaling`: docs/benchmarks/serving.json;
- `protocols`: docs/benchmarks/protocols.json (gRPC beside HTTP, cross-validation);
- `streams`: docs/benchmarks/streams.json (live feeds: appends, memory per stream, ETTh1 replayed);
- `settings` and `config`: the server's settings (app/settings.py) and the training config keys
  (training/config.py), each described where it is defined;
- `accuracy`: docs/benchmarks/accuracy.json and the published tables in bench/accuracy.py;
- `gifteval`: docs/benchmarks/gifteval.json and the published GIFT-Eval figures in bench/giftprotocol.py;
- `committedvalidation`: docs/benchmarks/committed-validation.json (pipeline models against the fine-tuned base);
- `testsuite`: docs/benchmarks/testsuite.json (how long the suites take on a busy machine);
- `training`: docs/benchmarks/training.json (fine-tuning, jobs, tuning and scale-out, measured);
- `tunespace`: the search space of `gatecast tune` (training/tune.py).

Each section sits between `<!-- begin generated: NAME -->` and `<!-- end generated: NAME -->` in README.md or
the docs pages it links (PAGES); the sentences that compare figures are computed from them too.

  python -m bench.readme            rewrite the pages
  python -m bench.readme --check    exit 1 when a page differs from what its sources give (a test runs it)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contract.words import count
from harness import machine
from training.evaluate import step_ranges

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# The pages that hold generated blocks: the README's front page and the docs pages it links.
PAGES = [README, *(ROOT / "docs" / f"{name}.md" for name in ("api", "settings", "models", "benchmarks", "operations"))]
BENCH = ROOT / "docs" / "benchmarks"
BLOCK = re.compile(r"(<!-- begin generated: (\w+) -->\n)(.*?)(<!-- end generated: \2 -->)", re.S)
BASELINES = {"naive": "naive", "seasonal_naive": "seasonal naive"}


# --- sources -----------------------------------------------------------------------------------------------


def committed_models() -> list[dict[str, Any]]:
    """Each committed model's card fields and its report's training record, by name."""
    import onnx

    out = []
    for path in sorted((ROOT / "models").glob("*/*/model.onnx")):
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        card = {k.removeprefix("gatecast."): v for k, v in props.items() if k.startswith("gatecast.")}
        report = ROOT / "reports" / card["name"] / "metrics.json"
        training = json.loads(report.read_text())["training"] if report.exists() else {}
        out.append(
            {
                "name": card["name"],
                "cell": card["cell"],
                "window": json.loads(card["input_window"])["trained"],
                "horizon": int(card["horizon"]),
                "dataset": json.loads(card["dataset"]),
                "metrics": json.loads(card["metrics"]),
                "training": training,
            }
        )
    return out


def measured_at(path: Path) -> str:
    """The commit and date of the last change to a benchmark's JSON."""
    done = subprocess.run(
        ["git", "log", "-1", "--format=%h, %ad", "--date=short", "--", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "not committed yet"


# --- sections ----------------------------------------------------------------------------------------------


def models_section() -> str:
    models = [m for m in committed_models() if "scores" in m["metrics"]]  # the base model has its own section
    stats = sorted({k for m in models for k in m["metrics"]["scores"] if k not in ("model", *BASELINES)})
    header = ["model", "data", "MASE", *BASELINES.values(), *stats, "interval coverage 80% / 95%", "training"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in models:
        scores, coverage = m["metrics"]["scores"], m["metrics"]["coverage"]
        cells = [
            f"`{m['name']}`",
            f"{m['dataset']['description'].split(',')[0]}, window {m['window']}, horizon {m['horizon']}",
            f"**{scores['model']['mase']:.3f}**",
            *[f"{scores[k]['mase']:.3f}" if k in scores else "–" for k in (*BASELINES, *stats)],
            f"{coverage['80'] * 100:.1f}% / {coverage['95'] * 100:.1f}%",
            f"{m['training']['seconds']:.0f} s" if m["training"] else "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *[f"- {_verdict(m)}" for m in models]]
    lines += [f"- {_finetuned_line(m)}" for m in committed_models() if "finetune" in m["metrics"]]
    m4 = _m4_line()
    if m4:
        lines.append(f"- {m4}")
    return "\n".join(lines) + "\n"


def committedvalidation_section() -> str:
    """Each committed pipeline model beside the base and the base fine-tuned on the same training split, on the
    model's validation windows (docs/benchmarks/committed-validation.json, bench.committed_validation)."""
    found = json.loads((BENCH / "committed-validation.json").read_text())
    lines = [
        "| model | validation windows | `gatecast pipeline` (committed) | `gatecast-base` | base fine-tuned, best run "
        "| naive | seasonal naive | lowest |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in found.items():
        mase, best = row["mase"], min(row["fine_tuned"], key=lambda r: r["mase"])
        lines.append(
            f"| `{name}` | {row['windows']:,} | {mase['pipeline']:.3f} | "
            f"{mase['base']:.3f} | {best['mase']:.3f} ({best['settings']}) | {mase['naive']:.3f} | "
            f"{mase['seasonal_naive']:.3f} | {row['winner']} |"
        )
    runs = sorted({r["settings"] for row in found.values() for r in row["fine_tuned"]})
    lines += ["", f"Fine-tuning runs tried: {'; '.join(runs)}."]
    return "\n".join(lines) + "\n"


def _finetuned_line(m: dict[str, Any]) -> str:
    """A model fine-tuned from the base: what it started from, how far it trained, its held-out tail."""
    f = m["metrics"]["finetune"]
    seconds = m["training"].get("seconds")
    return (
        f"`{m['name']}`: `{f['base_model']}` fine-tuned on its dataset ({f['steps']} steps at depth {f['depth']}, "
        f"the best on the held-out tail at step {f['best_step']}; {f['training_windows']:,} training windows"
        + (f", {seconds:.0f} CPU s" if seconds else "")
        + f"): held-out MASE {f['heldout_mase_before']:.3f} before, {f['heldout_mase_after']:.3f} after. Its test "
        "figures are in [GIFT-Eval](benchmarks/gifteval.md)."
    )


def _verdict(m: dict[str, Any]) -> str:
    """What a model's figures say: which baselines it beats on MASE, where one is better, interval coverage."""
    scores = m["metrics"]["scores"]
    own = scores["model"]
    names = {k: BASELINES.get(k, k) for k in scores if k != "model"}
    ahead = [names[k] for k in names if scores[k]["mase"] > own["mase"]]
    behind = [names[k] for k in names if scores[k]["mase"] <= own["mase"]]
    text = f"`{m['name']}` ({m['metrics']['windows']} test origins): MASE {own['mase']:.3f}"
    text += f", below {_join(ahead)}" if ahead else ""
    text += f"; **not below {_join(behind)}**" if behind else ""
    steps = own["mae_by_step"]
    better = []
    for k, label in names.items():
        wins = [i + 1 for i, v in enumerate(scores[k]["mae_by_step"]) if v < steps[i]]
        if wins:
            better.append(f"{label} at {'steps' if len(wins) > 1 else 'step'} {step_ranges(wins)}")
    text += (
        f". A baseline is better at some horizon steps: {'; '.join(better)} (of {len(steps)})"
        if better
        else f". No baseline is better at any of the {len(steps)} steps"
    )
    coverage = m["metrics"]["coverage"]
    parts = [
        f"{level}% intervals covered {c * 100:.1f}% ({_points(c - int(level) / 100)} points)"
        for level, c in coverage.items()
    ]
    text += ". " + ", ".join(parts) + "."
    ensemble = m["metrics"].get("ensemble")
    if ensemble:
        kind = "naive" if ensemble["naive_lag"] == 1 else "seasonal naive"
        text += (
            f" One graph: the median of {len(ensemble['members'])} members, blended with {kind} at weight "
            f"{ensemble['naive_weight']:.2f} (chosen on validation)."
        )
    validation = m["metrics"].get("validation")
    text += f" Validation verdict: {validation['verdict']}." if validation else ""
    return text


def basemodel_section() -> str:
    """The base model: what it is, its corpus with counts, what was excluded, what its pretraining measured (its
    card and reports/gatecast-base/pretrain.json)."""
    import onnx

    from contract.card import BASE_MODEL

    path = ROOT / "models" / BASE_MODEL / "1" / "model.onnx"
    if not path.exists():
        return "Not trained yet: `make pretrain`.\n"
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    config = json.loads(props["training.pretrain_config"])
    corpus = json.loads(props["gatecast.dataset"])["corpus"]
    validation = json.loads(props["gatecast.metrics"])["validation"]
    levels = json.loads(props["gatecast.quantile_levels"])
    report_path = ROOT / "reports" / BASE_MODEL / "pretrain.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    if report and report.get("config") != config:  # a report left by another run must not describe this model
        raise SystemExit(f"{report_path} is not the report of {path}'s run (its pretraining config differs)")
    parameters = json.loads(props["gatecast.metrics"])["parameters"]
    m = config["model"]
    lines = [
        f"`{BASE_MODEL}` (`gatecast pretrain`, [training/configs/pretrain/{BASE_MODEL}.toml]"
        f"(../training/configs/pretrain/{BASE_MODEL}.toml), seed {config['seed']}): a {m['num_layers']}-layer "
        f"{m['cell'].upper()} ({m['hidden_size']} units) over patches of {m['patch_len']} steps, contexts of "
        f"{m['min_context']} to {m['max_context']} values, instance normalisation and the missing-value mask inside "
        f"the graph, a head of {len(levels)} quantiles ({levels[0]} ... {levels[-1]}, monotone by construction) for "
        f"each of {m['horizon']} steps"
        + (
            f", added to a mix of seasonal naive copies at lags {', '.join(map(str, m['lags']))} that the encoder "
            "weighs"
            + (
                f" anew for each group of horizon steps (edges at steps {', '.join(map(str, m['gate_edges']))})"
                if m.get("gate_edges")
                else ""
            )
            + (
                ", and whose state reads how closely a copy at each lag matched the context"
                if m.get("copy_features")
                else ""
            )
            if m.get("lags")
            else ""
        )
        + (
            f", and of folded seasons (each phase's mean over up to {m['folds']} seasons, from up to "
            f"{max(m.get('fold_context') or 0, m['max_context'])} values)"
            if m.get("folds")
            else ""
        )
        + f"; {parameters:,} parameters, "
        f"{path.stat().st_size / 2**20:.1f} MiB of ONNX. Pretrained for {config['steps']:,} steps of "
        f"{config['batch_size']} windows ({config.get('flip', 0):.0%} of them mirrored, x -> -x; "
        f"{config['real_share']:.0%} from real series, each drawn in proportion to its length"
        + ("" if config.get("length_power", 0.5) == 1 else f" to the power {config.get('length_power', 0.5)}")
        + ")"
        + (
            ", each horizon step's loss divided by the last value's mean error at that step"
            if config.get("step_balance")
            else ""
        )
        + (
            (
                ", each series' loss divided by its context's smallest error of a copy at one of the lags"
                if config.get("best_copy")
                else ", each series' loss divided by its context's mean step"
            )
            if config.get("naive_scaled")
            else ""
        )
        + (
            f", in {report['train_seconds'] / 60:.0f} minutes on "
            + (f"{config['threads']} CPUs" if config["threads"] > 1 else "one CPU")
            if report
            else ""
        )
        + f"; validation on held-out corpus series (step {validation.get('step', '?')}, the best kept): pinball "
        f"{validation['pinball']:.4f}, MASE {validation['mase']:.3f} against the last value's "
        f"{validation['naive_mase']:.3f}.",
        "",
        "| corpus source | series | values |",
        "|---|---|---|",
        *[f"| {s['origin']} | {s['series']:,} | {s['values']:,} |" for s in corpus["real"]],
        *[f"| synthetic: {s['what']} | {s['series']:,} | |" for s in corpus["synthetic"]],
        "",
        "Excluded, so every zero-shot figure is honest (a source that reads them, or holds 12 consecutive values of "
        "them, stops the build: `training.corpus.check_exclusions`): "
        + ", ".join(f"{e['name']} (`{e['path']}`)" for e in corpus["excluded"])
        + ".",
    ]
    if corpus.get("missing"):
        lines.append("Missing when it was built: " + ", ".join(f"{x['name']} ({x['why']})" for x in corpus["missing"]))
    return "\n".join(lines + _candidates_table()) + "\n"


def _candidates_table() -> list[str]:
    """The base models tried, scored on GIFT-Eval's validation windows (docs/benchmarks/zeroshot-validation.json)."""
    path = BENCH / "zeroshot-validation.json"
    if not path.exists():
        return []
    candidates = json.loads(path.read_text())["candidates"]
    return [
        "",
        "Which base model is committed was chosen on GIFT-Eval's validation windows, before each configuration's "
        "first test window (`python -m bench.zeroshot --validate A.onnx B.onnx`, [zeroshot-validation.json]"
        "(benchmarks/zeroshot-validation.json)); the means of several runs and the longer context were built from "
        "checkpoints without training (`python -m bench.base_variants`). Geometric mean of the ratio to seasonal "
        "naive, in the order tried:",
        "",
        "| candidate | MASE | CRPS |",
        "|---|---|---|",
        *[
            f"| {name.replace('|', chr(92) + '|')} | {c['ratio_to_seasonal_naive']['mase']:.3f} | "
            f"{c['ratio_to_seasonal_naive']['crps']:.3f} |"
            for name, c in candidates.items()
        ],
    ]


def zeroshot_section() -> str:
    """The default model zero-shot beside its peers and the published models (docs/benchmarks/zeroshot.json)."""
    path = BENCH / "zeroshot.json"
    if not path.exists():
        return "Not measured yet: `make bench-zeroshot`.\n"
    r = json.loads(path.read_text())
    agg, configs, cost = r["summary"], r["configs"], r["cost"]
    shown = [c for c in ("gatecast (default)", "gatecast auto", "fracast-0", "AutoETS", "AutoTheta") if c in agg]
    published = [
        m
        for m in ("Toto-2.0-2.5B (published)", "TiRex (published)", "Chronos-2 (published)", "TimesFM-2.5 (published)")
        if m in agg
    ]
    fx = configs.get("exchange_rate/D/30", {})
    lines = [
        f"From `python -m bench.zeroshot` (`make bench-zeroshot`, [docs/benchmarks/zeroshot.md]"
        f"(docs/benchmarks/zeroshot.md), commit {measured_at(path)}, on {machine.named(r['machine'])}): every "
        "figure is zero-shot for the default model (its corpus excludes all of this data). Geometric mean over "
        "GIFT-Eval's nine configurations of the ratio to seasonal naive, MASE / CRPS, lower is better:",
        "",
        "| " + " | ".join([*shown, *published]) + " |",
        "|" + "---|" * (len(shown) + len(published)),
        "| " + " | ".join(f"{agg[c]['mase']:.3f} / {agg[c]['crps']:.3f}" for c in [*shown, *published]) + " |",
        "",
    ]
    if fx:
        best = min(
            ("naive", "gatecast (default)", "gatecast auto", "fracast-0", "AutoETS"),
            key=lambda c: fx.get(c, {"mase": float("inf")})["mase"],
        )
        lines.append(
            f"- Exchange rates, 30 days ahead (a random walk): MASE {fx['gatecast (default)']['mase']:.3f} for the "
            f"default model, {fx['gatecast auto']['mase']:.3f} for `auto`, {fx['naive']['mase']:.3f} for the last "
            f"value; best: {best}."
        )
    own, peer = agg.get("gatecast (default)"), agg.get("fracast-0")
    if own and peer:
        behind = [k.upper() for k in ("mase", "crps") if own[k] >= peer[k]]
        lines.append(
            f"- The default model is **behind fracast-0 on {' and '.join(behind)}** ({own['mase']:.3f} / "
            f"{own['crps']:.3f} against {peer['mase']:.3f} / {peer['crps']:.3f}): the base model does not yet do "
            "what it is for; docs/benchmarks/zeroshot.md has each configuration."
            if behind
            else f"- The default model is ahead of fracast-0 on MASE and CRPS ({own['mase']:.3f} / {own['crps']:.3f} "
            f"against {peer['mase']:.3f} / {peer['crps']:.3f})."
        )
    ahead = agg.get("gatecast (default)", {}).get("ahead_of_seasonal_naive")
    if ahead is not None:
        lines.append(f"- The default model is ahead of seasonal naive on both metrics on {ahead} of the nine.")
    judged = {
        name: row["gatecast auto"]["mase"] / min(row["naive"]["mase"], row["seasonal naive"]["mase"])
        for name, row in configs.items()
        if {"gatecast auto", "naive", "seasonal naive"} <= set(row)
    }
    if judged:
        worse = [f"{name} ({ratio:.3f}x)" for name, ratio in judged.items() if ratio > 1]
        lines.append(
            f"- `auto` is no worse than the better of naive and seasonal naive (MASE) on {len(judged) - len(worse)} of "
            f"{len(judged)} configurations" + (f"; worse on {', '.join(worse)}." if worse else ".")
        )
    lines.append(
        f"- Server CPU: {cost['server_cpu_ms_per_series']:.3f} ms per series (requests of "
        f"{cost['series_per_request']} series, 48 steps, 9 quantiles)."
    )
    return "\n".join(lines) + "\n"


def _m4_line() -> str:
    """The M4 model's official scores beside the official table (from docs/benchmarks/accuracy.json)."""
    path = BENCH / "accuracy.json"
    if not path.exists():
        return ""
    m4 = json.loads(path.read_text()).get("m4")
    if not m4:
        return ""
    own, official = m4["gatecast"]["model"], m4["official"]
    named = {"Naive2": "Naive2", "sNaive": "seasonal naive", "Theta": "Theta", "118": "the M4 winner ES-RNN"}
    others = ", ".join(f"{label} {official[k]['owa']:.3f}" for k, label in named.items() if k in official)
    return (
        f"M4 Hourly, official scores (the 48 hours after each series): sMAPE {own['smape']:.3f}, MASE "
        f"{own['mase']:.3f}, **OWA {own['owa']:.3f}**, against {others} (official table, lower is better)."
    )


def serving_section() -> str:
    from bench.serving import at, best, targets

    path = BENCH / "serving.json"
    r = json.loads(path.read_text())
    raw, sweeps, m = r["raw"], r["contestants"], r["machine"]
    raw1 = raw["throughput_series_per_s"]["1"]
    lines = [
        f"Measured by `python -m bench.serving` (`make bench`) at commit {measured_at(path)} on "
        f"{machine.named(m)}, onnxruntime {m['onnxruntime']} (`{r['model']}`, one real {r['series_length']}-point "
        "ETTh1 window per request, load from wrk on the same cores, every contestant in the same run; peers in "
        "their own virtualenvs with their native batching). The ratios are host-dependent: what onnxruntime gains "
        "from a batch, and so what batching buys a server, changes with the CPU's vector instructions and cache; "
        "`make bench` measures them on your host:",
        "",
        "| server | median latency, 1 connection | req/s at 16 connections | best req/s | best × raw onnxruntime |",
        "|---|---|---|---|---|",
        f"| raw onnxruntime `session.run` (in-process, every core) | {raw['latency']['p50_ms']:.2f} ms | – | "
        f"{raw1:,.0f} series/s | 1.00 |",
    ]
    for name, points in sweeps.items():
        top = best(points)
        c16 = next((p for p in points if p["connections"] == 16), None)
        label = "**gatecast** (`gatecast serve`, defaults)" if name == "gatecast" else name
        at16 = f"{c16['rps']:,.0f}" if c16 else "–"
        lines.append(
            f"| {label} | {at(points, 1)['p50_ms']:.2f} ms | {at16} | "
            f"{top['rps']:,.0f} ({top['connections']} connections) | {top['rps'] / raw1:.2f} |"
        )
    met = targets(r)
    lines += [
        "",
        f"The serving-speed targets ({sum(1 for *_, ok in met if ok)} of {len(met)} met in this run; "
        "[docs/benchmarks/serving.md](docs/benchmarks/serving.md) has every point):",
        "",
    ]
    lines += [f"- {'met' if ok else '**not met**'}: {t}: {measured}." for t, measured, ok in met]
    return "\n".join(lines) + "\n"


def scaling_section() -> str:
    from bench.serving import best

    r = json.loads((BENCH / "serving.json").read_text())
    top = best(r["contestants"]["gatecast"])
    batch32 = r["gatecast_extra"]["batch32"]
    return (
        f"How much one replica gave (docs/benchmarks/serving.md, on {machine.named(r['machine'])}, `{r['model']}`, "
        f"{r['series_length']}-point series): about **{top['rps']:,.0f} forecasts/s** with one series per request "
        f"({top['connections']} connections, p50 {top['p50_ms']:.1f} ms) and about "
        f"**{batch32['series_per_s']:,.0f} forecasts/s** with 32 series per request. Size the replica count from "
        "your peak forecasts per second with headroom, and measure your own models with `make bench`.\n"
    )


def accuracy_section() -> str:
    from bench.accuracy import DLINEAR, PUBLISHED_HORIZONS, verdicts

    path = BENCH / "accuracy.json"
    r = json.loads(path.read_text())
    horizons = [str(h) for h in PUBLISHED_HORIZONS]
    lines = [
        f"From `python -m bench.accuracy` (docs/benchmarks/accuracy.md, commit {measured_at(path)}): one GRU per "
        "horizon, input 336"
        + "".join(
            f" ({name.upper()}: read in segments of {changes['patch_len']} steps, chosen on validation)"
            for name, changes in r.get("formulations", {}).items()
            if changes.get("patch_len", 1) > 1
        )
        + "; MSE on the z-scored scale, univariate OT, beside the published DLinear-paper table "
        "(../shared/data/BENCHMARKS.md):",
        "",
        "| | " + " | ".join(f"H {h}" for h in horizons) + " |",
        "|---|" + "---|" * len(horizons),
    ]
    for name in ("etth1", "ettm1"):
        if name not in r:
            continue
        ours = [f"{r[name][h]['scores']['model']['mse_z']:.3f}" if h in r[name] else "–" for h in horizons]
        lines.append(f"| {name.upper()}, gatecast GRU | " + " | ".join(ours) + " |")
        published = [" / ".join(f"{row[0]:.3f}" for row in DLINEAR[name][int(h)][:3]) for h in horizons]
        lines.append(f"| {name.upper()}, DLinear / NLinear / PatchTST/42 | " + " | ".join(published) + " |")
    lines += ["", *[f"- {_sentence(v)}." for v in verdicts(r)]]
    return "\n".join(lines) + "\n"


def gifteval_section() -> str:
    """GIFT-Eval: gatecast beside the published zero-shot models (docs/benchmarks/gifteval.json) and its own base model
    zero-shot (docs/benchmarks/zeroshot.json)."""
    from bench.giftprotocol import PUBLISHED, geometric_ratio

    path = BENCH / "gifteval.json"
    if not path.exists():
        return "Not measured yet: `make bench-gifteval`.\n"
    r = json.loads(path.read_text())
    shown = ("Chronos-2", "TiRex", "TimesFM-2.5", "PatchTST")
    agg = r["summary"]
    lines = [
        f"From `python -m bench.gifteval` (`make bench-gifteval`, [docs/benchmarks/gifteval.md]"
        f"(docs/benchmarks/gifteval.md), commit {measured_at(path)}): MASE / CRPS, lower is better. gatecast's "
        "models (chosen per resolution on validation windows) saw only the data before the test windows: the base "
        "model **fine-tuned on the dataset** (at 15 minutes on that resolution, hourly and daily on all four of "
        "ETT's), the base model itself weekly, a GRU "
        "trained on M4 Hourly's training part; all scored through `POST /forecast`; Chronos-2, TiRex and "
        "TimesFM-2.5 are their published **zero-shot** figures, PatchTST "
        "the published figure of a model trained per dataset. The model column names the gatecast model that "
        "answers; `gatecast-base zero-shot` is the default model on the same windows, never trained on this data "
        "([zeroshot.md](docs/benchmarks/zeroshot.md)).",
        "",
        "| config | model | gatecast | gatecast-base zero-shot | " + " | ".join(shown) + " | seasonal naive |",
        "|---|---|---|---|" + "---|" * (len(shown) + 1),
    ]
    zero_path = BENCH / "zeroshot.json"
    zero = json.loads(zero_path.read_text())["configs"] if zero_path.exists() else {}
    base = {n: z["gatecast (default)"] for n, z in zero.items() if "gatecast (default)" in z and n in r["configs"]}
    for name, c in r["configs"].items():
        pub = PUBLISHED[name]
        cells = " | ".join(f"{pub[m][0]:.3f} / {pub[m][1]:.3f}" for m in shown)
        naive = pub["Seasonal naive"]
        b = f"{base[name]['mase']:.3f} / {base[name]['crps']:.3f}" if name in base else "–"
        lines.append(
            f"| {name} | `{c['model']}` | {c['mase']:.3f} / {c['crps']:.3f} | {b} | {cells} | "
            f"{naive[0]:.3f} / {naive[1]:.3f} |"
        )
    if len(base) == len(r["configs"]):
        naive_pub = {k: {n: PUBLISHED[n]["Seasonal naive"][i] for n in base} for i, k in enumerate(("mase", "crps"))}
        base_agg = {k: geometric_ratio({n: base[n][k] for n in base}, naive_pub[k]) for k in naive_pub}
        base_cell = f"{base_agg['mase']:.3f} / {base_agg['crps']:.3f}"
    else:
        base_cell = "–"
    lines.append(
        f"| **geometric mean, ratio to seasonal naive** ({len(r['configs'])} configurations) | | "
        f"**{agg['gatecast']['mase']:.3f} / {agg['gatecast']['crps']:.3f}** | {base_cell} | "
        + " | ".join(f"{agg[m]['mase']:.3f} / {agg[m]['crps']:.3f}" for m in shown)
        + " | 1.000 / 1.000 |"
    )
    lines += ["", *_gifteval_verdicts(r["configs"])]
    return "\n".join(lines) + "\n"


def _gifteval_verdicts(configs: dict[str, Any]) -> list[str]:
    """Where gatecast wins and loses: against seasonal naive and PatchTST on both metrics, and the best of the
    zero-shot models, with the margin of each loss."""
    from bench.giftprotocol import PUBLISHED

    out = []
    for rival in ("Seasonal naive", "PatchTST"):
        both = [
            n for n, c in configs.items() if c["mase"] < PUBLISHED[n][rival][0] and c["crps"] < PUBLISHED[n][rival][1]
        ]
        lost = [f"{n} ({_losses(c, PUBLISHED[n][rival])})" for n, c in configs.items() if n not in both]
        label = "seasonal naive" if rival == "Seasonal naive" else rival
        line = f"- Ahead of {label} on both MASE and CRPS: {len(both)} of {len(configs)}"
        out.append(line + (f"; behind on {_join(lost)}." if lost else "."))
    best = {
        n: min((PUBLISHED[n][m] for m in ("Chronos-2", "TiRex", "TimesFM-2.5")), key=lambda p: p[0]) for n in configs
    }
    ahead = [n for n, c in configs.items() if c["mase"] <= best[n][0]]
    out.append(
        f"- Level with or ahead of the best zero-shot model's MASE on {len(ahead)} of {len(configs)}"
        + (f" ({_join(ahead)})." if ahead else ".")
    )
    return out


def _losses(c: dict[str, Any], published: tuple[float, float]) -> str:
    """'MASE +3.1%, CRPS +8.0%': the metrics on which gatecast is behind, by how much."""
    parts = [
        f"{label} {c[key] / ref - 1:+.1%}"
        for label, key, ref in (("MASE", "mase", published[0]), ("CRPS", "crps", published[1]))
        if c[key] >= ref
    ]
    return ", ".join(parts)


def _sentence(verdict: str) -> str:
    """Capitalised, unless it starts with a model's name (vix-gru, not Vix-gru)."""
    return verdict if "-" in verdict.split(":")[0] else verdict[0].upper() + verdict[1:]


def settings_section() -> str:
    """Every server setting, from app/settings.py: its environment variable, default and description."""
    from app.settings import Settings

    lines = ["| setting | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "empty" if default in ([], None) else f"`{default}`"
        lines.append(f"| `GATECAST_{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(lines) + "\n"


def config_section() -> str:
    """Every key a training config can set, from training/config.py."""
    from training.config import keys_table

    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{key}` | {default} | {text} |" for key, default, text in keys_table()]
    return "\n".join(lines) + "\n"


def protocols_section() -> str:
    """gRPC beside HTTP and cross-validation throughput, from docs/benchmarks/protocols.json."""
    path = BENCH / "protocols.json"
    r = json.loads(path.read_text())
    lines = [
        f"Measured by `python -m bench.protocols` at commit {measured_at(path)} on {machine.named(r['machine'])}, "
        f"`gatecast serve` with its defaults, `{r['model']}`, {r['series_length']}-point series, the Python clients "
        "on the same cores ([docs/benchmarks/protocols.md](docs/benchmarks/protocols.md)):",
        "",
        "| one call at a time | p50, 1 series | p99, 1 series | p50, 32 series |",
        "|---|---|---|---|",
    ]
    for name, one in r["latency"]["1"].items():
        many = r["latency"]["32"][name]
        lines.append(f"| {name} | {one['p50_ms']:.2f} ms | {one['p99_ms']:.2f} ms | {many['p50_ms']:.2f} ms |")
    lines += ["", "| 16 calls in flight | series/s, 1 series per call | series/s, 32 series per call |"]
    lines.append("|---|---|---|")
    for name, one in r["throughput"]["1"].items():
        lines.append(f"| {name} | {one:,.0f} | {r['throughput']['32'][name]:,.0f} |")
    lines.append("")
    for c in r["cross_validation"]:
        lines.append(
            f"- `POST /cross_validation`, {c['series']} series x {c['n_windows']} windows: "
            f"**{c['cross_validation_windows_per_s']:,.0f} windows/s**, against "
            f"{c['forecast_calls_windows_per_s']:,.0f} windows/s as one `/forecast` call per window."
        )
    return "\n".join(lines) + "\n"


def streams_section() -> str:
    """Live feeds: appends against /forecast, memory per stream, ETTh1 replayed, from docs/benchmarks/streams.json."""
    from bench.streams import appends_table  # its imports (the test helpers) only when this block renders

    path = BENCH / "streams.json"
    r = json.loads(path.read_text())
    rep = r["replay"]
    lines = [
        f"Measured by `python -m bench.streams` at commit {measured_at(path)} on {machine.named(r['machine'])}, "
        f"`gatecast serve` with its defaults, `{r['model']}`, one-reading appends to {r['streams']:,} streams "
        f"(random stream each, {r['connections']} connections) against `/forecast` carrying the whole window "
        "([docs/benchmarks/streams.md](docs/benchmarks/streams.md)):",
        "",
    ]
    lines += appends_table(r)
    cov = rep["coverage"]
    lines += [
        "",
        f"ETTh1's test split replayed as a feed ({rep['readings']:,} readings): the live counters gave coverage "
        f"**{cov['80']:.1%} / {cov['95']:.1%} / {cov['99']:.1%}** at 80 / 95 / 99% over every step of the horizon, "
        f"MASE {rep['mase']:.3f}, and flagged {rep['anomaly_rate']:.2%} of readings at 99%.",
    ]
    return "\n".join(lines) + "\n"


def testsuite_section() -> str:
    """How long the suites take beside busy processes, from docs/benchmarks/testsuite.json."""
    path = BENCH / "testsuite.json"
    r = json.loads(path.read_text())
    runs: dict[str, list[dict[str, Any]]] = {}
    for run in r["runs"]:
        runs.setdefault(run["suite"], []).append(run)
    described = {"quick": "`make test-quick` (no live servers)", "full": "`make test` (everything)"}
    parts = []
    for suite, done in runs.items():
        seconds = ", ".join(f"{run['seconds'] / 60:.1f}" for run in done)
        passed = [run["counts"].get("passed", 0) for run in done]
        ok = sum(1 for run in done if run["returncode"] == 0)
        failed = sorted({f.split("::")[-1].split(" ")[0] for run in done for f in run["failures"]})
        named = f" (failed: {', '.join(f'`{name}`' for name in failed)})" if failed else ""
        parts.append(
            f"- {described[suite]}: {max(passed)} tests in {seconds} min; {ok} of {len(done)} runs passed{named}"
        )
    loads = ", ".join(f"{run['load_1min_at_end']:.1f}" for run in r["runs"])
    tested = f" of commit {r['commit']}" if r.get("commit") else ""
    busy = count(r["busy"], "CPU-bound process", "CPU-bound processes")
    return (
        f"Measured by `python -m bench.testsuite` (`make bench-tests`){tested}, committed at {measured_at(path)}, on "
        f"{machine.named(r['machine'])}, each suite with {busy} beside it (load average "
        f"{loads} at the ends), {count(r['rounds'], 'round')}:\n\n" + "\n".join(parts) + "\n"
    )


def training_section() -> str:
    """What training through the service costs and buys, from docs/benchmarks/training.json."""
    path = BENCH / "training.json"
    r = json.loads(path.read_text())
    where = f"committed at {measured_at(path)}, on {machine.named(r['machine'])}"
    lines = [f"From `python -m bench.training` ({where}):", ""]
    f = r.get("finetune")
    if f:
        best = min(f["rows"], key=lambda row: row["mase"])
        fastest = min(f["rows"], key=lambda row: row["seconds"])
        slowest = max(f["rows"], key=lambda row: row["seconds"])
        worse = sum(1 for row in f["rows"] if row["mase"] > f["base_mase"])
        lines.append(
            f"- **Fine-tuning** `{f['base_model']}` on 60 days of ETTh1 it never trained on: "
            f"{fastest['seconds']:.1f} s ({fastest['steps']} steps, depth {fastest['depth']}) to "
            f"{slowest['seconds']:.1f} s ({slowest['steps']} "
            f"steps, depth {slowest['depth']}) from `finetune()` to its answer; MASE on the {f['windows']} days after "
            f"them {f['base_mase']:.3f} for the base model, {best['mase']:.3f} at best ({best['steps']} steps, depth "
            f"{best['depth']}: {_points(best['mase'] / f['base_mase'] - 1)}%); {worse} of {len(f['rows'])} settings "
            "tried did worse than the base model (the table has each)."
        )
    j = r.get("jobs")
    if j:
        lines.append(
            f"- **A training job** over HTTP took {j['job_median']:.1f} s where `gatecast pipeline` took "
            f"{j['cli_median']:.1f} s on the same config (medians of {j['rounds']})."
        )
    t = r.get("tune")
    if t:
        lines.append(
            f"- **`gatecast tune`**: {t['trials_per_hour']:.0f} trials per hour on {t['cluster_cpus']:g} CPUs (a small "
            "ETTh1 config, at most 4 epochs a trial)."
        )
    s = r.get("scaleout")
    if s:
        lines.append(
            f"- **Two Ray nodes** (a head and a worker, 1 CPU each, on loopback): {s['speedup']:.2f}x the trials per "
            "hour of the head alone."
        )
    return "\n".join(lines) + "\n"


def tunespace_section() -> str:
    """The keys `gatecast tune` searches, from training.tune.SEARCH_SPACE."""
    from training.tune import space_table

    rows = "\n".join(f"| `{key}` | {tried} |" for key, tried in space_table())
    return "| key | tried |\n|---|---|\n" + rows + "\n"


SECTIONS: dict[str, Callable[[], str]] = {
    "training": training_section,
    "tunespace": tunespace_section,
    "testsuite": testsuite_section,
    "protocols": protocols_section,
    "streams": streams_section,
    "settings": settings_section,
    "config": config_section,
    "models": models_section,
    "committedvalidation": committedvalidation_section,
    "serving": serving_section,
    "scaling": scaling_section,
    "accuracy": accuracy_section,
    "gifteval": gifteval_section,
    "basemodel": basemodel_section,
    "zeroshot": zeroshot_section,
}


def render(text: str, page: Path = README) -> str:
    """The page with every generated block rendered anew from its sources; links written from the repository's
    root (docs/...) are made relative to the page."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in SECTIONS:
            raise KeyError(f"{page.name} block {name!r} has no renderer; known: {sorted(SECTIONS)}")
        block = SECTIONS[name]()
        if page.parent != ROOT:
            block = block.replace("](docs/", "](")
        return match.group(1) + block + match.group(4)

    return BLOCK.sub(fill, text)


def _points(fraction: float) -> str:
    """0.0061 -> '+0.6'; never '-0.0'."""
    return f"{round(fraction * 100, 1) + 0.0:+.1f}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md is not what its sources give")
    args = parser.parse_args()
    stale = []
    for page in PAGES:
        current = page.read_text()
        rendered = render(current, page)
        if rendered == current:
            continue
        stale.append(page.relative_to(ROOT))
        if not args.check:
            page.write_text(rendered)
            print(f"-> {page}")
    if args.check:
        if stale:
            sys.exit(f"{', '.join(map(str, stale))} differ from their sources: run `python -m bench.readme`")
        print("the README and docs pages match their sources")


if __name__ == "__main__":
    main()
