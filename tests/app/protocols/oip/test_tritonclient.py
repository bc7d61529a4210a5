"""The real tritonclient[http] client against a live gatecast: health, metadata, infer (binary and JSON), repository."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from harness.live import running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_artifact: Path
) -> Iterator[tuple[triton.InferenceServerClient, Path]]:
    repo = tmp_path_factory.mktemp("triton") / "models"
    (repo / "tiny" / "1").mkdir(parents=True)
    shutil.copy(tiny_artifact, repo / "tiny" / "1" / "model.onnx")
    with running_server(repo, GATECAST_MODEL_CONTROL="true") as (url, _):
        client = triton.InferenceServerClient(url=url.removeprefix("http://"))
        try:
            yield client, repo
        finally:
            client.close()


def direct(path: Path, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"values": x})


def test_health_and_metadata(server: tuple[triton.InferenceServerClient, Path]) -> None:
    client, _ = server
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("tiny") and client.is_model_ready("tiny", "1")
    assert not client.is_model_ready("nope")
    meta = client.get_model_metadata("tiny")
    assert meta["inputs"][0]["name"] == "values" and meta["outputs"][0]["shape"] == [-1, 12]
    assert client.get_server_metadata()["name"] == "gatecast"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_equals_onnxruntime(server: tuple[triton.InferenceServerClient, Path], binary: bool) -> None:
    client, repo = server
    x = np.cumsum(np.random.default_rng(0).normal(size=(5, 48)), axis=1).astype(np.float32) + 20
    inp = triton.InferInput("values", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outputs = [
        triton.InferRequestedOutput("forecast", binary_data=binary),
        triton.InferRequestedOutput("scale", binary_data=binary),
    ]
    result = client.infer("tiny", [inp], outputs=outputs, model_version="1")
    want_f, want_s = direct(repo / "tiny" / "1" / "model.onnx", x)
    np.testing.assert_allclose(result.as_numpy("forecast"), want_f, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.as_numpy("scale"), want_s, rtol=1e-5)


def test_infer_errors_reach_the_client_as_messages(server: tuple[triton.InferenceServerClient, Path]) -> None:
    client, _ = server
    x = np.ones((1, 5), dtype=np.float32)
    inp = triton.InferInput("values", [1, 5], "FP32")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException, match="needs at least 30"):
        client.infer("tiny", [inp])
    with pytest.raises(InferenceServerException, match="not loaded"):
        client.infer("nope", [inp])


def test_repository_load_and_unload(server: tuple[triton.InferenceServerClient, Path]) -> None:
    client, repo = server
    shutil.copytree(repo / "tiny" / "1", repo / "tiny" / "3")
    client.load_model("tiny")
    assert client.is_model_ready("tiny", "3")
    index = {(row["name"], row["version"]): row["state"] for row in client.get_model_repository_index()}
    assert index[("tiny", "3")] == "READY"
    client.unload_model("tiny")
    assert not client.is_model_ready("tiny")
    client.load_model("tiny")
    assert client.is_model_ready("tiny")


def test_a_route_gatecast_does_not_serve_reaches_the_client_as_a_message(
    server: tuple[triton.InferenceServerClient, Path],
) -> None:
    """Unmatched routes answer in the protocol's error shape, which tritonclient decodes (it could not decode
    FastAPI's {"detail": ...})."""
    client, _ = server
    with pytest.raises(InferenceServerException, match="no route GET /v2/cudasharedmemory"):
        client.get_cuda_shared_memory_status()


def test_model_config_and_statistics_through_the_client(server: tuple[triton.InferenceServerClient, Path]) -> None:
    client, _ = server
    config = client.get_model_config("tiny")
    assert config["platform"] == "onnxruntime_onnx" and config["max_batch_size"] > 0
    assert config["output"][0] == {"name": "forecast", "data_type": "TYPE_FP32", "dims": [12]}
    assert config["parameters"]["gatecast.min_window"] == {"string_value": "30"}
    before = client.get_inference_statistics("tiny", "1")["model_stats"][0]
    x = np.cumsum(np.random.default_rng(1).normal(size=(3, 40)), axis=1).astype(np.float32) + 20
    inp = triton.InferInput("values", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    for _ in range(2):
        client.infer("tiny", [inp], model_version="1")
    after = client.get_inference_statistics("tiny", "1")["model_stats"][0]
    assert int(after["inference_count"]) - int(before["inference_count"]) == 6  # 2 requests x 3 series
    success = after["inference_stats"]["success"]
    assert int(success["count"]) - int(before["inference_stats"]["success"]["count"]) == 2
    assert int(after["execution_count"]) >= int(before["execution_count"]) + 1
    assert any(int(b["batch_size"]) == 3 for b in after["batch_stats"])
    every = client.get_inference_statistics()
    assert {s["name"] for s in every["model_stats"]} == {"tiny"}
