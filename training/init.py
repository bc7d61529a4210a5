"""`gatecast init NAME --data FILE`: a config for a user's own data, written from the data.

The file lists every key with its documentation (the same text as docs/configuration.md), with the frequency
and season inferred from the timestamps and a window and horizon sized from them, so a first run works as it
is and every choice is visible where it can be changed.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from training import artifacts
from training.config import SECTIONS, RunConfig
from training.data import load_long

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
    gaps = "interpolate"
    notes = [f"# frequency {dataset.freq!r} and season {dataset.season} were inferred from the timestamps."]
    if dataset.info.get("weekends_absent"):
        gaps = "keep"  # whole days skipped keep the daily phase; interpolating weekends would invent them
        notes.append('# Every weekend is absent from the data: gaps = "keep" uses the points as they come.')
        dataset = load_long(data, gaps=gaps)
    shortest_train = min(s.train_end for s in dataset.series)
    model = _sizes(dataset.season, shortest_train, cell)
    values: dict[str, dict[str, Any]] = {
        "": {"name": name, "dataset": str(data), "freq": dataset.freq, "season": dataset.season, "gaps": gaps},
        "model": model,
        # A user's own series may be near a random walk (a price): keep the model within reach of naive.
        "ensemble": {"naive_blend": True},
    }
    lines = [
        f"# {name}: a gatecast model of {data.name}. Every key is listed with its meaning (docs/configuration.md);",
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
            lines.append(f"{f.name} = {_toml(value)}" if value not in (None, MISSING) else f"# {f.name} =")
    path.write_text("\n".join(lines) + "\n")
    return path


def _sizes(season: int, shortest_train: int, cell: str) -> dict[str, Any]:
    """A window of about a week of seasons and a horizon of one season, shrunk to fit short training data."""
    horizon = season if 2 <= season <= 168 else 12
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
    return repr(value)
