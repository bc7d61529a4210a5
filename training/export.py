"""ONNX export with the metadata contract, validated against PyTorch in onnxruntime.

What an export declares (names, axes, opset, tolerance) is data in `ExportSpec`, whose names and dynamic
axes come from `contract.signature`; validation checks the graph with the same `signature.mismatches` the
server runs at load, compares it with PyTorch over `contract.windows`' probe lengths and batch sizes, and
raises once, listing every mismatch.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from contract import signature
from contract.card import Conformal, ModelCard
from contract.windows import PROBE_BATCH_SIZES, probe_lengths
from training.artifacts import CONFIG_KEY
from training.model import Forecaster


@dataclass(frozen=True)
class ExportSpec:
    opset: int = 17
    input_names: tuple[str, ...] = tuple(t.name for t in signature.INPUTS)
    output_names: tuple[str, ...] = tuple(t.name for t in signature.OUTPUTS)
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=signature.dynamic_axes)
    batch_sizes: tuple[int, ...] = PROBE_BATCH_SIZES
    rtol: float = 1e-4
    atol: float = 1e-4  # on the forecast divided by the window's scale


class ExportValidationError(RuntimeError):
    """The ONNX file disagrees with PyTorch; `mismatches` lists every failed check."""

    def __init__(self, mismatches: list[str]) -> None:
        self.mismatches = mismatches
        super().__init__(f"{len(mismatches)} export check(s) failed:\n  " + "\n  ".join(mismatches))


def weights_sha256(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_onnx(model: Forecaster, path: Path, spec: ExportSpec = ExportSpec()) -> None:
    """Write the graph (no metadata yet). Uses the TorchScript exporter: it emits native LSTM/GRU/RNN ops
    with `linear_before_reset=1` for GRU, and keeps the time axis dynamic for every cell (the dynamo
    exporter in torch 2.13 specialises it for nn.RNN)."""
    model = model.cpu().eval()
    example = torch.randn(2, model.config.input_window)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=list(spec.input_names),
            output_names=list(spec.output_names),
            dynamic_axes=spec.dynamic_axes,
            opset_version=spec.opset,
        )


def attach_metadata(path: Path, card: ModelCard) -> None:
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in card.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"gatecast forecaster {card.name}@{card.version} ({card.cell})"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def validation_windows(
    model: Forecaster, real: np.ndarray | None, spec: ExportSpec, seed: int = 0
) -> list[tuple[str, np.ndarray]]:
    """Named input batches: random walks at several offsets and magnitudes, real windows, several lengths."""
    rng = np.random.default_rng(seed)
    cfg = model.config
    # The declared range, and beyond it: a longer window must still work in the graph (training evaluates so).
    lengths = [*probe_lengths(cfg.min_window, cfg.input_window), 2 * cfg.input_window]
    cases: list[tuple[str, np.ndarray]] = []
    for batch in spec.batch_sizes:
        for length in lengths:
            walk = np.cumsum(rng.normal(size=(batch, length)), axis=1)
            cases.append((f"random-walk b={batch} t={length}", walk))
            cases.append((f"offset+scale b={batch} t={length}", 1e4 + 250.0 * walk))
            if real is not None and len(real) and real.shape[1] >= length:
                picks = rng.integers(0, len(real), size=batch)
                cases.append((f"real b={batch} t={length}", real[picks, -length:]))
    cases.append(("constant window b=1", np.full((1, cfg.input_window), 7.5)))
    return [(name, x.astype(np.float32)) for name, x in cases]


def validate(model: Forecaster, path: Path, real: np.ndarray | None = None, spec: ExportSpec = ExportSpec()) -> int:
    """Compare onnxruntime with PyTorch on every validation window; return the number of checks."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    mismatches = [
        f"signature: {problem}"
        for problem in signature.mismatches(session.get_inputs(), session.get_outputs(), model.config.horizon)
    ]
    cases = validation_windows(model, real, spec)
    for name, x in cases:
        with torch.no_grad():
            want_f, want_s = (t.numpy() for t in model(torch.from_numpy(x)))
        got_f, got_s = session.run(None, {signature.INPUT.name: x})
        if got_f.shape != want_f.shape:
            mismatches.append(f"{name}: forecast shape {got_f.shape}, PyTorch {want_f.shape}")
            continue
        # Compare on the window's scale so a 1e4-level series and a unit one share one tolerance.
        err = np.abs(got_f - want_f) / want_s[:, None]
        bound = spec.atol + spec.rtol * np.abs(want_f) / want_s[:, None]
        if not np.all(np.isfinite(got_f)) or np.any(err > bound):
            mismatches.append(f"{name}: forecast max scaled error {float(np.nanmax(err)):.2e} over tolerance")
        if not np.allclose(got_s, want_s, rtol=spec.rtol, atol=0):
            mismatches.append(f"{name}: scale differs (max rel {float(np.max(np.abs(got_s / want_s - 1))):.2e})")
    if mismatches:
        raise ExportValidationError(mismatches)
    return len(cases)


def build_card(
    model: Forecaster,
    name: str,
    version: str,
    freq: str,
    season: int,
    target: str,
    dataset: dict[str, Any],
    cal: Conformal,
    metrics: dict[str, Any],
    seed: int,
    spec: ExportSpec = ExportSpec(),
    config: str | None = None,
) -> ModelCard:
    """The card of an export; `config` names the run's config file (training.artifacts reads it back)."""
    cfg = model.config
    return ModelCard(
        name=name,
        version=version,
        cell=cfg.cell,
        input_window={"min": cfg.min_window, "trained": cfg.input_window},
        horizon=cfg.horizon,
        freq=freq,
        season=season,
        target=target,
        dataset=dataset,
        conformal=cal,
        metrics=metrics,
        trained_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
        seed=seed,
        versions={
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "opset": str(spec.opset),
            "onnxruntime": ort.__version__,
        },
        sha256=weights_sha256(model),
        extra={"training.model_config": json.dumps(cfg.to_dict()), **({CONFIG_KEY: config} if config else {})},
    )
