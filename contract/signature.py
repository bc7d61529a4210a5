"""The graph signature of a gatecast model, declared once as data. More: docs/design.md#contractsignature."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from contract.covariates import NONE, Covariates

FLOAT = "tensor(float)"  # as onnxruntime names the ONNX float32 tensor type
DYNAMIC = ("batch", "time", "steps")  # axes whose length changes from run to run


@dataclass(frozen=True)
class TensorSpec:
    name: str
    type: str
    axes: tuple[str, ...]


INPUT = TensorSpec("values", FLOAT, ("batch", "time"))
PAST = TensorSpec("past_covariates", FLOAT, ("batch", "time", "past"))
FUTURE = TensorSpec("future_covariates", FLOAT, ("batch", "steps", "future"))
CALENDAR = TensorSpec("calendar", FLOAT, ("batch", "steps", "calendar"))
FORECAST = TensorSpec("forecast", FLOAT, ("batch", "horizon"))
SCALE = TensorSpec("scale", FLOAT, ("batch",))
QUANTILES = TensorSpec("quantiles", FLOAT, ("batch", "horizon", "quantiles"))
INPUTS = (INPUT,)  # a univariate model's
OUTPUTS = (FORECAST, SCALE)


def outputs(quantiles: int = 0) -> tuple[TensorSpec, ...]:
    """The graph's outputs: forecast and scale, then the quantiles when the card declares `quantiles` levels."""
    return (*OUTPUTS, QUANTILES) if quantiles else OUTPUTS


def quantile_outputs() -> tuple[TensorSpec, ...]:
    return outputs(quantiles=1)


def inputs(covariates: Covariates = NONE) -> tuple[TensorSpec, ...]:
    """The graph's inputs, in order: values, then one per covariate role that has names."""
    roles = ((PAST, covariates.past), (FUTURE, covariates.future), (CALENDAR, covariates.calendar))
    return (INPUT, *(spec for spec, names in roles if names))


def channels(covariates: Covariates) -> dict[str, int]:
    """Length of each covariate input's last axis."""
    return {
        PAST.axes[-1]: len(covariates.past),
        FUTURE.axes[-1]: len(covariates.future),
        CALENDAR.axes[-1]: 2 * len(covariates.calendar),
    }


class GraphTensor(Protocol):
    """What onnxruntime reports for a graph input or output (`session.get_inputs()` items)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def shape(self) -> Sequence[int | str | None]: ...


def dynamic_axes(covariates: Covariates = NONE, quantiles: bool = False) -> dict[str, dict[int, str]]:
    """For torch.onnx.export: every axis named in DYNAMIC, by tensor."""
    specs = (*inputs(covariates), *outputs(int(quantiles)))
    return {spec.name: {i: axis for i, axis in enumerate(spec.axes) if axis in DYNAMIC} for spec in specs}


def mismatches(
    graph_inputs: Sequence[GraphTensor],
    graph_outputs: Sequence[GraphTensor],
    horizon: int | None = None,
    covariates: Covariates = NONE,
    quantiles: int = 0,
) -> list[str]:
    """Every way the graph's inputs and outputs differ from the signature of a model with these covariates
    (empty when they agree).

    A fixed length on a dynamic axis is a mismatch: a graph exported with a fixed time axis runs at its
    trained length and fails at every other length the card allows.
    """
    problems = []
    fixed = {"horizon": horizon, "quantiles": quantiles or None, **channels(covariates)}
    for kind, want, got in (("input", inputs(covariates), graph_inputs), ("output", outputs(quantiles), graph_outputs)):
        names = [t.name for t in got]
        if names != [s.name for s in want]:
            problems.append(f"{kind}s are {names}; the contract wants {[s.name for s in want]}")
            continue
        for spec, tensor in zip(want, got, strict=True):
            problems += _tensor_mismatches(kind, spec, tensor, fixed)
    return problems


def _tensor_mismatches(kind: str, spec: TensorSpec, tensor: GraphTensor, fixed: dict[str, int | None]) -> list[str]:
    problems = []
    if tensor.type != spec.type:
        problems.append(f"{kind} {spec.name!r} is {tensor.type}; the contract wants {spec.type} (float32)")
    shape = list(tensor.shape)
    if len(shape) != len(spec.axes):
        problems.append(f"{kind} {spec.name!r} has shape {shape}; the contract wants {list(spec.axes)}")
        return problems
    for axis, length in zip(spec.axes, shape, strict=True):
        if axis in DYNAMIC and isinstance(length, int):
            problems.append(f"{kind} {spec.name!r} fixes axis {axis!r} to {length}; it must be dynamic")
        want = fixed.get(axis)
        if want is not None and isinstance(length, int) and length != want:
            problems.append(f"{kind} {spec.name!r} has {axis} {length}; the card says {want}")
    return problems
