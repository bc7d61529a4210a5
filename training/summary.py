"""What a finished `gatecast pipeline` run tells the person who ran it, on the terminal: how it did against each
baseline, the validation verdict, interval coverage, how long it trained and what stopped it, where the report is,
and a request that forecasts with the new model once it is served. More: docs/design.md#trainingsummary.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pandas as pd

from training.artifacts import RunPaths
from training.config import RunConfig
from training.data import Dataset
from training.evaluate import NAIVE_IS_THE_MODEL


def blend_note(ensemble: dict[str, Any] | None, season: int) -> str | None:
    """The naive blend's weight in words, below the weight where the verdict already says the model is naive."""
    if not ensemble or not ensemble.get("naive_weight"):
        return None
    weight = float(ensemble["naive_weight"])
    if weight >= NAIVE_IS_THE_MODEL:
        return None  # the verdict says it (training.evaluate.validation_verdict)
    kind = "seasonal naive" if ensemble.get("naive_lag", 1) == season > 1 else "naive"
    return f"naive blend: weight {weight:.2f} of {kind} (chosen on validation)"


def stopped_by(training: dict[str, Any], config: RunConfig) -> str:
    epochs, best = training["epochs_run"], training["best_epoch"]
    if training.get("hit_cap"):
        return (
            f"the epoch cap ({config.train.epochs}) stopped it while validation was still improving: raise "
            "[train] epochs"
        )
    if epochs < config.train.epochs:
        patience = config.train.patience
        return f"patience stopped it after epoch {epochs} ({patience} epochs without a better validation loss)"
    return f"it ran all {epochs} epochs; the best was epoch {best}"


def write_request(dataset: Dataset, config: RunConfig, path: Path) -> Path:
    """A POST /forecast body for the first series, what the summary's curl sends: its last window with timestamps
    and covariates; for a model with future covariates the window ends a horizon early, and the covariates'
    recorded values over that horizon are sent as what was known ahead."""
    mc, series = config.model, dataset.series[0]
    end = len(series.values) - (mc.horizon if mc.future_covariates else 0)
    start = max(0, end - mc.input_window)
    one: dict[str, Any] = {"id": str(series.id), "values": [round(float(v), 6) for v in series.values[start:end]]}
    stamps = series.timestamps[start:end] if series.timestamps is not None else None
    # Timestamps only where they are consecutive at the frequency, as the server requires (a weekdays-only
    # calendar is not): the answer then carries the forecast's own.
    if (
        stamps is not None
        and len(stamps)
        and stamps.equals(pd.date_range(stamps[0], periods=len(stamps), freq=dataset.freq))
    ):
        one["timestamps"] = [t.isoformat() for t in stamps]
    named = [*mc.past_covariates, *mc.future_covariates]
    if named:
        one["covariates"] = {n: [round(float(v), 6) for v in series.covariates[n][start:end]] for n in named}
    if mc.future_covariates:
        one["future_covariates"] = {
            n: [round(float(v), 6) for v in series.covariates[n][end : end + mc.horizon]] for n in mc.future_covariates
        }
    path.write_text(json.dumps({"model": config.name, "level": [80, 95], "series": [one]}) + "\n")
    return path


def summary(config: RunConfig, paths: RunPaths, dataset: Dataset) -> str:
    """The closing lines of a pipeline run (plain text; the verdict line is marked when the model loses)."""
    saved = json.loads((paths.report / "metrics.json").read_text())
    evaluation, training = saved["evaluation"], saved["training"]
    scores = evaluation["scores"]
    model = scores["model"]["mase"]
    baselines = {name: s["mase"] for name, s in scores.items() if name != "model"}
    beaten = [n for n, m in baselines.items() if model < m]
    lost = {n: m for n, m in baselines.items() if model >= m}
    against = ", ".join(f"{name.replace('_', ' ')} {m:.3f}" for name, m in baselines.items())
    lines = [
        f"{config.name}: done in {training['seconds']:.0f} s of training ({training['epochs_run']} epochs, best "
        f"{training['best_epoch']}); {stopped_by(training, config)}",
        f"  test MASE {model:.3f} over {evaluation['windows']} windows, horizon {config.model.horizon} "
        f"(lower is better; {against})",
    ]
    if lost:
        worst = min(lost, key=lambda n: lost[n])
        lines.append(
            f"  behind {', '.join(n.replace('_', ' ') for n in lost)} on test (against {worst.replace('_', ' ')}: "
            f"MASE {model:.3f} to {lost[worst]:.3f}, {model / lost[worst] - 1:.1%} worse)"
        )
    elif beaten:
        lines.append("  ahead of every baseline on test")
    validation = evaluation.get("validation")
    if validation:
        lines.append(f"  verdict: {validation['verdict']}")
    note = blend_note(evaluation.get("ensemble"), evaluation["season"])
    if note:
        lines.append(f"  {note}")
    coverage = evaluation.get("coverage") or {}
    if coverage:
        shown = ", ".join(f"{level}% intervals held {value:.1%}" for level, value in coverage.items())
        lines.append(f"  on test, {shown} of the values")
    lines.append(f"  report: {paths.report / 'report.md'}")
    lines.append(f"  model:  {paths.model}")
    request = write_request(dataset, config, paths.report / "request.json")
    models = paths.model.parent.parent.parent
    serve = "gatecast serve"
    if models.resolve() != (Path.cwd() / "models").resolve():
        serve += f" --models {shlex.quote(str(models))}"
    lines.append(f"  try it: {serve}, then (the first series' last window)")
    lines.append(
        f"    curl -s localhost:8000/forecast -H 'content-type: application/json' -d @{shlex.quote(str(request))}"
    )
    return "\n".join(lines)
