"""Intervals on live feeds: committed models fed, reading by reading through the streams API, data they did not
train on (and their own), with the model's widths and with adaptive ones (app.streams.adaptive) side by side; and the
choice of app.streams.adaptive.RATE on the validation splits.

A stream answers a forecast after each reading; every answer's 80% and 95% intervals are scored against the
readings that came after it (every step of the horizon), as a client holding the answers would score them.

  python -m bench.accuracy --live-only      (also part of `make bench-accuracy`; needs ../shared/data)
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app.streams import adaptive
from training import data

LEVELS = ("80", "95")
# The committed models on data they did not train on (as bench.accuracy.TRANSFER) and on their own.
PAIRS = [
    ("vix-gru", "exchange"),
    ("vix-lstm", "exchange"),
    ("etth1-gru", "ettm1"),
    ("etth1-lstm", "ettm1"),
    ("vix-gru", "vix"),
    ("etth1-gru", "etth1"),
]
SWEEP = (0.0, 0.01, 0.02, 0.03, 0.05)  # rates tried on validation; 0: the model's widths


def coverage_of(answers: list[dict[str, Any]], first: list[int], values: np.ndarray, end: int) -> dict[str, float]:
    """Share of readings inside the intervals of every answer that predicted them; answer k was given when
    `first[k]` readings were known, so its step s predicts reading first[k] + s (scored while < end)."""
    out = {}
    for level in LEVELS:
        hits = checks = 0
        for answer, at in zip(answers, first, strict=True):
            bounds = answer["intervals"][level]
            n = max(0, min(len(bounds["lo"]), end - at))
            actual = values[at : at + n]
            hits += int(np.count_nonzero((np.asarray(bounds["lo"][:n]) <= actual) & (actual <= bounds["hi"][:n])))
            checks += n
        out[level] = hits / checks
    return out


def live(client: TestClient, model: str, data_name: str) -> dict[str, Any]:
    """The test split of `data_name` fed to two streams per series, one with the model's widths and one
    adaptive; the coverage of every answer and the final widening of the adaptive streams."""
    info = client.get(f"/models/{model}").json()["versions"][-1]
    window = info["input_window"]["trained"]
    dataset = data.load(data_name)
    modes = ("fixed", "adaptive")
    coverage: dict[str, dict[str, float]] = {}
    widening: list[dict[str, float]] = []
    readings, scored, started = 0, 0, time.perf_counter()
    for series in dataset.series:
        lo, hi = series.split("test")
        values = series.values
        per_mode: dict[str, list[dict[str, Any]]] = {}
        for mode in modes:
            stream = re.sub(r"[^A-Za-z0-9._:~-]", "-", f"{model}.{data_name}.{series.id}.{mode}")[:128]
            put = {"model": model, "level": [80, 95], "adaptive": mode == "adaptive"}
            client.put(f"/streams/{stream}", json=put).raise_for_status()
            history = {"values": values[lo - window : lo].tolist(), "backfill": True}
            client.post(f"/streams/{stream}/points", json=history).raise_for_status()
            got = []
            for t in range(lo, hi - 1):  # the answer after reading t predicts t + 1 on
                answer = client.post(f"/streams/{stream}/points", json={"values": [float(values[t])]})
                answer.raise_for_status()
                got.append(answer.json()["forecast"])
            per_mode[mode] = got
            readings += len(got)
            if mode == "adaptive":
                widening.append(client.get(f"/streams/{stream}").json()["widening"])
            client.delete(f"/streams/{stream}")
        at = list(range(lo + 1, hi))
        for mode, got in per_mode.items():
            coverage.setdefault(mode, {})
            for level, value in coverage_of(got, at, values, hi).items():
                coverage[mode][level] = coverage[mode].get(level, 0.0) + value * len(at)
        scored += len(at)
    return {
        "data": data_name,
        "series": len(dataset.series),
        "readings": scored,
        "coverage": {mode: {level: v / scored for level, v in c.items()} for mode, c in coverage.items()},
        "widening": {level: float(np.median([w[level] for w in widening])) for level in LEVELS},
        "appends_per_s": readings / (time.perf_counter() - started),
    }


def forecasts_of(client: TestClient, model: str, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """POST /forecast of windows x (N, T): means (N, H) and the half-widths (N, H) at each level."""
    means: list[list[float]] = []
    halves: dict[str, list[np.ndarray]] = {level: [] for level in LEVELS}
    for i in range(0, len(x), 256):
        body = {
            "model": model,
            "level": [80, 95],
            "series": [{"id": str(j), "values": row.tolist()} for j, row in enumerate(x[i : i + 256])],
        }
        answer = client.post("/forecast", json=body)
        answer.raise_for_status()
        for f in answer.json()["forecasts"]:
            means.append(f["mean"])
            for level in LEVELS:
                halves[level].append(np.subtract(f["intervals"][level]["hi"], f["mean"]))
    return np.asarray(means), {level: np.asarray(h) for level, h in halves.items()}


def replay(
    values: np.ndarray, origins: np.ndarray, mean: np.ndarray, half: np.ndarray, level: float, rate: float
) -> float:
    """Coverage of issued intervals when readings values[origins[0]:] arrive one by one and the multiplier moves
    as a stream's does (app.streams.adaptive.step at `rate`): the forecast from origin o (its first step predicts
    reading o) is issued at the multiplier of the moment, and each reading is checked by every forecast that
    predicted it at the multiplier of the moment."""
    horizon = mean.shape[1]
    end = int(origins[-1]) + 1
    log_m, hits, checks = 0.0, 0, 0
    issued = np.ones(len(origins))
    for k, t in enumerate(range(int(origins[0]), end)):
        issued[k] = math.exp(log_m)  # origin t's forecast, made once reading t - 1 was in
        live_ = slice(max(0, k - horizon + 1), k + 1)  # forecasts whose steps include reading t
        steps = k - np.arange(live_.start, live_.stop)
        error = np.abs(values[t] - mean[live_, :][np.arange(len(steps)), steps])
        width = half[live_, :][np.arange(len(steps)), steps]
        hits += int(np.count_nonzero(error <= width * issued[live_]))
        checks += len(steps)
        misses = int(np.count_nonzero(error > width * math.exp(log_m)))
        log_m = adaptive.step(log_m, level, misses, len(steps), rate) if rate else 0.0
    return hits / checks


def sweep(client: TestClient, model: str, data_name: str, split: str = "val") -> dict[str, dict[str, float]]:
    """Coverage on `split` at each rate of SWEEP: rate -> level -> coverage, pooled over the series."""
    info = client.get(f"/models/{model}").json()["versions"][-1]
    window = info["input_window"]["trained"]
    out: dict[str, dict[str, float]] = {f"{rate:g}": dict.fromkeys(LEVELS, 0.0) for rate in SWEEP}
    total = 0
    for series in data.load(data_name).series:
        lo, hi = series.split(split)
        origins = np.arange(max(lo, window), hi)
        x = np.stack([series.values[o - window : o] for o in origins])
        mean, half = forecasts_of(client, model, x)
        for rate in SWEEP:
            for level in LEVELS:
                out[f"{rate:g}"][level] += replay(series.values, origins, mean, half[level], float(level), rate) * len(
                    x
                )
        total += len(x)
    return {rate: {level: v / total for level, v in c.items()} for rate, c in out.items()}


def run(client: TestClient) -> dict[str, Any]:
    out: dict[str, Any] = {"rate": adaptive.RATE, "live": {}, "sweep": {}}
    for model, data_name in PAIRS:
        key = f"{model} on {data_name}"
        out["sweep"][key] = sweep(client, model, data_name)
        print(f"  validation sweep, {key}: {out['sweep'][key]}", flush=True)
        out["live"][key] = live(client, model, data_name)
        print(f"  live, {key}: {out['live'][key]}", flush=True)
    return out
