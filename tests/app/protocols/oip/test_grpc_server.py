"""OIP v2 over gRPC: the real tritonclient.grpc against `gatecast serve`, the generated code, the message
definitions against the ones tritonclient ships, and the guards (keys, limits, memory, errors, metrics).

gatecast's generated modules are never imported here: they define the same protobuf messages as
tritonclient's, and one process cannot hold both. The server runs in its own process.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from google.protobuf import descriptor_pb2, json_format
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from contract.covariates import calendar_matrix
from harness.live import free_port, running_server, wait_ready

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[4]
PROTO = Path("app/protocols/oip/inference.proto")
GENERATED = ["inference_pb2.py", "inference_pb2.pyi"]  # the server registers its own handlers (raw bytes in)
KEY = {"authorization": "Bearer k-1"}


def protoc(out: Path, *flags: str) -> None:
    """grpcio-tools' protoc, as `make grpc-code` runs it, with the repository root as the include path."""
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT), *flags, str(ROOT / PROTO)], check=True)


def test_generated_code_is_what_the_pinned_protoc_writes(tmp_path: Path) -> None:
    protoc(tmp_path, f"--python_out={tmp_path}", f"--pyi_out={tmp_path}")
    for name in GENERATED:
        fresh, committed = tmp_path / PROTO.parent / name, ROOT / PROTO.parent / name
        assert filecmp.cmp(fresh, committed, shallow=False), f"{committed} is stale: run `make grpc-code`"


def test_every_message_matches_tritonclients_field_by_field(tmp_path: Path) -> None:
    """Same service and method paths; every field with the same number, type, label and message type."""
    protoc(tmp_path, f"--descriptor_set_out={tmp_path / 'set.pb'}")
    ours = descriptor_pb2.FileDescriptorSet.FromString((tmp_path / "set.pb").read_bytes()).file[0]
    theirs = descriptor_pb2.FileDescriptorProto()
    service_pb2.DESCRIPTOR.CopyToProto(theirs)
    config = descriptor_pb2.FileDescriptorProto()  # ModelConfig and its parts live in Triton's model_config.proto
    model_config_pb2.DESCRIPTOR.CopyToProto(config)
    assert ours.package == theirs.package == config.package == "inference"

    def messages(file: descriptor_pb2.FileDescriptorProto) -> dict[str, descriptor_pb2.DescriptorProto]:
        found = {}
        stack = [(f".{file.package}.{m.name}", m) for m in file.message_type]
        while stack:
            name, message = stack.pop()
            found[name] = message
            stack += [(f"{name}.{n.name}", n) for n in message.nested_type]
        return found

    mine, triton = messages(ours), {**messages(theirs), **messages(config)}
    for name, message in mine.items():
        assert name in triton, f"{name} is not a message of Triton's service"
        other = {f.number: f for f in triton[name].field}
        for field in message.field:
            want = other.get(field.number)
            assert want is not None, f"{name}.{field.name}: no field {field.number} in Triton's"
            assert (field.name, field.type, field.label, field.type_name) == (
                want.name,
                want.type,
                want.label,
                want.type_name,
            ), f"{name}.{field.name} differs from Triton's"

    def enums(file: descriptor_pb2.FileDescriptorProto) -> dict[str, dict[str, int]]:
        found = {f".{file.package}.{e.name}": {v.name: v.number for v in e.value} for e in file.enum_type}
        stack = [(f".{file.package}.{m.name}", m) for m in file.message_type]
        while stack:
            name, message = stack.pop()
            found |= {f"{name}.{e.name}": {v.name: v.number for v in e.value} for e in message.enum_type}
            stack += [(f"{name}.{n.name}", n) for n in message.nested_type]
        return found

    their_enums = enums(config)
    for name, values in enums(ours).items():
        assert values == their_enums[name], f"{name} differs from Triton's"
    their_methods = {m.name: m for m in theirs.service[0].method}
    assert ours.service[0].name == theirs.service[0].name == "GRPCInferenceService"
    for method in ours.service[0].method:
        want = their_methods[method.name]
        assert (method.input_type, method.output_type) == (want.input_type, want.output_type)


# --- a live server -----------------------------------------------------------------------------------------


def make_repo(root: Path, tiny_artifact: Path, covariate_artifact: Path | None = None) -> Path:
    repo = root / "models"
    (repo / "tiny" / "1").mkdir(parents=True)
    shutil.copy(tiny_artifact, repo / "tiny" / "1" / "model.onnx")
    if covariate_artifact is not None:
        (repo / "tinycov" / "1").mkdir(parents=True)
        shutil.copy(covariate_artifact, repo / "tinycov" / "1" / "model.onnx")
    return repo


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, tiny_artifact: Path, covariate_artifact: Path
) -> Iterator[tuple[str, str, Path]]:
    """(HTTP url, gRPC address, model folder) of a server with model control on."""
    repo = make_repo(tmp_path_factory.mktemp("grpc"), tiny_artifact, covariate_artifact)
    port = free_port()
    with running_server(repo, GATECAST_GRPC_PORT=str(port), GATECAST_MODEL_CONTROL="true") as (url, _):
        yield url, f"127.0.0.1:{port}", repo


@pytest.fixture
def client(served: tuple[str, str, Path]) -> Iterator[tgrpc.InferenceServerClient]:
    with tgrpc.InferenceServerClient(served[1]) as c:
        yield c


def windows(batch: int, n: int = 48, seed: int = 0) -> np.ndarray:
    return (np.cumsum(np.random.default_rng(seed).normal(size=(batch, n)), axis=1) + 20).astype(np.float32)


def grpc_infer(client: tgrpc.InferenceServerClient, x: np.ndarray, model: str = "tiny", **kw: object):  # type: ignore[no-untyped-def]
    inp = tgrpc.InferInput("values", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(model, [inp], **kw)


def test_health_metadata_and_index(client: tgrpc.InferenceServerClient, served: tuple[str, str, Path]) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("tiny") and client.is_model_ready("tiny", "1")
    assert not client.is_model_ready("nope") and not client.is_model_ready("tiny", "9")
    meta = client.get_server_metadata()
    assert meta.name == "gatecast"
    assert list(meta.extensions) == ["model_repository", "statistics", "model_configuration"]
    over_http = httpx.get(f"{served[0]}/v2").json()["extensions"]
    assert over_http == ["binary_tensor_data", *meta.extensions]  # raw bytes are part of every gRPC message
    over_http = httpx.get(f"{served[0]}/v2/models/tinycov").json()
    meta = client.get_model_metadata("tinycov", as_json=True)
    assert meta["name"] == "tinycov" and meta["platform"] == "onnxruntime_onnx" and meta["versions"] == ["1"]
    for kind in ("inputs", "outputs"):
        assert [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in meta[kind]] == [
            (t["name"], t["datatype"], t["shape"]) for t in over_http[kind]
        ]
    index = {(m["name"], m["version"]): m["state"] for m in client.get_model_repository_index(as_json=True)["models"]}
    assert index == {("tiny", "1"): "READY", ("tinycov", "1"): "READY"}


def test_config_and_statistics_answer_what_http_answers(
    client: tgrpc.InferenceServerClient, served: tuple[str, str, Path]
) -> None:
    """tritonclient.grpc's get_model_config and get_inference_statistics: the same figures as HTTP, read into
    Triton's own messages (one worker, so both protocols read the same counters)."""
    url = served[0]
    for name in ("tiny", "tinycov"):
        over_http = json_format.ParseDict(
            httpx.get(f"{url}/v2/models/{name}/config").json(), model_config_pb2.ModelConfig()
        )
        assert client.get_model_config(name).config == over_http
        assert client.get_model_config(name, "1").config == over_http
        assert over_http.parameters["gatecast.horizon"].string_value == str(over_http.output[0].dims[0])
    grpc_infer(client, windows(3))
    over_grpc = client.get_inference_statistics()  # read after the last inference: nothing runs between them
    over_http = json_format.ParseDict(httpx.get(f"{url}/v2/models/stats").json(), service_pb2.ModelStatisticsResponse())
    assert over_grpc == over_http and [s.name for s in over_grpc.model_stats] == ["tiny", "tinycov"]
    tiny = client.get_inference_statistics("tiny", "1").model_stats
    assert [s.name for s in tiny] == ["tiny"] and tiny[0].inference_count >= 3
    assert [s.name for s in client.get_inference_statistics("tinycov").model_stats] == ["tinycov"]
    channel, s = stub(served)
    try:
        refused(lambda: s.ModelConfig(service_pb2.ModelConfigRequest(name="nope")), grpc.StatusCode.NOT_FOUND, "'nope'")
        no_name = service_pb2.ModelStatisticsRequest(version="1")
        refused(lambda: s.ModelStatistics(no_name), grpc.StatusCode.INVALID_ARGUMENT, "without a model name")
    finally:
        channel.close()


@pytest.mark.parametrize("batch", [1, 32])
def test_infer_equals_http_and_onnxruntime(
    client: tgrpc.InferenceServerClient, served: tuple[str, str, Path], batch: int
) -> None:
    x = windows(batch)
    result = grpc_infer(client, x, model_version="1", request_id="r-7")
    assert result.get_response().id == "r-7" and result.get_response().model_version == "1"
    forecast, scale = result.as_numpy("forecast"), result.as_numpy("scale")
    assert forecast.dtype == np.float32 and forecast.shape == (batch, 12)
    with thttp.InferenceServerClient(served[0].removeprefix("http://")) as http:
        inp = thttp.InferInput("values", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        over_http = http.infer("tiny", [inp])
    np.testing.assert_array_equal(forecast, over_http.as_numpy("forecast"))
    np.testing.assert_array_equal(scale, over_http.as_numpy("scale"))
    session = ort.InferenceSession(str(served[2] / "tiny" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    want_f, want_s = session.run(None, {"values": x})
    np.testing.assert_allclose(forecast, want_f, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scale, want_s, rtol=1e-5)
    only = grpc_infer(client, x, outputs=[tgrpc.InferRequestedOutput("scale")])
    assert only.as_numpy("forecast") is None and only.as_numpy("scale").shape == (batch,)


def stub(served: tuple[str, str, Path]) -> tuple[grpc.Channel, service_pb2_grpc.GRPCInferenceServiceStub]:
    channel = grpc.insecure_channel(served[1])
    return channel, service_pb2_grpc.GRPCInferenceServiceStub(channel)


def request(x: np.ndarray, contents: str = "fp32_contents", datatype: str = "FP32") -> service_pb2.ModelInferRequest:
    req = service_pb2.ModelInferRequest(model_name="tiny")
    tensor = req.inputs.add(name="values", datatype=datatype, shape=list(x.shape))
    getattr(tensor.contents, contents).extend(x.ravel().tolist())
    return req


def test_typed_contents_and_integers_read_as_raw_bytes(
    client: tgrpc.InferenceServerClient, served: tuple[str, str, Path]
) -> None:
    x = windows(3)
    want = grpc_infer(client, x).as_numpy("forecast")
    channel, infer = stub(served)
    with channel:
        typed = infer.ModelInfer(request(x))
        got = np.frombuffer(typed.raw_output_contents[0], dtype="<f4").reshape(3, 12)
        np.testing.assert_array_equal(got, want)
        whole = np.round(x).astype(np.int64)
        ints = infer.ModelInfer(request(whole, "int64_contents", "INT64"))
        as_float = grpc_infer(client, whole.astype(np.float32)).as_numpy("forecast")
        np.testing.assert_allclose(np.frombuffer(ints.raw_output_contents[0], "<f4").reshape(3, 12), as_float, 1e-5)


def test_covariate_inputs_agree_with_json(client: tgrpc.InferenceServerClient, served: tuple[str, str, Path]) -> None:
    n, h = 60, 12
    rng = np.random.default_rng(3)
    values = (np.sin(np.arange(n) / 4) * 5 + 20 + rng.normal(size=n)).round(3)
    load, plan = rng.normal(size=n).round(3), rng.normal(size=n + h).round(3)
    start = "2024-01-01T00:00:00"
    body = {
        "model": "tinycov",
        "series": [
            {
                "id": "s",
                "values": values.tolist(),
                "start": start,
                "freq": "h",
                "covariates": {"load": load.tolist(), "plan": plan[:n].tolist()},
                "future_covariates": {"plan": plan[n:].tolist()},
            }
        ],
    }
    want = httpx.post(f"{served[0]}/forecast", json=body).json()["forecasts"][0]["mean"]
    calendar = calendar_matrix(pd.date_range(start, periods=n + h, freq="h"), ["hour_of_day", "day_of_week"])
    inputs = []
    for name, array in (
        ("values", values.reshape(1, n)),
        ("past_covariates", load.reshape(1, n, 1)),
        ("future_covariates", plan.reshape(1, n + h, 1)),
        ("calendar", calendar.reshape(1, n + h, 4)),
    ):
        inputs.append(tgrpc.InferInput(name, list(array.shape), "FP32"))
        inputs[-1].set_data_from_numpy(array.astype(np.float32))
    got = client.infer("tinycov", inputs).as_numpy("forecast")[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    with pytest.raises(InferenceServerException, match="takes exactly the inputs") as refused:
        client.infer("tinycov", inputs[:2])
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"


def refused(call, code: grpc.StatusCode, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, caught.value.details()
    assert match in caught.value.details(), caught.value.details()


def test_bad_requests_get_status_codes_and_the_server_stays_up(served: tuple[str, str, Path]) -> None:
    x = windows(2)
    channel, s = stub(served)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    with channel:
        refused(lambda: s.ModelInfer(request(windows(1, n=5))), invalid, "needs at least 30")
        unknown = request(x)
        unknown.model_name = "nope"
        refused(lambda: s.ModelInfer(unknown), grpc.StatusCode.NOT_FOUND, "'nope' is not loaded")
        nan = x.copy()
        nan[0, 3] = np.nan
        refused(lambda: s.ModelInfer(request(nan)), invalid, "holds NaN")
        text = request(x)
        text.inputs[0].datatype = "BYTES"
        del text.inputs[0].contents.fp32_contents[:]
        text.inputs[0].contents.bytes_contents.extend([b"1.5"] * 96)
        refused(lambda: s.ModelInfer(text), invalid, "datatype 'BYTES'")
        refused(lambda: s.ModelInfer(request(x, "fp64_contents", "FP32")), invalid, "read from contents.fp32_contents")
        short = request(x)
        del short.inputs[0].contents.fp32_contents[-1]
        refused(lambda: s.ModelInfer(short), invalid, "needs 96 values; 95 were sent")
        raw = service_pb2.ModelInferRequest(model_name="tiny", raw_input_contents=[x.tobytes()[:-4]])
        raw.inputs.add(name="values", datatype="FP32", shape=[2, 48])
        refused(lambda: s.ModelInfer(raw), invalid, "needs 384 bytes; 380 were sent")
        two = service_pb2.ModelInferRequest(model_name="tiny", raw_input_contents=[x.tobytes(), b""])
        two.inputs.add(name="values", datatype="FP32", shape=[2, 48])
        refused(lambda: s.ModelInfer(two), invalid, "raw_input_contents has 2 entries for 1 inputs")
        wide = request(np.full((1, 48), 3e9))
        wide.inputs[0].datatype = "INT32"
        del wide.inputs[0].contents.fp32_contents[:]
        wide.inputs[0].contents.int_contents.extend([7] * 47)
        refused(lambda: s.ModelInfer(wide), invalid, "needs 48 values; 47 were sent")
        asked = request(x)
        asked.parameters["priority"].int64_param = 1
        refused(lambda: s.ModelInfer(asked), invalid, "parameters ['priority'] are not supported")
        wrong_out = request(x)
        wrong_out.outputs.add(name="quantiles")
        refused(lambda: s.ModelInfer(wrong_out), invalid, "output 'quantiles' is unknown")
        horizon_axis = request(x)
        horizon_axis.inputs[0].shape.append(1)
        refused(lambda: s.ModelInfer(horizon_axis), invalid, "it must be [batch, time]")
        negative = request(x)
        negative.inputs[0].shape[0] = -2
        refused(lambda: s.ModelInfer(negative), invalid, "none negative")
        other_repo = service_pb2.RepositoryIndexRequest(repository_name="elsewhere")
        refused(lambda: s.RepositoryIndex(other_repo), invalid, "serves one model repository")
        ok = s.ModelInfer(request(x))
        assert np.frombuffer(ok.raw_output_contents[0], "<f4").shape == (24,)
    metrics = httpx.get(f"{served[0]}/metrics").text
    assert 'gatecast_grpc_request_duration_seconds_count{code="INVALID_ARGUMENT",method="ModelInfer"}' in metrics
    assert 'gatecast_grpc_request_duration_seconds_count{code="OK",method="ModelInfer"}' in metrics
    assert 'gatecast_errors_total{reason="not_found"}' in metrics


def test_load_and_unload_over_grpc(client: tgrpc.InferenceServerClient, served: tuple[str, str, Path]) -> None:
    repo = served[2]
    shutil.copytree(repo / "tiny" / "1", repo / "tiny" / "2")
    try:
        client.load_model("tiny")
        assert client.is_model_ready("tiny", "2")
        client.unload_model("tiny")
        assert not client.is_model_ready("tiny")
        with pytest.raises(InferenceServerException, match="not loaded"):
            grpc_infer(client, windows(1))
    finally:
        shutil.rmtree(repo / "tiny" / "2")
        client.load_model("tiny")
    assert client.is_model_ready("tiny", "1")


def test_keys_limits_and_memory_admission(tmp_path: Path, tiny_artifact: Path) -> None:
    repo = make_repo(tmp_path, tiny_artifact)
    port = free_port()
    env = {
        "GATECAST_GRPC_PORT": str(port),
        "GATECAST_API_KEYS": "k-1",
        "GATECAST_MAX_BODY_BYTES": str(4 << 20),
        "GATECAST_MEMORY_BUDGET_MB": "1",
    }
    with running_server(repo, **env), tgrpc.InferenceServerClient(f"127.0.0.1:{port}") as c:
        assert c.is_server_live() and c.is_server_ready()  # health is open, as over HTTP
        with pytest.raises(InferenceServerException, match="missing or invalid API key") as caught:
            grpc_infer(c, windows(1))
        assert caught.value.status() == "StatusCode.UNAUTHENTICATED"
        with pytest.raises(InferenceServerException, match="missing or invalid API key"):
            c.get_model_metadata("tiny", headers={"authorization": "Bearer wrong"})
        assert grpc_infer(c, windows(4), headers=KEY).as_numpy("forecast").shape == (4, 12)
        assert grpc_infer(c, windows(4), headers={"x-api-key": "k-1"}).as_numpy("forecast").shape == (4, 12)
        # 1 MB of admitted memory: a 1.6 MB message (twice that held while it is handled) can never fit.
        with pytest.raises(InferenceServerException, match="a worker admits at most 1 MiB") as caught:
            grpc_infer(c, windows(1, n=400_000), headers=KEY)
        assert caught.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        # Beyond GATECAST_MAX_BODY_BYTES grpcio refuses the message before it is read.
        with pytest.raises(InferenceServerException) as caught:
            grpc_infer(c, windows(1, n=1_200_000), headers=KEY)
        assert caught.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        assert grpc_infer(c, windows(2), headers=KEY).as_numpy("scale").shape == (2,)


def test_the_time_limit_answers_deadline_exceeded_and_the_server_goes_on(tmp_path: Path, tiny_artifact: Path) -> None:
    repo = make_repo(tmp_path, tiny_artifact)
    port = free_port()
    env = {"GATECAST_GRPC_PORT": str(port), "GATECAST_REQUEST_TIMEOUT_S": "0.05", "GATECAST_INLINE_MAX_SERIES": "0"}
    with running_server(repo, **env), tgrpc.InferenceServerClient(f"127.0.0.1:{port}") as c:
        with pytest.raises(InferenceServerException, match="GATECAST_REQUEST_TIMEOUT_S") as caught:
            grpc_infer(c, windows(5000, n=400))
        assert caught.value.status() == "StatusCode.DEADLINE_EXCEEDED"
        # The server goes on: a small call is answered once onnxruntime has finished the abandoned batch, which
        # the server lets run to its end (on a loaded 2-core machine that can outlast the next call's own 0.05 s).
        for _ in range(100):
            try:
                answer = grpc_infer(c, windows(1))
                break
            except InferenceServerException as exc:
                assert exc.status() == "StatusCode.DEADLINE_EXCEEDED", exc
                time.sleep(0.1)
        else:
            pytest.fail("no call was answered in 10 s after the time limit cut one short")
        assert answer.as_numpy("forecast").shape == (1, 12)


def test_two_workers_share_the_port_and_a_taken_port_stops_the_start(tmp_path: Path, tiny_artifact: Path) -> None:
    repo = make_repo(tmp_path, tiny_artifact)
    port = free_port()
    with running_server(repo, workers=2, GATECAST_GRPC_PORT=str(port)):
        for seed in range(12):  # a fresh connection each time: the kernel spreads them over both workers
            with tgrpc.InferenceServerClient(f"127.0.0.1:{port}") as c:
                assert grpc_infer(c, windows(2, seed=seed)).as_numpy("forecast").shape == (2, 12)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATECAST_")}
        env.update(GATECAST_GRPC_PORT=str(taken), GATECAST_MODEL_REPOSITORY=str(repo))
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(free_port())],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0 and f"gRPC port 127.0.0.1:{taken} is not free" in done.stderr
    assert "--grpc-port N or GATECAST_GRPC_PORT=N" in done.stderr


def test_a_taken_http_port_ends_at_once_naming_it_and_the_grpc_port_is_a_flag(
    tmp_path: Path, tiny_artifact: Path
) -> None:
    """The HTTP port is checked before any worker starts or a model loads; --grpc-port sets the gRPC port."""
    repo = make_repo(tmp_path, tiny_artifact)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECAST_")}
    env.update(GATECAST_MODEL_REPOSITORY=str(repo), GATECAST_TRAINING="off")  # no local Ray
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(taken), "--grpc-port", "0", "--workers", "1"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0, done.stderr
    assert f"the HTTP port 127.0.0.1:{taken} is not free" in done.stderr, done.stderr
    assert "--port N or GATECAST_PORT=N (make serve PORT=N)" in done.stderr
    assert "loaded" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    port, grpc_port = free_port(), free_port()
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--grpc-port", str(grpc_port)]
    server = subprocess.Popen([*command, "--workers", "1"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        with tgrpc.InferenceServerClient(f"127.0.0.1:{grpc_port}") as c:
            assert c.is_model_ready("tiny")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_api_pages_grpc_example_runs_against_the_committed_models(capsys: pytest.CaptureFixture[str]) -> None:
    page = (ROOT / "docs" / "api.md").read_text()
    block = page.split("<!-- grpc-example:")[1].split("<!-- end grpc-example -->")[0]
    code = block.split("```python\n")[1].split("```")[0]
    port = free_port()
    with running_server(ROOT / "models", GATECAST_GRPC_PORT=str(port)):
        exec(compile(code.replace("localhost:8001", f"127.0.0.1:{port}"), "docs/api.md", "exec"), {})  # noqa: S102
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("True [{'name': 'values', 'datatype': 'FP32', 'shape': ['-1', '-1']}]")
    assert printed[1].startswith("(1, 24) [")


def test_a_message_that_is_not_protobuf_is_invalid_argument_after_the_key_and_logs_no_traceback(
    tmp_path: Path, tiny_artifact: Path
) -> None:
    repo = make_repo(tmp_path, tiny_artifact)
    port = free_port()
    env = {"GATECAST_GRPC_PORT": str(port), "GATECAST_API_KEYS": "k-1"}
    with running_server(repo, **env), grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")  # bytes in, bytes out
        garbage = b"\xff\xff\xff\xff not a protobuf message"
        with pytest.raises(grpc.RpcError) as caught:  # no key: refused before the message is read
            infer(garbage)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        for _ in range(50):
            with pytest.raises(grpc.RpcError) as caught:
                infer(garbage, metadata=(("authorization", "Bearer k-1"),))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid inference.ModelInferRequest" in str(caught.value.details())
        # Two credentials: refused whatever their order, as over HTTP.
        twice = (("authorization", "Bearer k-1"), ("authorization", "Bearer x"))
        both = (("x-api-key", "x"), ("authorization", "Bearer k-1"))
        for pair in (twice, both):
            with pytest.raises(grpc.RpcError) as caught:
                infer(garbage, metadata=pair)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "send exactly one" in str(caught.value.details())
        with tgrpc.InferenceServerClient(f"127.0.0.1:{port}") as c:
            assert grpc_infer(c, windows(2), headers=KEY).as_numpy("scale").shape == (2,)
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("server-*.log"))
    assert "Traceback" not in logs and "DecodeError" not in logs, logs[-2000:]
