"""`gatecast init NAME --data FILE`: a config for a user's own data, written from the data. More:
docs/design.md#traininginit.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pandas as pd

from contract.longformat import REQUIRED_COLUMNS, read_long_csv
from training import artifacts
from training.config import SECTIONS, RunConfig
from training.data import load_long

# Names that say a column is known ahead (a plan, a calendar, a promotion): proposed as future covariates.
FUTURE_HINTS = re.compile(r"holiday|promo|plan|schedul|calendar|event|forecast|price|closed|open|weekend", re.I)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # a model name is a folder name under models/


def write_config(name: str, data: Path, root: Path, cell: str = "gru") -> Path:
    """Write `<name>.toml` in the current folder; refuses a taken name or an existing file."""
    if not NAME.match(name) or ".." in name:
        raise ValueError(f"name {name!r} is not valid: use letters, digits, '.', '_' and '-'")
    path = Path(f"{name}.toml")
    if path.exists():
        raise FileExistsError(f"{path} exists; choose another name or edit it")
    config = RunConfig(name=name, dataset=str(data), source=str(path))
    try:
        artifacts.claim(config, root)  # a name whose runs or models another config produced stays theirs
    except artifacts.NameTaken as taken:
        raise ValueError(f"the name {name!r} is taken: {', '.join(taken.taken)}; choose another name") from None
    dataset = load_long(data)
    notes = [f"# frequency {dataset.freq!r} and season {dataset.season} were inferred from the timestamps."]
    if dataset.info.get("weekdays_only"):
        notes.append("# No series has a weekend point: weekends are the data's calendar and are never filled in.")
    shortest_train = min(s.train_end for s in dataset.series)
    season = dataset.season
    if season > 1 and 2 * season > shortest_train:
        notes.append(
            f"# The {dataset.freq!r} season of {season} steps is longer than half the shortest series' training part "
            f"({shortest_train} points): season = 1 (non-seasonal baselines and MASE); set it to override."
        )
        season = 1
    model = _sizes(season, shortest_train, cell)
    notes.append(
        f"# Window {model['input_window']} and horizon {model['horizon']} fit the shortest series ({shortest_train} "
        "points before validation)."
    )
    found_columns = _covariates(data)
    proposed = {c: role for c, role in found_columns.items() if role in ("past", "future")}
    if found_columns:
        found = ", ".join(f"{c} ({role})" for c, role in found_columns.items())
        notes.append(f"# Columns beyond unique_id, ds, y: {found}.")
    if proposed:
        notes.append("# They are proposed under [model], commented out: uncomment a line to read them (a future")
        notes.append(
            "# covariate's values must then be sent for the horizon too). Keep one only if validation improves."
        )
    values: dict[str, dict[str, Any]] = {
        "": {"name": name, "dataset": str(data), "freq": dataset.freq, "season": season, "gaps": "interpolate"},
        "model": model,
        # A user's own series may be near a random walk (a price): keep the model within reach of naive.
        "ensemble": {"naive_blend": True},
    }
    lines = [
        f"# {name}: a gatecast model of {data.name}. Every key is listed with its meaning; docs/models.md",
        "# (Train your own model) tells what each part does.",
        *notes,
        "",
    ]
    for section, kind in SECTIONS:
        if section:
            lines += ["", f"[{section}]"]
        for f in fields(kind):
            text = f.metadata.get("doc")
            if text is None:
                continue
            value = values.get(section, {}).get(f.name, f.default)
            lines.append(f"# {text}")
            role = (
                {"past_covariates": "past", "future_covariates": "future"}.get(f.name) if section == "model" else None
            )
            columns = [c for c, r in proposed.items() if r == role] if role else []
            if columns:
                lines.append(f"# {f.name} = {_toml(columns)}  # found in {data.name}")
            else:
                lines.append(f"{f.name} = {_toml(value)}" if value not in (None, MISSING, []) else f"# {f.name} =")
    path.write_text("\n".join(lines) + "\n")
    return path


def _covariates(data: Path) -> dict[str, str]:
    """The data's columns beyond unique_id, ds and y, each with the role its name and values suggest: "future"
    for a flag or a name that says it is planned or known ahead, else "past" (known up to the origin)."""
    frame = pd.read_parquet(data) if data.suffix in (".parquet", ".pq") else read_long_csv(data.read_bytes())
    roles = {}
    for column in (c for c in frame.columns if c not in REQUIRED_COLUMNS):
        values = pd.to_numeric(frame[column], errors="coerce").dropna()
        if values.empty:
            roles[str(column)] = "not numbers: cannot be a covariate"
            continue
        flag = set(values.unique()) <= {0, 1}
        roles[str(column)] = "future" if flag or FUTURE_HINTS.search(str(column)) else "past"
    return roles


def _sizes(season: int, shortest_train: int, cell: str) -> dict[str, Any]:
    """A window of about a week of seasons and a horizon of one season, both shrunk to fit the shortest series:
    the horizon at most a sixth of its training part, the window at most a quarter of what is left."""
    horizon = season if 2 <= season <= 168 else 12
    horizon = max(1, min(horizon, shortest_train // 6))
    window = 7 * season if season > 1 else 8 * horizon
    window = max(2 * horizon, min(window, (shortest_train - horizon) // 4))
    lag = season if 1 < season < window // 2 else 1
    return {
        "cell": cell,
        "input_window": window,
        "min_window": max(lag + 1, window // 3),
        "horizon": horizon,
        "interval_lag": lag,
    }


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)
