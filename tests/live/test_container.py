"""The images, built and run with podman: the server's (forecast, metrics, non-root, graceful SIGTERM) and the
trainer's (a fine-tuning from the checkpoint it carries).

Needs podman and a local python:3.11-slim (`source ../shared/tools/container-env.sh`, as .ci/run does);
skips otherwise. GATECAST_TEST_IMAGE and GATECAST_TEST_TRAINER_IMAGE name already built images to skip a build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tgrpc

from harness.live import free_port, wait_ready
from tests.live.test_live_server import metric_value

ROOT = Path(__file__).resolve().parents[2]
CONF = Path("/var/tmp/container-env/containers.conf")


def _podman_ready() -> bool:
    if shutil.which("podman") is None:
        return False
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONF))}
    probe = subprocess.run(["podman", "image", "exists", "docker.io/library/python:3.11-slim"], env=env)
    return probe.returncode == 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not _podman_ready(),
        reason="podman or the local python:3.11-slim image is missing "
        "(source ../shared/tools/container-env.sh as root)",
    ),
]


def podman(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONF))}
    return subprocess.run(["podman", *args], env=env, check=check, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    name = os.environ.get("GATECAST_TEST_IMAGE")
    if name:
        return name
    name = "localhost/gatecast:test"
    podman("build", "--pull=never", "--format", "docker", "-t", name, str(ROOT))
    return name


GRPC_PORTS: dict[str, int] = {}  # container name -> the host port of its gRPC server


@pytest.fixture
def container(image: str) -> Iterator[tuple[str, str]]:
    port, grpc_port = free_port(), free_port()
    name = f"gatecast-test-{port}"
    podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", "-p", f"127.0.0.1:{grpc_port}:8001", image)
    url = f"http://127.0.0.1:{port}"
    GRPC_PORTS[name] = grpc_port
    try:
        try:
            wait_ready(url, timeout=90)
        except TimeoutError:
            pytest.fail("container never became ready:\n" + podman("logs", name, check=False).stdout)
        yield name, url
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def test_image_has_no_torch_and_is_reported(image: str) -> None:
    size = int(podman("image", "inspect", image, "--format", "{{.Size}}").stdout.strip())
    print(f"image size: {size / 1e6:.0f} MB")
    probe = podman(
        "run",
        "--rm",
        "--entrypoint",
        "python",
        image,
        "-c",
        "import importlib.util as u; print(u.find_spec('torch') is None)",
    )
    assert probe.stdout.strip() == "True"


def test_container_serves_forecasts_and_metrics_as_non_root(container: tuple[str, str]) -> None:
    name, url = container
    values = (30 + 5 * np.sin(np.arange(168) * 2 * np.pi / 24)).round(3).tolist()
    payload = {"model": "etth1-lstm", "level": [80], "series": [{"id": "a", "values": values}]}
    r = httpx.post(f"{url}/forecast", json=payload)
    assert r.status_code == 200, r.text
    session = ort.InferenceSession(str(ROOT / "models/etth1-lstm/1/model.onnx"), providers=["CPUExecutionProvider"])
    want = session.run(None, {"values": np.asarray([values], dtype=np.float32)})[0][0]
    np.testing.assert_allclose(r.json()["forecasts"][0]["mean"], want, rtol=1e-5)
    metrics = httpx.get(f"{url}/metrics").text
    assert 'gatecast_series_forecast_total{model="etth1-lstm",version="1"} 1.0' in metrics
    with tgrpc.InferenceServerClient(f"127.0.0.1:{GRPC_PORTS[name]}") as client:  # OIP v2 over gRPC, port 8001
        values_input = tgrpc.InferInput("values", [1, 168], "FP32")
        values_input.set_data_from_numpy(np.asarray([values], dtype=np.float32))
        over_grpc = client.infer("etth1-lstm", [values_input]).as_numpy("forecast")[0]
    np.testing.assert_allclose(over_grpc, want, rtol=1e-5)
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
    health = podman("inspect", name, "--format", "{{json .Config.Healthcheck}}").stdout
    assert "/v2/health/ready" in health


def test_sigterm_drains_in_flight_requests_then_exits(container: tuple[str, str]) -> None:
    name, url = container
    # A request heavy enough (5000 series) to still be in flight when SIGTERM lands.
    body = json.dumps(
        {
            "model": "etth1-lstm",
            "series": [{"id": str(i), "values": [float(i % 7 + j % 24) for j in range(168)]} for i in range(5000)],
        }
    )
    result: dict[str, object] = {}

    def post() -> None:
        try:
            result["status"] = httpx.post(
                f"{url}/forecast", content=body, timeout=60, headers={"content-type": "application/json"}
            ).status_code
        except httpx.HTTPError as exc:
            result["error"] = repr(exc)

    worker = threading.Thread(target=post)
    worker.start()
    deadline = time.monotonic() + 30
    while metric_value(httpx.get(f"{url}/metrics").text, "gatecast_requests_in_flight") < 1:
        assert worker.is_alive() and time.monotonic() < deadline, "the request never showed as in flight"
        time.sleep(0.02)
    podman("kill", "--signal", "TERM", name)
    podman("wait", name, timeout=30)  # within the 30 s grace period, or this raises
    worker.join(timeout=60)
    assert result.get("status") == 200, result
    state = json.loads(podman("inspect", name, "--format", "{{json .State}}").stdout)
    assert state["ExitCode"] == 0, state
    logs = podman("logs", name).stdout + podman("logs", name).stderr
    assert "Finished server process" in logs


def test_streams_live_in_the_state_volume_under_a_read_only_root(image: str) -> None:
    """As compose runs it (read-only root, a tmpfs /tmp): streams go to /var/lib/gatecast and outlive a restart."""
    port = free_port()
    name = f"gatecast-test-{port}"
    podman("run", "-d", "--read-only", "--tmpfs", "/tmp", "--name", name, "-p", f"127.0.0.1:{port}:8000", image)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout=90)
        assert httpx.put(f"{url}/streams/tank", json={"model": "etth1-lstm"}).status_code == 201
        values = (30 + 5 * np.sin(np.arange(170) * 2 * np.pi / 24)).round(3).tolist()
        r = httpx.post(f"{url}/streams/tank/points", json={"values": values, "backfill": True})
        assert r.status_code == 200 and r.json()["forecast"] is not None, r.text
        podman("restart", "-t", "30", name)
        wait_ready(url, timeout=90)
        kept = httpx.get(f"{url}/streams/tank").json()
        assert kept["points"] == 170 and kept["forecast"] == r.json()["forecast"]
    except TimeoutError:
        pytest.fail("container never became ready:\n" + podman("logs", name, check=False).stdout)
    finally:
        podman("rm", "-f", "-v", "-t", "0", name, check=False)


@pytest.fixture(scope="module")
def trainer_image() -> str:
    """Dockerfile.trainer, built with torch's CPU wheel from /opt/wheels (its default index is out of reach here)."""
    name = os.environ.get("GATECAST_TEST_TRAINER_IMAGE")
    if name:
        return name
    if not list(Path("/opt/wheels").glob("torch-2.13.0+cpu-*.whl")):
        pytest.skip("no torch 2.13.0 CPU wheel in /opt/wheels to build the trainer image with")
    name = "localhost/gatecast-trainer:test"
    build = ["build", "--pull=never", "--format", "docker", "-f", str(ROOT / "Dockerfile.trainer"), "-t", name]
    podman(*build, "--build-arg", "TORCH_INDEX=", "--volume", "/opt/wheels:/wheels:ro", str(ROOT), timeout=1800)
    return name


def test_the_trainer_image_fine_tunes_a_committed_model_from_the_checkpoint_it_carries(trainer_image: str) -> None:
    port = free_port()
    name = f"gatecast-trainer-test-{port}"
    podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", trainer_image)
    url = f"http://127.0.0.1:{port}"
    series = {"y": [round(20 + 5 * np.sin(i / 3.8), 4) for i in range(400)], "sizes": [400]}
    try:
        try:
            wait_ready(url, timeout=240)
        except TimeoutError:
            pytest.fail("the trainer container never became ready:\n" + podman("logs", name, check=False).stdout)
        tuned = httpx.post(
            f"{url}/v2/finetune",
            json={"model": "etth1-gru", "finetune_steps": 5, "output_model_id": "in-image", "series": series},
            timeout=600,
        )
        assert tuned.status_code == 200, tuned.text + podman("logs", name, check=False).stdout[-3000:]
        forecast = httpx.post(
            f"{url}/v2/forecast", json={"finetuned_model_id": "in-image", "h": 6, "series": series}, timeout=60
        )
        assert forecast.status_code == 200 and len(forecast.json()["mean"]) == 6, forecast.text
        assert forecast.headers["gatecast-model"].startswith("in-image@")
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
