"""The graph signature of a gatecast model, declared once as data.

    input  `values`   float32 [batch, time]     raw observations, oldest first
    output `forecast` float32 [batch, horizon]  forecasts in the units of the input
    output `scale`    float32 [batch]           the window's scale, the unit of the conformal intervals

`batch` and `time` vary at run time; `horizon` is fixed and equals the card's. The exporter takes its
names and dynamic axes from here (`dynamic_axes`), and both the export validation and the server's load
check compare a graph with `mismatches`, so neither restates the signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

FLOAT = "tensor(float)"  # as onnxruntime names the ONNX float32 tensor type
DYNAMIC = ("batch", "time")  # axes whose length changes from run to run


@dataclass(frozen=True)
class TensorSpec:
    name: str
    type: str
    axes: tuple[str, ...]


INPUT = TensorSpec("values", FLOAT, ("batch", "time"))
FORECAST = TensorSpec("forecast", FLOAT, ("batch", "horizon"))
SCALE = TensorSpec("scale", FLOAT, ("batch",))
INPUTS = (INPUT,)
OUTPUTS = (FORECAST, SCALE)


class GraphTensor(Protocol):
    """What onnxruntime reports for a graph input or output (`session.get_inputs()` items)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def shape(self) -> Sequence[int | str | None]: ...


def dynamic_axes() -> dict[str, dict[int, str]]:
    """For torch.onnx.export: every axis named in DYNAMIC, by tensor."""
    return {spec.name: {i: axis for i, axis in enumerate(spec.axes) if axis in DYNAMIC} for spec in (*INPUTS, *OUTPUTS)}


def mismatches(inputs: Sequence[GraphTensor], outputs: Sequence[GraphTensor], horizon: int | None = None) -> list[str]:
    """Every way the graph's inputs and outputs differ from the signature (empty when they agree).

    A fixed length on a dynamic axis is a mismatch: a graph exported with a fixed time axis runs at its
    trained length and fails at every other length the card allows.
    """
    problems = []
    for kind, want, got in (("input", INPUTS, inputs), ("output", OUTPUTS, outputs)):
        names = [t.name for t in got]
        if names != [s.name for s in want]:
            problems.append(f"{kind}s are {names}; the contract wants {[s.name for s in want]}")
            continue
        for spec, tensor in zip(want, got, strict=True):
            problems += _tensor_mismatches(kind, spec, tensor, horizon)
    return problems


def _tensor_mismatches(kind: str, spec: TensorSpec, tensor: GraphTensor, horizon: int | None) -> list[str]:
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
        if axis == "horizon" and horizon is not None and isinstance(length, int) and length != horizon:
            problems.append(f"{kind} {spec.name!r} has horizon {length}; the card says {horizon}")
    return problems
