"""The model card: what a gatecast ONNX file declares in its metadata, written by training, read by serving.

The ONNX file is the only thing the two halves share at run time: its graph follows `contract.signature`,
its `metadata_props` (all strings, JSON where structured) hold a `ModelCard`. Standard library only.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from contract import quantiles
from contract.covariates import CovariateError, Covariates

# 2 added `covariates`, 3 `conformal.scale_floor` (older servers must not misread its widths), 4 `transform` and
# `members` (an older server would pass values <= 0 to a log model).
# 5 `quantile_levels` (a quantile head: an older server would ignore the graph's third output).
SCHEMA_VERSION = "5"
READABLE_SCHEMAS = (
    "1",
    "2",
    "3",
    "4",
    "5",
)  # schema 1: no covariates; 1 and 2: no floor; 1-3: no transform, one member
TRANSFORMS = ("none", "log")
PREFIX = "gatecast."
BASE_MODEL = "gatecast-base"  # the pretrained model of any frequency (training.pretrain); the server's default

# Keys stored as JSON rather than plain strings.
_JSON_KEYS = ("input_window", "conformal", "metrics", "versions", "dataset", "covariates", "members", "quantile_levels")
# The schema that added each later key: an older file lacks it and means the field's default.
_ADDED_IN = {"covariates": 2, "transform": 4, "members": 4, "quantile_levels": 5}
_INT_KEYS = ("horizon", "seed", "season")


class ContractError(ValueError):
    """The metadata of a model file does not follow the gatecast contract; the message names the key."""


@dataclass(frozen=True)
class Conformal:
    """Split-conformal quantiles of |y - forecast| / scale, per horizon step, on a grid of coverage levels.

    `levels` are fractions in (0, 1), ascending; `quantiles[i][h]` is the score quantile for `levels[i]` at
    step h. The half-width of a level-`a` interval at step h is `quantile(a)[h] * scale`.
    """

    levels: list[float]
    quantiles: list[list[float]]
    calibration_windows: int
    # The unit of the widths is max(scale, scale_floor x the window's spread) (contract.intervals); 0 in cards
    # written before the floor, whose unit is the graph's scale alone.
    scale_floor: float = 0.0

    def half_width_factors(self, level: float) -> list[float]:
        """Score quantile per step for a coverage `level` in (0, 1), linear between grid levels.

        Outside the grid the nearest grid level is used: asking 99.9% of a table that ends at 99.5% gets
        the 99.5% width, which the metadata (and /models) make visible.
        """
        levels = self.levels
        if level <= levels[0]:
            return list(self.quantiles[0])
        if level >= levels[-1]:
            return list(self.quantiles[-1])
        hi = bisect.bisect_left(levels, level)
        lo = hi - 1
        t = (level - levels[lo]) / (levels[hi] - levels[lo])
        return [a + t * (b - a) for a, b in zip(self.quantiles[lo], self.quantiles[hi], strict=True)]


@dataclass(frozen=True)
class ModelCard:
    """Everything the server knows about a model, read from the file's metadata."""

    name: str
    version: str
    cell: str
    input_window: dict[str, int]  # {"min": shortest accepted, "trained": length seen in training}
    horizon: int
    freq: str  # pandas offset alias, e.g. "h", "D", "15min"
    season: int
    target: str
    dataset: dict[str, Any]
    conformal: Conformal
    metrics: dict[str, Any]
    trained_at: str
    seed: int
    versions: dict[str, str]
    sha256: str
    covariates: Covariates = Covariates()
    transform: str = "none"  # "log": the graph forecasts in log units and needs every window value > 0
    # An ensemble's members (seeds seed, seed+1, ...), each {"cell", "input_window", "hidden_size", "patch_len"};
    # the graph returns their median, blended with naive per `metrics`. Empty: one model.
    members: list[dict[str, Any]] = field(default_factory=list)
    # The probabilities of the graph's `quantiles` output (contract.quantiles); empty: a model without a quantile
    # head, whose intervals come from the conformal table alone.
    quantile_levels: list[float] = field(default_factory=list)
    schema: str = SCHEMA_VERSION
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def min_window(self) -> int:
        return int(self.input_window["min"])

    @property
    def trained_window(self) -> int:
        return int(self.input_window["trained"])

    @property
    def any_freq(self) -> bool:
        """Whether the model forecasts at any frequency (its card's freq is empty): it takes the series' own."""
        return not self.freq

    @property
    def positive_only(self) -> bool:
        """Whether every value of a window must be > 0 (a log model)."""
        return self.transform == "log"

    def to_props(self) -> dict[str, str]:
        """Serialise to ONNX metadata_props (str -> str)."""
        data = asdict(self)
        extra = data.pop("extra")
        props: dict[str, str] = {}
        for key, value in data.items():
            if key == "covariates":
                props[PREFIX + key] = json.dumps(self.covariates.to_json(), separators=(",", ":"))
            elif key == "conformal" or key in _JSON_KEYS:
                props[PREFIX + key] = json.dumps(value, separators=(",", ":"))
            else:
                props[PREFIX + key] = str(value)
        props.update(extra)
        return props

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelCard:
        """Parse metadata_props; raise ContractError naming the first missing or malformed key."""
        schema = props.get(PREFIX + "schema")
        if schema is None:
            raise ContractError("metadata key 'gatecast.schema' is missing: not a gatecast model file")
        if schema not in READABLE_SCHEMAS:
            raise ContractError(f"gatecast.schema is {schema!r}; this server reads schemas {list(READABLE_SCHEMAS)}")
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name == "extra":
                continue
            key = PREFIX + name
            if int(schema) < _ADDED_IN.get(name, 1):
                continue  # a key this schema did not have: the field's default
            if key not in props:
                raise ContractError(f"metadata key {key!r} is missing")
            raw = props[key]
            try:
                if name == "conformal":
                    values[name] = Conformal(**json.loads(raw))
                elif name == "covariates":
                    values[name] = Covariates.from_json(json.loads(raw))
                elif name in _JSON_KEYS:
                    values[name] = json.loads(raw)
                elif name in _INT_KEYS:
                    values[name] = int(raw)
                else:
                    values[name] = raw
            except (ValueError, TypeError, CovariateError) as exc:
                raise ContractError(f"metadata key {key!r} is malformed: {exc}") from exc
        values["extra"] = {k: v for k, v in props.items() if not k.startswith(PREFIX)}
        values["schema"] = schema
        card = cls(**values)
        card.check()
        return card

    def check(self) -> None:
        """Raise ContractError when the card is internally inconsistent."""
        if self.cell not in ("lstm", "gru", "rnn") and not (self.cell == "mixed" and self.members):
            raise ContractError(f"gatecast.cell is {self.cell!r}; expected lstm, gru, rnn (mixed: an ensemble)")
        if self.transform not in TRANSFORMS:
            raise ContractError(f"gatecast.transform is {self.transform!r}; expected one of {list(TRANSFORMS)}")
        if not isinstance(self.members, list) or not all(isinstance(m, dict) for m in self.members):
            raise ContractError("gatecast.members must be a list of objects (one per ensemble member)")
        if self.horizon < 1:
            raise ContractError(f"gatecast.horizon is {self.horizon}; expected >= 1")
        if not 1 <= self.min_window <= self.trained_window:
            raise ContractError(f"gatecast.input_window {self.input_window} needs 1 <= min <= trained")
        levels = self.conformal.levels
        if not levels or sorted(levels) != levels or not all(0 < a < 1 for a in levels):
            raise ContractError("gatecast.conformal.levels must be ascending fractions in (0, 1)")
        if len(self.conformal.quantiles) != len(levels):
            raise ContractError("gatecast.conformal.quantiles needs one row per level")
        for row in self.conformal.quantiles:
            if len(row) != self.horizon or not all(math.isfinite(q) and q >= 0 for q in row):
                raise ContractError("gatecast.conformal.quantiles rows need `horizon` finite values >= 0")
        if self.quantile_levels:
            try:
                quantiles.check_levels(self.quantile_levels)
            except ValueError as exc:
                raise ContractError(f"gatecast.quantile_levels: {exc}") from exc
        floor = self.conformal.scale_floor
        if not (isinstance(floor, int | float) and math.isfinite(floor) and floor >= 0):
            raise ContractError(f"gatecast.conformal.scale_floor is {floor!r}; expected a finite number >= 0")
