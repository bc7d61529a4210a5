"""A run's configuration: one TOML file under training/configs/ -> `RunConfig`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from training.model import ForecasterConfig


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5  # epochs without a better validation loss before stopping
    train_stride: int = 1  # distance between consecutive training windows
    max_batches_per_epoch: int = 0  # 0: a full pass; else a random subset (large global data sets)
    grad_clip: float = 1.0


@dataclass
class EvalConfig:
    stride: int = 1  # distance between test forecast origins (every origin when 1)
    stat_model: str = "AutoETS"  # statsforecast model used as the strong statistical baseline
    plot_windows: int = 4


@dataclass
class RunConfig:
    name: str
    dataset: str
    version: str = "1"
    seed: int = 0
    season: int | None = None  # MASE season; the dataset's when absent
    freq: str | None = None  # pandas alias; the dataset's when absent
    model: ForecasterConfig = field(default_factory=ForecasterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    source: str = ""

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        raw = tomllib.loads(path.read_text())
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "") -> RunConfig:
        sections = {"model": ForecasterConfig, "train": TrainConfig, "evaluate": EvalConfig}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key in sections:
                kwargs[key] = _build(sections[key], value, key)
            elif key in {f.name for f in fields(cls)}:
                kwargs[key] = value
            else:
                raise ValueError(f"{source or 'config'}: unknown key {key!r}")
        return cls(**kwargs, source=source)


def _build(kind: type, values: dict[str, Any], section: str) -> Any:
    known = {f.name for f in fields(kind)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"[{section}] unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return kind(**values)
