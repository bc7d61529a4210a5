"""onnxruntime sessions: placement report, signature checks, and the CUDA provider when a GPU is present."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from app.runtime import CPU, CUDA, load_runtime, nodes_by_provider


def test_placement_report_reads_an_onnxruntime_profile(tiny_artifact: Path) -> None:
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "p")
    session = ort.InferenceSession(str(tiny_artifact), options, providers=[CPU])
    session.run(None, {"values": np.ones((1, 48), np.float32)})
    placed = nodes_by_provider(session.end_profiling())
    assert set(placed) == {CPU}
    assert any("[GRU]" in node for node in placed[CPU])


def test_load_runtime_warms_up_and_reports_the_provider(tiny_artifact: Path) -> None:
    runtime = load_runtime(tiny_artifact.read_bytes(), [CPU], threads=1)
    assert runtime.provider == CPU and runtime.cpu_fallback_nodes == []
    forecast, scale = runtime.run(np.ones((3, 40), np.float32))
    assert forecast.shape == (3, runtime.card.horizon) and scale.shape == (3,)


@pytest.mark.gpu
@pytest.mark.skipif(
    CUDA not in ort.get_available_providers(), reason="no CUDAExecutionProvider (onnxruntime-gpu and a GPU)"
)
def test_cuda_provider_matches_cpu_and_reports_fallback(tiny_artifact: Path) -> None:
    data = tiny_artifact.read_bytes()
    gpu = load_runtime(data, [CUDA, CPU], threads=1)
    cpu = load_runtime(data, [CPU], threads=1)
    assert gpu.provider == CUDA
    # Each fallback is named "node [OpType]", and a model of RNN ops with GRU written linear_before_reset=1
    # must keep its recurrent cell on the GPU.
    assert all(re.fullmatch(r".+ \[\w+\]", node) for node in gpu.cpu_fallback_nodes), gpu.cpu_fallback_nodes
    assert not [node for node in gpu.cpu_fallback_nodes if node.endswith("[GRU]")], gpu.cpu_fallback_nodes
    x = np.cumsum(np.random.default_rng(0).normal(size=(64, 48)), axis=1).astype(np.float32)
    np.testing.assert_allclose(gpu.run(x)[0], cpu.run(x)[0], rtol=1e-3, atol=1e-3)
