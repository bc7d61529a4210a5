"""The model repository under faults: slow and huge files, graphs that break their card's promises, deleted
models and versions (in every worker), and SIGHUP."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper

from app import forecasting
from app.forecast_jobs import ForecastJob, SeriesInput
from app.main import create_app
from app.settings import Settings
from harness.live import running_server
from tests.live.test_live_server import worker_pids

MODELS = Path(__file__).resolve().parents[2] / "models"
VALUES = [float(i % 24) + 20 for i in range(48)]
ONE = {"series": [{"id": "a", "values": VALUES}]}


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# --- file reads and session creation never hold the event loop ----------------------------------------------


def test_a_model_file_that_reads_slowly_never_stalls_requests(
    repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read of a model file blocks (a slow disk, a huge file): requests keep being answered meanwhile."""
    gate, reading = threading.Event(), threading.Event()
    read_bytes = Path.read_bytes

    def slow_read(path: Path) -> bytes:
        if path.name == "model.onnx":
            reading.set()
            gate.wait(60)
        return read_bytes(path)

    with TestClient(create_app(Settings(model_repository=repository, repository_poll_s=0.05))) as c:
        monkeypatch.setattr(Path, "read_bytes", slow_read)
        shutil.copytree(repository / "tiny" / "1", repository / "tiny" / "2")
        assert reading.wait(30)  # the poll has found version 2 and is reading it
        for _ in range(5):
            r = c.post("/forecast", json=ONE)
            assert r.status_code == 200 and r.json()["version"] == "1"
        assert not gate.is_set()  # all five were answered while the read was still blocked
        gate.set()
        assert wait_for(lambda: c.post("/forecast", json=ONE).json()["version"] == "2")


def test_a_file_over_the_size_limit_is_refused_without_reading_it(
    repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repository / "huge" / "1").mkdir(parents=True)
    huge = repository / "huge" / "1" / "model.onnx"
    with open(huge, "wb") as fh:
        fh.truncate(2 * 2**30)  # 2 GiB, sparse: reading it would take seconds and 2 GiB of memory
    read_bytes, read = Path.read_bytes, []

    def recorded_read(path: Path) -> bytes:
        read.append(path.resolve())
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", recorded_read)
    with TestClient(create_app(Settings(model_repository=repository))) as c:
        failed = c.get("/v2/health/ready").json()["failed"]
        assert c.post("/forecast", json=ONE).status_code == 200
    assert "GATECAST_MAX_MODEL_BYTES" in failed["huge@1"]
    assert huge.resolve() not in read and (repository / "tiny" / "1" / "model.onnx").resolve() in read


# --- graphs that disagree with their card are refused at load -------------------------------------------------


def graph(nodes: list[onnx.NodeProto], time_axis: str | int, card_from: Path, inits: list[onnx.TensorProto]) -> bytes:
    """A gatecast-shaped graph (values -> forecast, scale) carrying the tiny model's card (min 30, trained 48,
    horizon 12)."""
    values = helper.make_tensor_value_info("values", TensorProto.FLOAT, ["batch", time_axis])
    forecast = helper.make_tensor_value_info("forecast", TensorProto.FLOAT, ["batch", 12])
    scale = helper.make_tensor_value_info("scale", TensorProto.FLOAT, ["batch"])
    body = helper.make_graph(nodes, "g", [values], [forecast, scale], initializer=inits)
    model = helper.make_model(body, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.extend(onnx.load(str(card_from)).metadata_props)
    return model.SerializeToString()


def reads_exactly_48(card_from: Path, time_axis: str | int = "time") -> bytes:
    """Reshapes its input to rows of 48: fine at the trained length, broken at the card's minimum (30)."""
    shape = numpy_helper.from_array(np.array([-1, 48], np.int64), "shape")
    weights = numpy_helper.from_array(np.full((48, 12), 1 / 48, np.float32), "w")
    nodes = [
        helper.make_node("Reshape", ["values", "shape"], ["rows"]),
        helper.make_node("MatMul", ["rows", "w"], ["forecast"]),
        helper.make_node("Abs", ["rows"], ["abs"]),
        helper.make_node("ReduceMax", ["abs"], ["scale"], axes=[1], keepdims=0),
    ]
    return graph(nodes, time_axis, card_from, [shape, weights])


def mixes_rows(card_from: Path) -> bytes:
    """Subtracts the batch's mean: each row's forecast depends on the other rows in its batch."""
    starts = numpy_helper.from_array(np.array([-12], np.int64), "starts")
    ends = numpy_helper.from_array(np.array([2**62], np.int64), "ends")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("ReduceMean", ["values"], ["mean"], axes=[0], keepdims=1),
        helper.make_node("Sub", ["values", "mean"], ["centred"]),
        helper.make_node("Slice", ["centred", "starts", "ends", "axes"], ["forecast"]),
        helper.make_node("Abs", ["values"], ["abs"]),
        helper.make_node("ReduceMax", ["abs"], ["scale"], axes=[1], keepdims=0),
    ]
    return graph(nodes, "time", card_from, [starts, ends, axes])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(
            lambda p: reads_exactly_48(p, 48), "fixes axis 'time' to 48; it must be dynamic", id="fixed-time-axis"
        ),
        pytest.param(reads_exactly_48, "batch 1 x 30 steps: the run failed", id="fails-at-the-minimum-window"),
        pytest.param(mixes_rows, "a row's forecast depends on its batch", id="rows-depend-on-the-batch"),
    ],
)
def test_a_graph_that_breaks_its_cards_promises_is_refused_at_load(
    repository: Path, make: Callable[[Path], bytes], reason: str
) -> None:
    (repository / "liar" / "1").mkdir(parents=True)
    (repository / "liar" / "1" / "model.onnx").write_bytes(make(repository / "tiny" / "1" / "model.onnx"))
    with TestClient(create_app(Settings(model_repository=repository))) as c:
        ready = c.get("/v2/health/ready").json()
        assert ready["models"] == {"tiny": ["1"]}
        assert reason in ready["failed"]["liar@1"], ready["failed"]


def test_the_probe_graph_itself_is_valid_at_its_own_length(repository: Path) -> None:
    """The refusals above are about the declared range, not a broken test graph: at 48 steps it runs."""
    import onnxruntime as ort

    session = ort.InferenceSession(reads_exactly_48(repository / "tiny" / "1" / "model.onnx"))
    forecast, scale = session.run(None, {"values": np.ones((3, 48), np.float32)})
    assert forecast.shape == (3, 12) and scale.shape == (3,)


# --- the folder decides: deleted models and versions are unloaded -------------------------------------------


def test_deleted_versions_and_models_are_unloaded(repository: Path) -> None:
    shutil.copytree(repository / "tiny" / "1", repository / "tiny" / "2")
    shutil.copytree(repository / "tiny", repository / "other")
    with TestClient(create_app(Settings(model_repository=repository, repository_poll_s=0.05))) as c:
        assert c.get("/v2/health/ready").json()["models"] == {"other": ["1", "2"], "tiny": ["1", "2"]}
        shutil.rmtree(repository / "tiny" / "2")
        assert wait_for(lambda: c.post("/forecast", json={**ONE, "model": "tiny@2"}).status_code == 404)
        assert c.post("/forecast", json={**ONE, "model": "tiny"}).json()["version"] == "1"
        shutil.rmtree(repository / "other")
        assert wait_for(lambda: c.post("/forecast", json={**ONE, "model": "other"}).status_code == 404)
        assert c.get("/v2/health/ready").json()["models"] == {"tiny": ["1"]}
        assert (
            'gatecast_model_loaded{model="other",provider="CPUExecutionProvider",version="1"} 0.0'
            in c.get("/metrics").text
        )


def test_a_request_after_the_generation_advanced_waits_for_one_sync_and_others_do_not_sync(repository: Path) -> None:
    """No poll (an hour): a copy dropped in by hand waits for the poll; one announced with contract.generation is
    served to the next request, after one sync; the requests after it sync nothing."""
    from contract import generation

    with TestClient(create_app(Settings(model_repository=repository, repository_poll_s=3600))) as c:
        registry = c.app.state.repository  # type: ignore[attr-defined]
        syncs = 0
        real_sync = registry.sync

        async def counted() -> None:
            nonlocal syncs
            syncs += 1
            await real_sync()

        registry.sync = counted
        shutil.copytree(repository / "tiny", repository / "quiet")
        assert c.post("/forecast", json={**ONE, "model": "quiet"}).status_code == 404 and syncs == 0
        generation.advance(repository)
        assert c.post("/forecast", json={**ONE, "model": "quiet"}).status_code == 200 and syncs == 1
        assert c.post("/forecast", json={**ONE, "model": "tiny"}).status_code == 200 and syncs == 1
        assert generation.current(repository) == 1


def test_a_request_that_resolved_a_copy_rewritten_meanwhile_is_answered_by_the_new_one(repository: Path) -> None:
    """A model file rewritten in place while a request holds the old copy: the old copy's batcher closes, and the
    request is answered by the copy that replaced it, never refused."""
    with TestClient(create_app(Settings(model_repository=repository, repository_poll_s=3600))) as c:
        app_repository = c.app.state.repository  # type: ignore[attr-defined]
        old = app_repository.resolve("tiny")
        model = repository / "tiny" / "1" / "model.onnx"
        model.write_bytes(model.read_bytes())  # the same model, a new file: reloaded at the next sync
        os.utime(model, ns=(time.time_ns(), time.time_ns() + 10**9))
        c.portal.call(app_repository.sync)  # type: ignore[union-attr]
        new = app_repository.resolve("tiny")
        assert new is not old and old.replaced_by is new and old.batcher.closed
        job = ForecastJob([SeriesInput("a", VALUES)])
        answer = c.portal.call(forecasting.forecast, old, job)  # type: ignore[union-attr]
        assert answer.mean.shape == (1, new.card.horizon)


@pytest.mark.slow
def test_every_worker_drops_a_deleted_model_also_after_a_worker_restart(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    shutil.copytree(MODELS / "vix-gru", repo / "vix-gru")
    shutil.copytree(MODELS / "vix-lstm", repo / "vix-lstm")
    payload = {"model": "vix-gru", "series": [{"id": "a", "values": [20.0 + i % 5 for i in range(64)]}]}
    with running_server(repo, workers=2, GATECAST_REPOSITORY_POLL_S="0.3") as (url, proc):
        assert wait_for(lambda: len(worker_pids(proc.pid)) == 2, 20)
        with httpx.Client(base_url=url, timeout=10) as client:

            def statuses(n: int = 30) -> set[int]:
                # New connections, so that both workers answer some of them.
                return {httpx.post(f"{url}/forecast", json=payload).status_code for _ in range(n)}

            assert statuses() == {200}
            shutil.rmtree(repo / "vix-gru")
            assert wait_for(lambda: statuses(10) == {404}, 10)
            victim = sorted(worker_pids(proc.pid))[0]
            os.kill(victim, signal.SIGKILL)
            assert wait_for(lambda: victim not in worker_pids(proc.pid) and len(worker_pids(proc.pid)) == 2, 30)
            assert wait_for(lambda: client.get("/v2/health/ready").status_code == 200, 30)
            assert statuses() == {404}, "workers disagree about a deleted model"


# --- SIGHUP re-reads the folder; it never kills the server --------------------------------------------------


@pytest.mark.slow
def test_sighup_reloads_the_repository_and_never_kills_the_server(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    shutil.copytree(MODELS / "vix-gru", repo / "vix-gru")
    payload = {"model": "vix-gru", "series": [{"id": "a", "values": [20.0 + i % 5 for i in range(64)]}]}
    with running_server(repo, GATECAST_REPOSITORY_POLL_S="0") as (url, proc):
        assert httpx.post(f"{url}/forecast", json=payload).json()["version"] == "1"
        shutil.copytree(repo / "vix-gru" / "1", repo / "vix-gru" / "2")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: httpx.post(f"{url}/forecast", json=payload).json()["version"] == "2")
        for _ in range(3):
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.2)
        assert proc.poll() is None, "SIGHUP killed the server"
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
    log = next(tmp_path.glob("server-*.log")).read_text()
    assert "SIGHUP: re-reading the model repository" in log
