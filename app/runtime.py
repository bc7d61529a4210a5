"""onnxruntime sessions: provider choice, thread counts, and which nodes fell back from CUDA to CPU."""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from app.errors import ModelLoadError
from contract import signature
from contract.card import ContractError, ModelCard
from contract.covariates import probe_covariates
from contract.windows import PROBE_BATCH_SIZES, probe_batch, probe_lengths

log = logging.getLogger("gatecast.runtime")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_OUTPUT_NAMES = [spec.name for spec in signature.OUTPUTS]
_QUANTILE_OUTPUT_NAMES = [spec.name for spec in signature.quantile_outputs()]


def choose_providers(setting: str, available: list[str] | None = None) -> list[str]:
    """`auto`: CUDA when onnxruntime-gpu sees a GPU, else CPU; `cpu`; `cuda` (an error when not present)."""
    available = available if available is not None else ort.get_available_providers()
    if setting == "cpu":
        return [CPU]
    if setting == "cuda":
        if CUDA not in available:
            raise ModelLoadError(
                "provider 'cuda' was asked for but onnxruntime has no CUDAExecutionProvider "
                f"(available: {available}); install onnxruntime-gpu on a CUDA machine or set GATECAST_PROVIDER=auto"
            )
        return [CUDA, CPU]
    return [CUDA, CPU] if CUDA in available else [CPU]


@dataclass
class Runtime:
    """One onnxruntime session for one model file, with what it declares."""

    session: ort.InferenceSession
    card: ModelCard
    provider: str  # the provider actually in use (first of session.get_providers())
    cpu_fallback_nodes: list[str]

    def run(self, values: np.ndarray, *covariates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, T) float32 values and the card's covariate inputs (contract.signature order) -> forecast (B, H),
        scale (B,). A model with a quantile head answers (B, H, 1 + Q): the forecast, then its Q quantiles, so the
        batcher carries them as one array."""
        if covariates:
            feed = dict(zip(self.input_names, (values, *covariates), strict=True))
        else:
            feed = {signature.INPUT.name: values}
        if self.card.quantile_levels:
            forecast, scale, quantiles = self.session.run(_QUANTILE_OUTPUT_NAMES, feed)
            return np.concatenate([forecast[:, :, None], quantiles], axis=2), scale
        forecast, scale = self.session.run(_OUTPUT_NAMES, feed)
        return forecast, scale

    @functools.cached_property
    def input_names(self) -> list[str]:
        return [spec.name for spec in signature.inputs(self.card.covariates)]

    def probe(self, batch: int, length: int) -> tuple[np.ndarray, ...]:
        """Inputs for a warm-up run: values and, for a model with covariates, covariates of the declared shapes."""
        card = self.card
        return (probe_batch(batch, length), *probe_covariates(card.covariates, batch, length, card.horizon))


def open_session(model_bytes: bytes, providers: list[str], threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Threads spin-wait by default, which burns the cores other workers need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model_bytes, sess_options=options, providers=providers)


def load_runtime(model_bytes: bytes, providers: list[str], threads: int, largest_batch: int = 1) -> Runtime:
    """Open, check the signature and metadata, and warm up over the declared range and up to the largest
    batch the server will run. Raises ModelLoadError."""
    try:
        session = open_session(model_bytes, providers, threads)
    except Exception as exc:  # onnxruntime raises its own (unexported) types for corrupt files
        raise ModelLoadError(f"onnxruntime could not load the file: {exc}") from exc
    try:
        card = ModelCard.from_props(dict(session.get_modelmeta().custom_metadata_map))
    except ContractError as exc:
        raise ModelLoadError(str(exc)) from exc
    _check_signature(session, card)
    provider = session.get_providers()[0]
    fallback = cpu_fallback_nodes(model_bytes, providers, threads, card) if provider == CUDA else []
    runtime = Runtime(session, card, provider, fallback)
    warm_up(runtime, largest_batch)
    return runtime


def _check_signature(session: ort.InferenceSession, card: ModelCard) -> None:
    problems = signature.mismatches(
        session.get_inputs(), session.get_outputs(), card.horizon, card.covariates, len(card.quantile_levels)
    )
    if problems:
        raise ModelLoadError("the graph does not follow the gatecast signature: " + "; ".join(problems))


def warm_up(runtime: Runtime, largest_batch: int = 1) -> None:
    """Run every length of the declared window range at several batch sizes; refuse a graph that fails,
    answers in the wrong shape, gives non-finite numbers, or lets one row of a batch change another.

    The largest batch at the trained length runs too: onnxruntime's memory arena keeps what its largest run
    needed, so the session reaches its full size now, before the worker sizes its memory budget."""
    card = runtime.card
    problems = []
    for length in probe_lengths(card.min_window, card.trained_window):
        sizes = set(PROBE_BATCH_SIZES) | ({largest_batch} if length == card.trained_window else set())
        for batch in sorted(sizes):
            x = runtime.probe(batch, length)
            try:
                forecast, scale = runtime.run(*x)
            except Exception as exc:
                problems.append(f"batch {batch} x {length} steps: the run failed ({exc})")
                continue
            want = (
                (batch, card.horizon, 1 + len(card.quantile_levels)) if card.quantile_levels else (batch, card.horizon)
            )
            if forecast.shape != want or scale.shape != (batch,):
                problems.append(
                    f"batch {batch} x {length} steps: forecast {forecast.shape} and scale {scale.shape}, "
                    f"the card says horizon {card.horizon}"
                )
            elif not (np.isfinite(forecast).all() and np.isfinite(scale).all()):
                problems.append(f"batch {batch} x {length} steps: non-finite output")
            elif (
                card.quantile_levels and not (np.diff(forecast[..., 1:], axis=-1) >= -1e-4 * scale[:, None, None]).all()
            ):
                problems.append(f"batch {batch} x {length} steps: the quantiles are not ascending")
            elif batch > 1:
                alone, _ = runtime.run(*(a[-1:] for a in x))
                if not np.allclose(alone[0], forecast[-1], rtol=1e-4, atol=1e-4 * float(scale[-1])):
                    problems.append(f"batch {batch} x {length} steps: a row's forecast depends on its batch")
    if problems:
        raise ModelLoadError("the warm-up over the declared input range failed: " + "; ".join(problems[:4]))


def cpu_fallback_nodes(model_bytes: bytes, providers: list[str], threads: int, card: ModelCard) -> list[str]:
    """Nodes that ran on the CPU provider although CUDA was asked for, read from one profiled run."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.gettempdir(), "gatecast-placement")
    session = ort.InferenceSession(model_bytes, sess_options=options, providers=providers)
    names = [spec.name for spec in signature.inputs(card.covariates)]
    probe = (
        probe_batch(1, card.trained_window),
        *probe_covariates(card.covariates, 1, card.trained_window, card.horizon),
    )
    session.run(None, dict(zip(names, probe, strict=True)))
    path = session.end_profiling()
    try:
        return nodes_by_provider(path).get(CPU, [])
    finally:
        os.unlink(path)


def nodes_by_provider(profile_path: str) -> dict[str, list[str]]:
    """From an onnxruntime profile: provider -> names of the nodes it ran (op type in brackets)."""
    with open(profile_path) as fh:
        events = json.load(fh)
    placed: dict[str, set[str]] = {}
    for event in events:
        args = event.get("args", {})
        if event.get("cat") == "Node" and "provider" in args:
            name = event["name"].removesuffix("_kernel_time").removesuffix("_fence_before").removesuffix("_fence_after")
            placed.setdefault(args["provider"], set()).add(f"{name} [{args.get('op_name', '?')}]")
    return {provider: sorted(nodes) for provider, nodes in placed.items()}
