"""`gatecast tune CONFIG`: hyperparameter search with Ray Tune and Optuna's sampler, chosen on validation only. More:
docs/design.md#trainingtune.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from training.config import RunConfig

log = logging.getLogger("gatecast.tune")

# key -> (kind, choices or bounds); "window" multiplies the config's input window. docs/models.md lists it.
SEARCH_SPACE: dict[str, tuple[str, list[Any]]] = {
    "model.cell": ("choice", ["lstm", "gru"]),
    "model.input_window": ("window", [0.5, 1.0, 1.5, 2.0]),
    "model.hidden_size": ("choice", [16, 32, 64, 128]),
    "model.num_layers": ("choice", [1, 2, 3]),
    "model.dropout": ("uniform", [0.0, 0.3]),
    "train.lr": ("loguniform", [1e-4, 1e-2]),
    "train.lr_schedule": ("choice", ["none", "plateau", "cosine"]),
    "ensemble.members": ("choice", [1, 2, 3]),
    "ensemble.naive_blend": ("choice", [False, True]),
}


def space_table() -> list[tuple[str, str]]:
    """(key, what the search tries) for the docs."""
    words = {
        "choice": lambda v: "one of " + ", ".join(str(x).lower() for x in v),
        "window": lambda v: "the config's window times " + ", ".join(str(x) for x in v),
        "uniform": lambda v: f"uniform in [{v[0]}, {v[1]}]",
        "loguniform": lambda v: f"log-uniform in [{v[0]:g}, {v[1]:g}]",
    }
    return [(key, words[kind](values)) for key, (kind, values) in SEARCH_SPACE.items()]


def param_space(base: RunConfig) -> dict[str, Any]:
    """SEARCH_SPACE for this config; each key's range also holds the config's own value (the first trial)."""
    from ray import tune

    own = defaults(base)
    space: dict[str, Any] = {}
    for key, (kind, values) in SEARCH_SPACE.items():
        if kind == "window":
            windows = {max(base.model.min_window, round(base.model.input_window * f)) for f in values}
            space[key] = tune.choice(sorted(windows | {own[key]}))
        elif kind == "choice":
            space[key] = tune.choice(values if own[key] in values else [*values, own[key]])
        else:
            low, high = min(values[0], own[key]), max(values[1], own[key])
            space[key] = tune.uniform(low, high) if kind == "uniform" else tune.loguniform(low, high)
    return space


def defaults(base: RunConfig) -> dict[str, Any]:
    """The config's own values of the searched keys: the first trial."""
    sections = {"model": asdict(base.model), "train": asdict(base.train), "ensemble": asdict(base.ensemble)}
    return {key: sections[key.split(".")[0]][key.split(".")[1]] for key in SEARCH_SPACE}


def apply(base: RunConfig, params: dict[str, Any], max_epochs: int | None = None) -> RunConfig:
    """The config with the trial's values; ensembles train their members one after another in the trial's task."""
    changes: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "ensemble": {}}
    for key, value in params.items():
        section, name = key.split(".")
        changes[section][name] = value.item() if isinstance(value, np.generic) else value
    model = replace(base.model, **changes["model"])
    train = replace(base.train, **changes["train"])
    if max_epochs:
        train = replace(train, epochs=min(train.epochs, max_epochs))
    ensemble = replace(base.ensemble, **changes["ensemble"], workers=1, input_windows=[], cells=[])
    evaluate = replace(base.evaluate, stat_model="")  # the statistical baseline chooses nothing here
    return replace(base, model=model, train=train, ensemble=ensemble, evaluate=evaluate)


def trial(params: dict[str, Any], base: RunConfig, max_epochs: int | None) -> None:
    """One trial, in a Ray task: train with a report per epoch, then the validation MASE."""
    import torch
    from ray import tune

    from training import data
    from training.evaluate import validation_scores
    from training.train import train

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    config = apply(base, params, max_epochs)
    dataset = data.load_for(config)
    started = time.perf_counter()
    epochs = 0

    def on_epoch(record: dict[str, Any]) -> None:
        nonlocal epochs
        epochs += 1
        tune.report({"val_loss": record["val_loss"], "epoch": epochs})

    result = train(config, dataset, progress=False, on_epoch=on_epoch)
    scores = validation_scores(result.model, config, dataset)
    tune.report(
        {
            "val_loss": result.best_val_loss,
            "val_mase": scores["mase"]["model"],
            "epoch": epochs,
            "seconds": time.perf_counter() - started,
            "scored": True,  # not "done": Ray sets that on every ended trial, stopped ones too
        }
    )


def run(
    config: RunConfig,
    root: Path,
    trials: int = 20,
    cpus_per_trial: float = 1.0,
    max_epochs: int | None = None,
    seed: int = 0,
    address: str | None = None,
) -> dict[str, Any]:
    """The search; returns its report (also written to reports/<name>/tune.json and tune.md)."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    config = _absolute_dataset(config)
    address = address or os.environ.get("GATECAST_RAY_ADDRESS") or None
    env = {k: v for k, v in os.environ.items() if k in ("GATECAST_DATA_DIR",)}
    ray.init(
        address=address or "local",
        log_to_driver=False,
        include_dashboard=False if not address else None,
        runtime_env={"env_vars": env} if env else None,
    )
    started = time.perf_counter()
    try:
        cluster_cpus = ray.cluster_resources().get("CPU", 1.0)
        search = OptunaSearch(metric="val_loss", mode="min", points_to_evaluate=[defaults(config)], seed=seed)
        grace = max(1, min(3, config.train.epochs // 5))
        scheduler = ASHAScheduler(
            metric="val_loss", mode="min", time_attr="epoch", max_t=10_000, grace_period=grace, reduction_factor=3
        )
        trainable = tune.with_resources(
            tune.with_parameters(trial, base=config, max_epochs=max_epochs), {"cpu": cpus_per_trial}
        )
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(config),
            tune_config=tune.TuneConfig(search_alg=search, scheduler=scheduler, num_samples=trials),
            run_config=tune.RunConfig(
                name=f"tune-{config.name}",
                storage_path=str(tune_folder(root, "runs", config.name).resolve()),
                verbose=0,
            ),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    seconds = time.perf_counter() - started
    rows = []
    for r in results:
        metrics = r.metrics or {}
        params = {k.removeprefix("config/"): v for k, v in (r.config or {}).items()}
        rows.append(
            {
                "params": {k: _plain(v) for k, v in params.items()},
                "val_loss": _finite(metrics.get("val_loss")),
                "val_mase": _finite(metrics.get("val_mase")) if metrics.get("scored") else None,
                "epochs": int(metrics.get("epoch", 0) or 0),
                "finished": bool(metrics.get("scored")),
                "error": str(r.error).splitlines()[0] if r.error else None,
            }
        )
    finished = [row for row in rows if row["val_mase"] is not None]
    if not finished:
        raise RuntimeError(f"no trial of {config.name} finished: " + "; ".join(str(r["error"]) for r in rows))
    best = min(finished, key=lambda row: row["val_mase"])
    default = next((row for row in rows if row["params"] == defaults(config)), None)
    report = {
        "name": config.name,
        "trials": len(rows),
        "finished": len(finished),
        "stopped_early": sum(1 for row in rows if not row["finished"] and not row["error"]),
        "failed": sum(1 for row in rows if row["error"]),
        "seconds": round(seconds, 1),
        "trials_per_hour": round(len(rows) / seconds * 3600, 1),
        "cluster_cpus": cluster_cpus,
        "cpus_per_trial": cpus_per_trial,
        "max_epochs": max_epochs,
        "search_space": dict(space_table()),
        "best": best,
        "default": default,
        "gain_over_default": (1 - best["val_mase"] / default["val_mase"]) if default and default["val_mase"] else None,
        "rows": rows,
    }
    return report


def tune_folder(root: Path, kind: str, name: str) -> Path:
    """runs/<name>.tune and reports/<name>.tune: beside the run's own folders, which the final run claims."""
    return root / kind / f"{name}.tune"


def write_report(report: dict[str, Any], best_config: RunConfig, root: Path) -> Path:
    """reports/<name>.tune/tune.json and tune.md, and the best trial's config as <name>.toml beside them."""
    folder = tune_folder(root, "reports", report["name"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tune.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Tuning {report['name']}",
        "",
        f"{report['trials']} trials in {report['seconds']:.0f} s ({report['trials_per_hour']:.0f} per hour) on "
        f"{report['cluster_cpus']:g} CPUs, {report['cpus_per_trial']:g} per trial: {report['finished']} finished, "
        f"{report['stopped_early']} stopped early by ASHA, {report['failed']} failed. Chosen on validation MASE only.",
        "",
    ]
    default, best = report["default"], report["best"]
    if default and default["val_mase"] is not None:
        lines.append(
            f"The config as written: validation MASE {default['val_mase']:.4f}; the best trial "
            f"{best['val_mase']:.4f} ({100 * report['gain_over_default']:.1f}% lower)."
        )
    else:
        lines.append(f"The best trial: validation MASE {best['val_mase']:.4f} (the config as written did not finish).")
    keys = list(SEARCH_SPACE)
    header = "| trial | " + " | ".join(keys) + " | epochs (all members) | val loss | val MASE |"
    lines += ["", header, "|---" * (len(keys) + 4) + "|"]
    for i, row in enumerate(sorted(report["rows"], key=lambda r: (r["val_mase"] is None, r["val_mase"] or 0))):
        cells = [_cell(row["params"].get(k)) for k in keys]
        mase = f"{row['val_mase']:.4f}" if row["val_mase"] is not None else ("failed" if row["error"] else "stopped")
        loss = f"{row['val_loss']:.4f}" if row["val_loss"] is not None else "-"
        lines.append(f"| {i + 1} | " + " | ".join(cells) + f" | {row['epochs']} | {loss} | {mase} |")
    (folder / "tune.md").write_text("\n".join(lines) + "\n")
    (folder / f"{report['name']}.toml").write_text(_toml(best_config))
    return folder


def best_config(config: RunConfig, report: dict[str, Any], root: Path) -> RunConfig:
    """The best trial's config, as it will be exported (the config's own epochs and baseline kept); its source is
    the file write_report writes, so the exported model names the config it was made from."""
    tuned = apply(config, report["best"]["params"])
    source = tune_folder(root, "reports", config.name) / f"{config.name}.toml"
    ensemble = replace(tuned.ensemble, workers=config.ensemble.workers)
    return replace(tuned, evaluate=config.evaluate, ensemble=ensemble, source=str(source))


def _absolute_dataset(config: RunConfig) -> RunConfig:
    """Trials run in other folders (and on other machines): a data file's path must not depend on the cwd."""
    path = Path(config.dataset)
    if path.suffix in (".csv", ".parquet", ".pq") and not path.is_absolute():
        return replace(config, dataset=str(path.resolve()))
    return config


def _toml(config: RunConfig) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    top = {"name": config.name, "dataset": config.dataset, "version": config.version, "seed": config.seed}
    for key in ("freq", "season"):
        if getattr(config, key) is not None:
            top[key] = getattr(config, key)
    lines = [
        "# written by gatecast tune: the best trial, chosen on validation MASE",
        *(f"{k} = {value(v)}" for k, v in top.items()),
    ]
    for section in ("model", "train", "ensemble", "evaluate"):
        lines += ["", f"[{section}]", *(f"{k} = {value(v)}" for k, v in asdict(getattr(config, section)).items())]
    if config.split is not None:
        items = {k: v for k, v in asdict(config.split).items() if v is not None}
        lines += ["", "[split]", *(f"{k} = {value(v)}" for k, v in items.items())]
    return "\n".join(lines) + "\n"


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _finite(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v).lower() if isinstance(v, bool) else str(v)
