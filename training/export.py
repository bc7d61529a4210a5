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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from contract import signature
from contract.card import Conformal, ModelCard
from contract.covariates import Covariates, probe_covariates
from contract.windows import PROBE_BATCH_SIZES, probe_lengths
from training.artifacts import CONFIG_KEY
from training.ensemble import AnyForecaster, Ensemble
from training.train import WindowSet


@dataclass(frozen=True)
class ExportSpec:
    """How to export and validate; the graph's input names and axes come from contract.signature for the
    model's covariates."""

    opset: int = 17
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


def export_onnx(model: AnyForecaster, path: Path, spec: ExportSpec = ExportSpec()) -> None:
    """Write the graph (no metadata yet). Uses the TorchScript exporter: it emits native LSTM/GRU/RNN ops
    with `linear_before_reset=1` for GRU, and keeps the time axis dynamic for every cell (the dynamo
    exporter in torch 2.13 specialises it for nn.RNN)."""
    model = model.cpu().eval()
    cfg = model.config
    rng = np.random.default_rng(0)
    example = probe_inputs(cfg.covariates, rng.normal(size=(2, cfg.input_window)), cfg.horizon, rng)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(torch.from_numpy(a) for a in example.values()),
            str(path),
            dynamo=False,
            input_names=list(example),
            output_names=[t.name for t in signature.OUTPUTS],
            dynamic_axes=signature.dynamic_axes(cfg.covariates),
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


Inputs = dict[str, np.ndarray]  # graph input name -> float32 batch


def probe_inputs(cov: Covariates, values: np.ndarray, horizon: int, rng: np.random.Generator) -> Inputs:
    """`values` with probe covariates of the declared shapes (contract.covariates.probe_covariates)."""
    batch, length = values.shape
    covariates = probe_covariates(cov, batch, length, horizon, seed=int(rng.integers(0, 2**31)))
    names = [spec.name for spec in signature.inputs(cov)]
    return dict(zip(names, [values.astype(np.float32), *covariates], strict=True))


def validation_windows(
    model: AnyForecaster, real: WindowSet | None, spec: ExportSpec, seed: int = 0
) -> list[tuple[str, Inputs]]:
    """Named input batches: random walks at several offsets and magnitudes, real windows, several lengths."""
    rng = np.random.default_rng(seed)
    cfg = model.config
    cov, horizon = cfg.covariates, cfg.horizon
    # The declared range, and beyond it: a longer window must still work in the graph (training evaluates so).
    lengths = [*probe_lengths(cfg.min_window, cfg.input_window), 2 * cfg.input_window]
    cases: list[tuple[str, Inputs]] = []
    for batch in spec.batch_sizes:
        for length in lengths:
            walk = np.cumsum(rng.normal(size=(batch, length)), axis=1)
            cases.append((f"random-walk b={batch} t={length}", probe_inputs(cov, walk, horizon, rng)))
            cases.append((f"offset+scale b={batch} t={length}", probe_inputs(cov, 1e4 + 250.0 * walk, horizon, rng)))
            if real is not None and len(real) and real.x.shape[1] >= length:
                picks = rng.integers(0, len(real), size=batch)
                cases.append((f"real b={batch} t={length}", _cut(real, cov, picks, length)))
    constant = probe_inputs(cov, np.full((1, cfg.input_window), 7.5), horizon, rng)
    for name in constant:  # every channel constant: each normalisation meets its floor
        constant[name] = np.full_like(constant[name], 7.5) if name != signature.CALENDAR.name else constant[name]
    cases.append(("constant window b=1", constant))
    return cases


def _cut(real: WindowSet, cov: Covariates, picks: np.ndarray, length: int) -> Inputs:
    """Real windows cut to their last `length` steps (covariates that reach ahead keep their horizon)."""
    full = real.x.shape[1]
    out = {signature.INPUT.name: real.x[picks, -length:]}
    for spec, array in zip(signature.inputs(cov)[1:], real.covariates, strict=True):
        out[spec.name] = array[picks, full - length : array.shape[1]]
    return {k: v.astype(np.float32) for k, v in out.items()}


def validate(model: AnyForecaster, path: Path, real: WindowSet | None = None, spec: ExportSpec = ExportSpec()) -> int:
    """Compare onnxruntime with PyTorch on every validation window; return the number of checks."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    cfg = model.config
    mismatches = [
        f"signature: {problem}"
        for problem in signature.mismatches(session.get_inputs(), session.get_outputs(), cfg.horizon, cfg.covariates)
    ]
    cases = validation_windows(model, real, spec)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the reference sums in one order, whatever thread count the caller left set
    try:
        references = []
        for _, inputs in cases:
            with torch.no_grad():
                references.append(tuple(t.numpy() for t in model(*(torch.from_numpy(a) for a in inputs.values()))))
    finally:
        torch.set_num_threads(threads)
    for (name, inputs), (want_f, want_s) in zip(cases, references, strict=True):
        got_f, got_s = session.run(None, inputs)
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
    model: AnyForecaster,
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
    ensemble = isinstance(model, Ensemble)
    return ModelCard(
        name=name,
        version=version,
        cell=model.cell if ensemble else cfg.cell,
        input_window={"min": cfg.min_window, "trained": cfg.input_window},
        horizon=cfg.horizon,
        freq=freq,
        season=season,
        target=target,
        dataset=dataset,
        conformal=cal,
        metrics=metrics,
        covariates=cfg.covariates,
        transform=cfg.transform,
        members=model.describe() if ensemble else [],
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
