"""The default model zero-shot: GIFT-Eval's nine configurations and the exchange rates at 30 days, answered through
POST /forecast, beside fracast-0, AutoETS, AutoTheta, naive and seasonal naive in one run, and the published
zero-shot figures (Chronos-2, TiRex, TimesFM-2.5, Toto).

  1. The protocol checks itself (bench.giftprotocol): seasonal naive reproduces the published MASE of the nine.
  2. `gatecast serve` (one worker) serves the committed models. Every test window of a configuration is one POST
     /forecast with all its series, the last `context` values each, quantiles 0.1 ... 0.9 (and 0.025, 0.975 for the
     95% coverage): once with no model named (the default, the base model), once with "model": "auto" (the series'
     freq sent so that seasonal naive is a candidate, and 3 horizons more history for its backtest).
  3. fracast-0 runs in its own virtualenv (.bench/fracast: it needs torch), on the same windows; AutoETS and
     AutoTheta (statsforecast) in this process, on the last STAT_CONTEXT values of each window.
  4. The server's CPU per series: 32-series requests of 48 steps with 9 quantiles, from M4 Hourly's windows.

None of these series is in the base model's corpus (training.corpus.EXCLUDED, checked by its build): every figure
here is zero-shot for it, and for fracast-0 and the published foundation models by their authors' account.

  python -m bench.zeroshot [--configs ...] [--skip-stats] [--out docs/benchmarks]     (make bench-zeroshot)
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
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

from bench import giftprotocol as protocol
from bench.gifteval import process_cpu
from contract.card import BASE_MODEL
from harness import machine
from training import data as datasets

ROOT = Path(__file__).resolve().parent.parent
FX = protocol.Config("exchange_rate/D/30", "FX", 30, 1)
ASKED = sorted({*protocol.QUANTILES, 0.025, 0.975})
STAT_CONTEXT = 1000  # values AutoETS and AutoTheta fit on per window (the whole history of 15T would take hours)
FRACAST_VENV = ROOT / ".bench" / "fracast"
FRACAST_PINS = ROOT / "bench" / "peers" / "fracast.txt"
# Toto-2.0-2.5B's geometric means over the nine, as issue 44 gives them (not in ../shared/GIFT-EVAL.md's table).
TOTO2 = {"mase": 0.802, "crps": 0.659}
ZERO_SHOT_SHOWN = ("Chronos-2", "TiRex", "TimesFM-2.5", "Toto-1.0")
Forecasts = list[list[dict[float, np.ndarray]]]


def fx_task(folder: Path) -> protocol.Task:
    """The 8 daily exchange rates (no dates published: a daily axis from 1990-01-01), windows as GIFT-Eval cuts
    them: back to back, ending at the last value."""
    frame = pd.read_csv(folder / "exchange_rate.txt.gz", header=None)
    values = [frame[c].to_numpy(np.float64) for c in frame.columns]
    index = pd.date_range("1990-01-01", periods=len(frame), freq="D")
    data = protocol.Data("FX", "D", [f"fx{c}" for c in frame.columns], values, index)
    origins = []
    for v in values:
        n = protocol.windows_for(len(v), FX.horizon)
        origins.append([len(v) - (n - k) * FX.horizon for k in range(n)])
    return protocol.Task(FX, data, values, origins)


# --- gatecast through the server ----------------------------------------------------------------------------


def served(client: httpx.Client, task: protocol.Task, model: str | None, context: int) -> Forecasts:
    """Each window as one POST /forecast of all the task's series; "auto" also sends each series' freq and start."""
    h = task.config.horizon
    freq = task.data.freq or "h"
    per_series: Forecasts = [[] for _ in task.values]
    for k in range(len(task.origins[0])):
        series = []
        for i, (values, origins) in enumerate(zip(task.values, task.origins, strict=True)):
            sent = values[: origins[k]][-context:]
            item: dict[str, Any] = {"id": str(i), "values": sent.tolist()}
            if model == "auto":
                first = origins[k] - len(sent)
                start = task.data.index[first] if task.data.index is not None else pd.Timestamp("2000-01-01")
                item.update(start=start.isoformat(), freq=freq)
            series.append(item)
        body: dict[str, Any] = {"horizon": h, "quantiles": ASKED, "series": series}
        if model is not None:
            body["model"] = model
        answer = client.post("/forecast", json=body)
        if answer.status_code != 200:
            raise RuntimeError(f"{task.config.name} window {k}: {answer.status_code} {answer.text[:300]}")
        for i, forecast in enumerate(answer.json()["forecasts"]):
            per_series[i].append({float(q): np.asarray(v, dtype=np.float64) for q, v in forecast["quantiles"].items()})
            if model == "auto":
                per_series[i][-1]["chosen"] = forecast["model"]["name"]  # type: ignore[assignment]
    return per_series


def chosen_counts(forecasts: Forecasts) -> dict[str, int]:
    counts: dict[str, int] = {}
    for per in forecasts:
        for window in per:
            name = str(window.pop("chosen", "?"))  # type: ignore[call-overload]
            counts[name] = counts.get(name, 0) + 1
    return counts


def serving_cost(client: httpx.Client, pid: int, task: protocol.Task, context: int, rounds: int = 3) -> dict[str, Any]:
    """Server CPU per series for requests of 32 series, 48 steps, 9 quantiles (the default model)."""
    series = [v[: o[0]][-context:].tolist() for v, o in zip(task.values, task.origins, strict=True)]
    requests = [series[i : i + 32] for i in range(0, len(series), 32)]
    body = {"horizon": 48, "quantiles": list(protocol.QUANTILES)}
    for chunk in requests[:2]:  # warm
        client.post("/forecast", json={**body, "series": [{"id": str(j), "values": s} for j, s in enumerate(chunk)]})
    cpu0 = process_cpu(pid)
    t0 = time.perf_counter()
    n = 0
    for _ in range(rounds):
        for chunk in requests:
            r = client.post(
                "/forecast", json={**body, "series": [{"id": str(j), "values": s} for j, s in enumerate(chunk)]}
            )
            r.raise_for_status()
            n += len(chunk)
    return {
        "server_cpu_ms_per_series": 1000 * (process_cpu(pid) - cpu0) / n,
        "wall_ms_per_series": 1000 * (time.perf_counter() - t0) / n,
        "series": n,
        "series_per_request": 32,
        "context": context,
    }


def remeasure_cost(task: protocol.Task, models: Path) -> dict[str, Any]:
    """The serving cost alone, with the base model alone in a fresh server: for a machine that was busy while the
    whole run measured it (the forecasts and scores do not depend on load; CPU time per series does, a little)."""
    with base_server(models) as (client, pid, _, context):
        cost = measured_cost(client, pid, task, context)
    return {**cost, "remeasured": time.strftime("%Y-%m-%d %H:%M")}


@contextmanager
def base_server(models: Path) -> Iterator[tuple[httpx.Client, int, str, int]]:
    """A fresh one-worker server with the base model alone: its client, its pid, the model's name and the context
    it was trained on. Alone, so that `auto` chooses between it and the naive forecasts and stays zero-shot (the
    committed per-dataset models trained on this data would be its candidates otherwise). A copy: the registry
    refuses files that resolve outside its repository."""
    from harness.live import running_server

    with tempfile.TemporaryDirectory(prefix="zeroshot-") as tmp:
        repo = Path(tmp) / "models"
        shutil.copytree(models / BASE_MODEL, repo / BASE_MODEL)
        with running_server(repo, workers=1) as (url, proc), httpx.Client(base_url=url, timeout=900) as client:
            base = str(client.get("/models").json()["default"])
            context = int(client.get(f"/models/{base}").json()["versions"][-1]["input_window"]["trained"])
            yield client, proc.pid, base, context


def measured_cost(client: httpx.Client, pid: int, task: protocol.Task, context: int) -> dict[str, Any]:
    cost = serving_cost(client, pid, task, context)
    print(f"  server CPU {cost['server_cpu_ms_per_series']:.3f} ms per series (32 a request, 48 steps)")
    return cost


# --- peers ---------------------------------------------------------------------------------------------------


def fracast(task: protocol.Task, context: int) -> Forecasts:
    """fracast-0 in its own virtualenv (bench/peers/fracast_forecast.py): the same windows, quantiles back."""
    python = _fracast_python()
    h = task.config.horizon
    windows = [(i, k) for i, o in enumerate(task.origins) for k in range(len(o))]
    with tempfile.TemporaryDirectory(prefix="fracast-") as tmp:
        inputs = Path(tmp) / "in.npz"
        contexts = [task.values[i][: task.origins[i][k]][-context:] for i, k in windows]
        np.savez(inputs, *contexts, horizon=h, quantiles=np.asarray(ASKED))
        out = Path(tmp) / "out.npy"
        subprocess.run(
            [str(python), str(ROOT / "bench" / "peers" / "fracast_forecast.py"), str(inputs), str(out)], check=True
        )
        q = np.load(out)  # (W, H, Q)
    per_series: Forecasts = [[] for _ in task.values]
    for row, (i, _) in enumerate(windows):
        per_series[i].append(
            {p: q[row, :, j].astype(np.float64) for j, p in enumerate(ASKED) if np.isfinite(q[row, 0, j])}
        )
    return per_series


def _fracast_python() -> Path:
    python = FRACAST_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FRACAST_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(FRACAST_PINS)], check=True)
    return python


def statistical(task: protocol.Task) -> dict[str, Forecasts]:
    """AutoETS and AutoTheta (statsforecast) on each window's last STAT_CONTEXT values, with the season of the
    configuration; quantiles from their prediction intervals."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta

    h, m = task.config.horizon, task.config.season
    levels = sorted({round(abs(2 * q - 1) * 100) for q in ASKED if q != 0.5})
    rows = []
    for i, (values, origins) in enumerate(zip(task.values, task.origins, strict=True)):
        for k, origin in enumerate(origins):
            y = values[:origin][-STAT_CONTEXT:]
            rows.append(pd.DataFrame({"unique_id": f"{i}/{k}", "ds": np.arange(len(y)), "y": y}))
    frame = pd.concat(rows, ignore_index=True)
    sf = StatsForecast(models=[AutoETS(season_length=m), AutoTheta(season_length=m)], freq=1, n_jobs=2)
    result = sf.forecast(df=frame, h=h, level=levels).reset_index()
    out: dict[str, Forecasts] = {}
    for name in ("AutoETS", "AutoTheta"):
        per_series: Forecasts = [[{} for _ in o] for o in task.origins]
        for uid, group in result.groupby("unique_id", sort=False):
            i, k = (int(x) for x in str(uid).split("/"))
            q: dict[float, np.ndarray] = {0.5: group[name].to_numpy(np.float64)}
            for p in ASKED:
                if p == 0.5:
                    continue
                level = round(abs(2 * p - 1) * 100)
                side = "lo" if p < 0.5 else "hi"
                q[p] = group[f"{name}-{side}-{level}"].to_numpy(np.float64)
            per_series[i][k] = q
        out[name] = per_series
    return out


def naive(task: protocol.Task) -> Forecasts:
    h = task.config.horizon
    return [
        [{0.5: np.full(h, v[o - 1])} for o in origins] for v, origins in zip(task.values, task.origins, strict=True)
    ]


# --- the run -------------------------------------------------------------------------------------------------


def run(tasks: dict[str, protocol.Task], models: Path, skip_stats: bool) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {name: {} for name in tasks}

    def record(name: str, contender: str, forecasts: Forecasts, seconds: float) -> None:
        s = protocol.score(tasks[name], forecasts)
        results[name][contender] = {
            "mase": s.mase,
            "crps": s.crps,
            "nd": s.nd,
            "coverage": {str(k): v for k, v in s.coverage.items()},
            "seconds": seconds,
        }
        print(f"  {name:20s} {contender:16s} MASE {s.mase:.3f}  CRPS {s.crps:.3f}  ({seconds:.1f} s)", flush=True)

    with base_server(models) as (client, pid, base, context):
        for name, task in tasks.items():
            t0 = time.perf_counter()
            record(name, "gatecast (default)", served(client, task, None, context), time.perf_counter() - t0)
            t0 = time.perf_counter()
            auto = served(client, task, "auto", context + 3 * task.config.horizon)
            counts = chosen_counts(auto)
            record(name, "gatecast auto", auto, time.perf_counter() - t0)
            results[name]["gatecast auto"]["chosen"] = counts
        cost = measured_cost(client, pid, tasks.get("m4_hourly/H/short") or next(iter(tasks.values())), context)
    for name, task in tasks.items():
        t0 = time.perf_counter()
        record(name, "fracast-0", fracast(task, 2048), time.perf_counter() - t0)
        if not skip_stats:
            t0 = time.perf_counter()
            stats = statistical(task)
            seconds = (time.perf_counter() - t0) / 2
            for contender, forecasts in stats.items():
                record(name, contender, forecasts, seconds)
        record(name, "naive", naive(task), 0.0)
        record(name, "seasonal naive", protocol.seasonal_naive(task), 0.0)
    return {"configs": results, "cost": cost, "base_model": base, "context": context}


def validation_tasks(tasks: dict[str, protocol.Task]) -> dict[str, protocol.Task]:
    """The nine's windows moved before their first test window (M4 Hourly: the last 48 values of each training part):
    where a base model's candidates are compared, never on the test windows."""
    out = {}
    for name, task in tasks.items():
        if name not in protocol.PUBLISHED:
            continue
        if task.data.resolution == "M4H":
            values = [v[: o[0]] for v, o in zip(task.values, task.origins, strict=True)]
            h = task.config.horizon
            out[name] = protocol.Task(task.config, task.data, values, [[len(v) - h] for v in values])
        else:
            out[name] = protocol.validation_task(task, task.first_origin)
    return out


def validate(paths: list[Path], tasks: dict[str, protocol.Task]) -> dict[str, Any]:
    """Each candidate ONNX file on the validation windows, in-process: MASE and CRPS per configuration, and their
    geometric mean ratio to seasonal naive on the same windows."""
    import onnxruntime as ort

    from contract.card import ModelCard

    found: dict[str, Any] = {}
    naive = {n: protocol.score(t, protocol.seasonal_naive(t)) for n, t in tasks.items()}
    for path in paths:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        card = ModelCard.from_props(dict(session.get_modelmeta().custom_metadata_map))
        levels = card.quantile_levels
        asked = [p for p in (*protocol.QUANTILES, 0.025, 0.975) if p in levels]  # the 95% interval where it has one
        per: dict[str, Any] = {}
        for name, task in tasks.items():
            h = task.config.horizon
            forecasts: Forecasts = []
            for values, origins in zip(task.values, task.origins, strict=True):
                rows = []
                for o in origins:
                    x = values[:o][-card.trained_window :].astype(np.float32)[None]
                    q = session.run(["quantiles"], {"values": x})[0][0, :h]
                    rows.append({p: q[:, levels.index(p)].astype(np.float64) for p in asked})
                forecasts.append(rows)
            s = protocol.score(task, forecasts)
            per[name] = {"mase": s.mase, "crps": s.crps, "coverage": {str(k): v for k, v in s.coverage.items()}}
        ratio = {
            k: protocol.geometric_ratio({n: per[n][k] for n in per}, {n: getattr(naive[n], k) for n in per})
            for k in ("mase", "crps")
        }
        found[str(path)] = {"configs": per, "ratio_to_seasonal_naive": ratio}
        print(f"  validation {path}: MASE {ratio['mase']:.3f}  CRPS {ratio['crps']:.3f} (/ seasonal naive)", flush=True)
    return found


MARGINS = (0.0, 0.05, 0.1, 0.2, 0.3)
# app.auto.naive_pick's rules, and "blend": "backtest" with app.auto.blend_partner's averaging
NAIVE_RULES = ("backtest", "acf", "both", "blend")


def choose_auto_margin(path: Path, tasks: dict[str, protocol.Task]) -> dict[str, Any]:
    """`auto`'s rule replayed in-process on validation windows (app.auto: the same backtest origins, MASE and choice)
    with the base model `path` as the one model candidate, for each rule of choosing between the naive forecasts
    and each margin: MASE and CRPS per configuration, and the configurations where auto is worse than the better of
    naive and seasonal naive."""
    from statistics import NormalDist

    import onnxruntime as ort

    from app import auto
    from app.forecast_jobs import SeriesInput

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    levels = [float(q) for q in json.loads(session.get_modelmeta().custom_metadata_map["gatecast.quantile_levels"])]
    context = int(json.loads(session.get_modelmeta().custom_metadata_map["gatecast.input_window"])["trained"])

    def base(history: np.ndarray) -> np.ndarray:
        return session.run(["quantiles"], {"values": history[-context:].astype(np.float32)[None]})[0][0]

    normal = NormalDist()
    out: dict[str, Any] = {"rules": {}}
    variants = [(r, m) for r in NAIVE_RULES for m in MARGINS]
    per_margin: dict[tuple[str, float], dict[str, Any]] = {v: {} for v in variants}
    for name, task in tasks.items():
        h = task.config.horizon
        freq = task.data.freq or "h"
        chosen: dict[tuple[str, float], Forecasts] = {v: [] for v in variants}
        for values, origins in zip(task.values, task.origins, strict=True):
            rows: dict[tuple[str, float], list[dict[float, np.ndarray]]] = {v: [] for v in variants}
            for o in origins:
                item = auto.prepare_series(0, SeriesInput("s", values[:o], freq=freq), h)
                err: dict[str, float] = {}
                if len(item.origins):
                    err[auto.NAIVE] = auto.naive_mase(item, h, 1)
                    if item.season > 1 and item.origins[0] > item.season:
                        err[auto.SEASONAL] = auto.naive_mase(item, h, item.season)
                    total = 0.0
                    for b in item.origins.tolist():
                        actual = values[b : b + h]
                        total += float(np.abs(base(values[:b])[: len(actual), levels.index(0.5)] - actual).mean())
                    err[BASE_MODEL] = total / item.scale / len(item.origins)
                head = base(values[:o])[:h]
                picks = {r: auto.naive_pick(item, h, "backtest" if r == "blend" else r) for r in NAIVE_RULES}
                for r, m in variants:
                    pick = auto.choose(err, m, picks[r]) if err else BASE_MODEL
                    if r == "blend" and err and auto.blend_partner(err, pick) == BASE_MODEL:
                        lag = item.season if pick == auto.SEASONAL else 1
                        mean, spread = auto.naive_forecast(values[:o], h, lag)
                        rows[r, m].append(
                            {
                                q: 0.5 * (head[:, levels.index(q)] + mean + normal.inv_cdf(q) * spread)
                                for q in protocol.QUANTILES
                            }
                        )
                    elif pick == BASE_MODEL:
                        rows[r, m].append({q: head[:, levels.index(q)].astype(np.float64) for q in protocol.QUANTILES})
                    else:
                        lag = item.season if pick == auto.SEASONAL else 1
                        mean, spread = auto.naive_forecast(values[:o], h, lag)
                        rows[r, m].append({q: mean + normal.inv_cdf(q) * spread for q in protocol.QUANTILES})
            for v in variants:
                chosen[v].append(rows[v])
        best_naive = min(
            protocol.score(task, naive(task)).mase, protocol.score(task, protocol.seasonal_naive(task)).mase
        )
        for v in variants:
            sc = protocol.score(task, chosen[v])
            per_margin[v][name] = {"mase": sc.mase, "crps": sc.crps, "best_naive_mase": best_naive}
    for (r, m), per in per_margin.items():
        worse = [n for n, r in per.items() if r["mase"] > r["best_naive_mase"]]
        nine = [n for n in per if n in protocol.PUBLISHED]
        sn = {n: protocol.score(tasks[n], protocol.seasonal_naive(tasks[n])) for n in nine}
        ratio = {
            k: protocol.geometric_ratio({n: per[n][k] for n in nine}, {n: getattr(sn[n], k) for n in nine})
            for k in ("mase", "crps")
        }
        worst = max(r["mase"] / r["best_naive_mase"] for r in per.values())
        out["rules"].setdefault(r, {})[str(m)] = {
            "configs": per,
            "worse_than_best_naive": worse,
            "worst_ratio_to_best_naive": worst,
            "ratio_to_seasonal_naive": ratio,
        }
        print(
            f"  {r:8s} margin {m:.2f}: MASE {ratio['mase']:.3f}  CRPS {ratio['crps']:.3f}  worst / best naive "
            f"{worst:.3f}, worse on {len(worse)}",
            flush=True,
        )
    return out


def summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Geometric means over the nine of each contender's ratio to the published seasonal naive."""
    nine = [n for n in results if n in protocol.PUBLISHED]
    naive_pub = {
        k: {n: protocol.PUBLISHED[n]["Seasonal naive"][i] for n in nine} for i, k in enumerate(("mase", "crps"))
    }
    out: dict[str, Any] = {}
    contenders = sorted({c for n in nine for c in results[n]})
    for c in contenders:
        if all(c in results[n] for n in nine):
            out[c] = {k: protocol.geometric_ratio({n: results[n][c][k] for n in nine}, naive_pub[k]) for k in naive_pub}
            out[c]["ahead_of_seasonal_naive"] = sum(
                results[n][c]["mase"] < naive_pub["mase"][n] and results[n][c]["crps"] < naive_pub["crps"][n]
                for n in nine
            )
    for model in protocol.MODELS:
        out[f"{model} (published)"] = {
            k: protocol.geometric_ratio({n: protocol.PUBLISHED[n][model][i] for n in nine}, naive_pub[k])
            for i, k in enumerate(("mase", "crps"))
        }
    if len(nine) == len(protocol.CONFIGS):
        out["Toto-2.0-2.5B (published)"] = dict(TOTO2)
    return out


SAW = {
    "gatecast (default)": "zero-shot: the corpus excludes ETT station 1, M4 Hourly and the exchange rates",
    "gatecast auto": "zero-shot: served beside the base model alone, it chooses per series between it, the last "
    "value and the last season on the history each request sends",
    "fracast-0": "zero-shot, by its authors' account",
    "AutoETS": "fits each window's own history (local model)",
    "AutoTheta": "fits each window's own history (local model)",
    "naive": "the window's last value",
    "seasonal naive": "the last season",
}


def render_markdown(report: dict[str, Any]) -> str:
    configs, agg, cost = report["configs"], report["summary"], report["cost"]
    contenders = [c for c in SAW if any(c in r for r in configs.values())]
    lines = [
        "# Zero-shot: the default model on data it never saw",
        "",
        "Generated by `python -m bench.zeroshot` (`make bench-zeroshot`) from `zeroshot.json`, on "
        f"{report['machine']['cpu']} ({report['machine']['cpus']} CPUs), {report['date']}. MASE / CRPS, lower is "
        f"better. The default model is `{report['base_model']}` (`gatecast pretrain`), answered through `POST "
        "/forecast` with no model named; `auto` chooses per series between it, the served models of the series' "
        "frequency and the naive forecasts, on the series' own last windows. Every contender ran in this one run on "
        "the same windows.",
        "",
        "Which models saw which data:",
        "",
        *[f"- **{c}**: {SAW[c]}" for c in contenders],
        "- **Chronos-2, TiRex, TimesFM-2.5, Toto** (published figures, `../shared/GIFT-EVAL.md`; Toto-2.0-2.5B's "
        "geometric means as issue 44 gives them): zero-shot, by their authors' account.",
        "",
        "| config | " + " | ".join(contenders) + " | " + " | ".join(f"{m} (published)" for m in ZERO_SHOT_SHOWN) + " |",
        "|---|" + "---|" * (len(contenders) + len(ZERO_SHOT_SHOWN)),
    ]
    for name, r in configs.items():
        pub = protocol.PUBLISHED.get(name)
        cells = [f"{r[c]['mase']:.3f} / {r[c]['crps']:.3f}" if c in r else "" for c in contenders]
        cells += [f"{pub[m][0]:.3f} / {pub[m][1]:.3f}" if pub else "" for m in ZERO_SHOT_SHOWN]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cells = [f"**{agg[c]['mase']:.3f} / {agg[c]['crps']:.3f}**" if c in agg else "" for c in contenders]
    cells += [f"{agg[f'{m} (published)']['mase']:.3f} / {agg[f'{m} (published)']['crps']:.3f}" for m in ZERO_SHOT_SHOWN]
    lines.append("| **nine: geometric mean of the ratio to seasonal naive** | " + " | ".join(cells) + " |")
    if "Toto-2.0-2.5B (published)" in agg:
        t = agg["Toto-2.0-2.5B (published)"]
        lines += ["", f"Toto-2.0-2.5B (published, the best on these nine): {t['mase']:.3f} / {t['crps']:.3f}."]
    lines += [
        "",
        "Seasonal naive's CRPS here is its ND (a point forecast); the ratios divide by the published seasonal naive "
        "(statsforecast's probabilistic version for CRPS), as GIFT-Eval's leaderboard does. "
        f"AutoETS and AutoTheta fit the last {STAT_CONTEXT} values of each window.",
        "",
        "## Intervals of the default model, asked without a calibration option",
        "",
        "| config | 80% interval covers | 95% interval covers |",
        "|---|---|---|",
    ]
    for name, r in configs.items():
        c = r.get("gatecast (default)", {}).get("coverage", {})
        lines.append(f"| {name} | {c.get('80', math.nan):.1%} | {c.get('95', math.nan):.1%} |")
    lines += [
        "",
        "## What `auto` chose",
        "",
        "| config | windows answered by each |",
        "|---|---|",
    ]
    for name, r in configs.items():
        chosen = r.get("gatecast auto", {}).get("chosen", {})
        lines.append(f"| {name} | " + ", ".join(f"{k} {v}" for k, v in sorted(chosen.items())) + " |")
    lines += [
        "",
        "## Cost",
        "",
        f"Server CPU (the `gatecast serve` process tree's user + system time) per series, for requests of "
        f"{cost['series_per_request']} series of up to {cost['context']} values, 48 steps and 9 quantiles: "
        f"**{cost['server_cpu_ms_per_series']:.3f} ms** ({cost['series']} series; wall "
        f"{cost['wall_ms_per_series']:.3f} ms per series).",
    ]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = {n: r for n, r in report["configs"].items() if n in protocol.PUBLISHED}
    names = list(configs)
    shown = [c for c in ("gatecast (default)", "gatecast auto", "fracast-0", "AutoETS") if c in configs[names[0]]]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, (i, metric) in zip(axes, enumerate(("mase", "crps")), strict=True):
        x = np.arange(len(names))
        rows = [(c, [configs[n][c][metric] for n in names]) for c in shown]
        rows += [(f"{m} (published)", [protocol.PUBLISHED[n][m][i] for n in names]) for m in ("TiRex", "Chronos-2")]
        width = 0.8 / len(rows)
        naive_pub = [protocol.PUBLISHED[n]["Seasonal naive"][i] for n in names]
        for j, (label, figures) in enumerate(rows):
            ax.bar(x + j * width, np.divide(figures, naive_pub), width, label=label)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xticks(x + 0.4 - width / 2, names, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{metric.upper()} / seasonal naive, zero-shot (lower is better)")
    axes[0].legend(fontsize=7, loc="upper left", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = datasets.data_dir()
    parser.add_argument("--configs", nargs="*", default=None, help="configurations (default: the nine and FX)")
    parser.add_argument("--skip-stats", action="store_true", help="leave out AutoETS and AutoTheta (slow)")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument(
        "--validate", type=Path, nargs="+", help="score these ONNX files on the validation windows only (and stop)"
    )
    parser.add_argument(
        "--choose-auto-margin", type=Path, help="replay auto's choice on validation windows with this base model file"
    )
    parser.add_argument(
        "--cost-only", action="store_true", help="re-measure only the serving cost into the existing zeroshot.json"
    )
    args = parser.parse_args()
    tasks = protocol.tasks(root / "ett" / "ETTm1.csv.gz", root / "m4")
    check = protocol.check_protocol(tasks)
    print(f"protocol check: {len(check)} configurations reproduce the published seasonal-naive MASE", flush=True)
    if args.choose_auto_margin:
        vtasks = validation_tasks(tasks)
        fx = fx_task(root / "exchange_rate")
        vtasks[FX.name] = protocol.validation_task(fx, fx.first_origin)
        found = choose_auto_margin(args.choose_auto_margin, vtasks)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "auto.json").write_text(json.dumps(found, indent=1) + "\n")
        return
    if args.cost_only:
        report = json.loads((args.out / "zeroshot.json").read_text())
        report["cost"] = remeasure_cost(tasks["m4_hourly/H/short"], args.models)
        (args.out / "zeroshot.json").write_text(json.dumps(report, indent=1) + "\n")
        (args.out / "zeroshot.md").write_text(render_markdown(report))
        return
    if args.validate:
        found = validate(args.validate, validation_tasks(tasks))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "zeroshot-validation.json").write_text(json.dumps(found, indent=1) + "\n")
        return
    tasks[FX.name] = fx_task(root / "exchange_rate")
    if args.configs:
        tasks = {c: tasks[c] for c in args.configs}
    report = run(tasks, args.models, args.skip_stats)
    report["summary"] = summary(report["configs"])
    report["machine"] = machine.describe()
    report["date"] = time.strftime("%Y-%m-%d")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "zeroshot.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "zeroshot.md").write_text(render_markdown(report))
    plot(report, args.out / "zeroshot.png")
    for c, v in report["summary"].items():
        print(f"  {c:32s} MASE {v['mase']:.3f}  CRPS {v['crps']:.3f}")


if __name__ == "__main__":
    main()
