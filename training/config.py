"""A run's configuration: one TOML file -> `RunConfig`. Every key is documented where it is defined (the `doc`
of its field); `keys_table()` renders them all, and docs/configuration.md is generated from it."""

from __future__ import annotations

import tomllib
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from training.fields import doc
from training.model import ForecasterConfig

GAP_POLICIES = ("interpolate", "keep", "refuse")
LR_SCHEDULES = ("none", "plateau", "cosine")
LOSSES = ("window", "log")


@dataclass
class TrainConfig:
    epochs: int = doc(30, "most epochs; training stops earlier when validation stops improving (`patience`)")
    batch_size: int = doc(128, "windows per optimisation step")
    lr: float = doc(1e-3, "AdamW learning rate")
    weight_decay: float = doc(0.0, "AdamW weight decay")
    patience: int = doc(5, "epochs without a better validation loss before stopping")
    train_stride: int = doc(1, "distance between consecutive training windows")
    max_batches_per_epoch: int = doc(0, "0: a full pass per epoch; else a random subset (large global data sets)")
    grad_clip: float = doc(1.0, "gradient norm clip")
    lr_schedule: str = doc(
        "none",
        "plateau: halve the learning rate after half of `patience` epochs without a better validation loss; "
        "cosine: anneal it to 0 over `epochs`; none: constant",
    )
    loss: str = doc(
        "window",
        "window: L1 on each window's normalised scale, every window weighs the same; log: L1 of the log values "
        '(with [model] transform = "log"), a relative error, weighed as sMAPE weighs it',
    )

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"[train] lr_schedule {self.lr_schedule!r} is unknown; use one of {list(LR_SCHEDULES)}")
        if self.loss not in LOSSES:
            raise ValueError(f"[train] loss {self.loss!r} is unknown; use one of {list(LOSSES)}")


@dataclass
class EnsembleConfig:
    members: int = doc(
        1, "forecasters trained (seeds seed, seed+1, ...) and exported as one graph returning their median"
    )
    input_windows: list[int] = doc([], "the members' input windows, taken in turn; empty: [model] input_window")
    cells: list[str] = doc([], "the members' cells, taken in turn; empty: [model] cell")
    workers: int = doc(0, "members trained at once, each in its own process with a share of the cores; 0: one per core")
    naive_blend: bool = doc(
        False,
        "choose on the validation split the weight w (0-1) of the naive or seasonal naive forecast, whichever "
        "serves best, and export (1 - w) x model + w x naive in the graph: the model cannot lose much to naive",
    )

    def __post_init__(self) -> None:
        if self.members < 1:
            raise ValueError(f"[ensemble] members is {self.members}; it must be >= 1")
        if self.workers < 0:
            raise ValueError(f"[ensemble] workers is {self.workers}; it must be >= 0 (0: one per core)")

    @property
    def single(self) -> bool:
        """One plain forecaster: the graph is the member itself."""
        return self.members == 1 and not self.naive_blend


@dataclass
class EvalConfig:
    stride: int = doc(1, "distance between test forecast origins (every origin when 1)")
    stat_model: str = doc(
        "AutoETS",
        "statsforecast model for the statistical baseline (AutoETS, AutoTheta, AutoARIMA, ...), fitted once per "
        "series on its history before the test split and applied at each test origin; empty: none",
    )
    plot_windows: int = doc(4, "test windows drawn in reports/<name>/forecasts.png")


@dataclass
class SplitConfig:
    """Where validation and test begin in each series of a data file (the named data sets keep their standard
    splits). `val` and `test` each take a fraction of the series, a number of points, or a timestamp."""

    val: float | int | str = doc(
        0.1, "fraction of each series (0-1), a number of points before the test split, or the timestamp it starts"
    )
    test: float | int | str = doc(
        0.2, "fraction of each series (0-1), a number of final points (a fixed test, as M4), or the timestamp it starts"
    )
    end: int | str | None = doc(None, "ignore data from this timestamp on (or after the first N points); none: use all")


@dataclass
class RunConfig:
    name: str = doc(MISSING, "the model's name: runs/<name>, reports/<name>, models/<name>/<version>")
    dataset: str = doc(
        MISSING, "a named data set (etth1, ettm1, vix, exchange, m4_hourly) or a `unique_id, ds, y` .csv/.parquet path"
    )
    version: str = doc("1", "the model version exported under models/<name>/")
    seed: int = doc(0, "random seed (training is deterministic on CPU for a seed)")
    freq: str | None = doc(None, "pandas offset alias of the data (h, 15min, D, B, W, MS, ...); inferred when absent")
    season: int | None = doc(
        None, "season length in steps for the seasonal baselines and MASE; derived from freq when absent (h: 24, D: 7)"
    )
    gaps: str = doc(
        "interpolate",
        "missing timestamps in a data file: interpolate (linearly, reported), keep (use the points as they are), "
        "or refuse",
    )
    model: ForecasterConfig = field(default_factory=ForecasterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    split: SplitConfig | None = None  # [split], for data files; None: its defaults
    source: str = ""  # the TOML file this came from (not a key)

    def __post_init__(self) -> None:
        if self.gaps not in GAP_POLICIES:
            raise ValueError(f"gaps {self.gaps!r} is unknown; use one of {', '.join(GAP_POLICIES)}")
        if self.train.loss == "log" and self.model.transform != "log":
            raise ValueError('[train] loss = "log" needs [model] transform = "log" (the series must be positive)')
        self.member_configs()  # raises ValueError naming a member window or cell the model cannot take

    def member_configs(self) -> list[tuple[int, ForecasterConfig]]:
        """(seed, model config) of each ensemble member: the [model] section with the member's window and cell."""
        ens, out = self.ensemble, []
        for k in range(ens.members):
            window = ens.input_windows[k % len(ens.input_windows)] if ens.input_windows else self.model.input_window
            cell = ens.cells[k % len(ens.cells)] if ens.cells else self.model.cell
            out.append((self.seed + k, replace(self.model, input_window=window, cell=cell)))
        return out

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        raw = tomllib.loads(path.read_text())
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "") -> RunConfig:
        sections = {
            "model": ForecasterConfig,
            "train": TrainConfig,
            "ensemble": EnsembleConfig,
            "evaluate": EvalConfig,
            "split": SplitConfig,
        }
        keys = {f.name for f in fields(cls)} - {"source"}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key in sections:
                kwargs[key] = _build(sections[key], value, key)
            elif key in keys:
                kwargs[key] = value
            else:
                raise ValueError(f"{source or 'config'}: unknown key {key!r}; keys: {sorted(keys)}")
        missing = sorted({"name", "dataset"} - set(kwargs))
        if missing:
            raise ValueError(f"{source or 'config'}: {missing} must be set")
        return cls(**kwargs, source=source)


def _build(kind: type, values: dict[str, Any], section: str) -> Any:
    known = {f.name for f in fields(kind)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"[{section}] unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return kind(**values)


SECTIONS: list[tuple[str, type]] = [
    ("", RunConfig),
    ("model", ForecasterConfig),
    ("train", TrainConfig),
    ("ensemble", EnsembleConfig),
    ("evaluate", EvalConfig),
    ("split", SplitConfig),
]


def keys_table() -> list[tuple[str, str, str]]:
    """(key, default, meaning) for every key a config file can set, in file order."""
    rows = []
    for section, kind in SECTIONS:
        for f in fields(kind):
            text = f.metadata.get("doc")
            if text is None:
                continue
            key = f"[{section}] {f.name}" if section else f.name
            rows.append((key, _default(f), text))
    return rows


def _default(f: Field[Any]) -> str:
    if f.default_factory is not MISSING:
        return repr(f.default_factory()).replace("'", '"')
    if f.default is MISSING:
        return "(required)"
    if isinstance(f.default, bool):
        return "true" if f.default else "false"
    if f.default is None:
        return "(inferred)" if f.name in ("freq", "season") else "none"
    return repr(f.default).replace("'", '"')
