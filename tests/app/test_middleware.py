"""Faults and access: bad model files, API keys, traversal, compressed bodies, no unpickling."""

from __future__ import annotations

import gzip
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
import pytest
import zstandard
from fastapi.testclient import TestClient
from onnx import TensorProto, helper
from prometheus_client import REGISTRY

from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
VALUES = [float(i % 24) for i in range(48)]


def truncated(good: bytes) -> bytes:
    return good[: len(good) // 2]


def wrong_signature(good: bytes) -> bytes:
    """Another graph under a valid gatecast card: the signature check, not the metadata, must refuse it."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "other", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.extend(onnx.load_from_string(good).metadata_props)
    return model.SerializeToString()


def without_metadata(good: bytes) -> bytes:
    proto = onnx.load_from_string(good)
    del proto.metadata_props[:]
    return proto.SerializeToString()


def garbage(good: bytes) -> bytes:
    return b"\x00\x01not an onnx file" * 100


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(garbage, "could not load", id="corrupt"),
        pytest.param(truncated, "could not load", id="truncated"),
        pytest.param(wrong_signature, "inputs are ['x']; the contract wants ['values']", id="wrong-signature"),
        pytest.param(without_metadata, "not a gatecast model file", id="no-metadata"),
    ],
)
def test_bad_model_files_are_refused_and_the_others_keep_serving(
    repository: Path, make: Callable[[bytes], bytes], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = (repository / "tiny" / "1" / "model.onnx").read_bytes()
    (repository / "bad" / "1").mkdir(parents=True)
    (repository / "bad" / "1" / "model.onnx").write_bytes(make(good))
    before = REGISTRY.get_sample_value("gatecast_model_load_failures_total", {"model": "bad"}) or 0.0
    with (
        caplog.at_level(logging.ERROR, logger="gatecast.registry"),
        TestClient(create_app(Settings(model_repository=repository))) as c,
    ):
        ready = c.get("/v2/health/ready").json()
        assert ready["models"] == {"tiny": ["1"]}
        assert reason in ready["failed"]["bad@1"]
        assert c.post("/forecast", json={"series": [{"id": "a", "values": VALUES}]}).status_code == 200
        assert c.post("/forecast", json={"model": "bad", "series": [{"id": "a", "values": VALUES}]}).status_code == 404
        after = REGISTRY.get_sample_value("gatecast_model_load_failures_total", {"model": "bad"})
        assert after == before + 1
        assert "gatecast_model_load_failures_total" in c.get("/metrics").text
    assert any("bad@1 refused at load" in r.getMessage() and reason in r.getMessage() for r in caplog.records)


@pytest.fixture
def keyed(repository: Path) -> Iterator[TestClient]:
    settings = Settings(model_repository=repository, api_keys=["k1", "k2"], admin_keys=["root"], model_control=True)
    with TestClient(create_app(settings)) as c:
        yield c


def test_keys_are_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATECAST_API_KEYS", "alpha, beta,,")
    assert Settings().api_keys == ["alpha", "beta"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="none"),
        pytest.param({"x-api-key": "nope"}, id="wrong"),
        pytest.param({"authorization": "Bearer k1x"}, id="prefix"),
        pytest.param({"authorization": "k1"}, id="no-scheme"),
    ],
)
def test_requests_without_a_valid_key_get_401_without_detail(keyed: TestClient, headers: dict[str, str]) -> None:
    r = keyed.post("/forecast", json={"series": [{"id": "a", "values": VALUES}]}, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "k1" not in r.text and "k2" not in r.text and "root" not in r.text
    assert keyed.get("/models", headers=headers).status_code == 401


@pytest.mark.parametrize(
    "headers", [{"x-api-key": "k2"}, {"authorization": "Bearer k1"}, {"authorization": "bearer root"}]
)
def test_valid_keys_pass(keyed: TestClient, headers: dict[str, str]) -> None:
    assert keyed.post("/forecast", json={"series": [{"id": "a", "values": VALUES}]}, headers=headers).status_code == 200


def test_health_routes_stay_open_for_probes(keyed: TestClient) -> None:
    assert keyed.get("/v2/health/live").status_code == 200
    assert keyed.get("/v2/health/ready").status_code == 200
    assert keyed.get("/metrics").status_code == 200


def test_model_control_needs_the_admin_key(keyed: TestClient) -> None:
    assert keyed.post("/v2/repository/models/tiny/load", headers={"x-api-key": "k1"}).status_code == 401
    assert keyed.post("/v2/repository/models/tiny/load", headers={"x-api-key": "root"}).status_code == 200


@pytest.mark.parametrize(
    ("model", "status"),
    [("../tiny", 404), ("tiny@../../etc", 404), ("..", 404), ("tiny@1/../1", 404), ("/etc/passwd", 404)],
)
def test_model_names_and_versions_cannot_reach_outside_the_repository(
    repository: Path, model: str, status: int
) -> None:
    with TestClient(create_app(Settings(model_repository=repository))) as c:
        r = c.post("/forecast", json={"model": model, "series": [{"id": "a", "values": VALUES}]})
        assert r.status_code == status, r.text


def test_repository_load_rejects_traversal_names(repository: Path) -> None:
    with TestClient(create_app(Settings(model_repository=repository, model_control=True))) as c:
        for name, status in ((".git", 422), ("x..y", 422), ("a%2F..%2F..", 404)):
            r = c.post(f"/v2/repository/models/{name}/load")
            assert r.status_code == status, (name, r.text)
        assert not (repository / ".git").exists()


def test_symlink_out_of_the_repository_is_refused(repository: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "1"
    outside.mkdir(parents=True)
    (outside / "model.onnx").write_bytes((repository / "tiny" / "1" / "model.onnx").read_bytes())
    (repository / "escape").symlink_to(outside.parent)
    with TestClient(create_app(Settings(model_repository=repository))) as c:
        assert "outside the model repository" in c.get("/v2/health/ready").json()["failed"]["escape@1"]


def test_compressed_bodies_inflate_no_further_than_the_body_limit(repository: Path) -> None:
    bomb = gzip.compress(b"[" * 50_000_000)  # 50 MB of brackets in ~50 KB
    with TestClient(create_app(Settings(model_repository=repository))) as c:
        r = c.post("/forecast", content=bomb, headers={"content-type": "application/json", "content-encoding": "gzip"})
        assert r.status_code == 413 and "inflates to more than 16777216 bytes" in r.json()["message"]
        r = c.post("/forecast", content=b"{}", headers={"content-type": "application/json", "content-encoding": "br"})
        assert r.status_code == 415 and "zstd or gzip" in r.json()["message"]


def test_content_encoding_on_two_lines_is_one_list(repository: Path) -> None:
    body = json.dumps({"series": [{"id": "a", "values": [float(i % 24) for i in range(200)]}], "model": "tiny"})
    twice = zstandard.ZstdCompressor().compress(gzip.compress(body.encode()))  # gzip applied first, then zstd
    with TestClient(create_app(Settings(model_repository=repository))) as c:
        plain = c.post("/forecast", content=body, headers={"content-type": "application/json"})
        lines = [("content-type", "application/json"), ("content-encoding", "gzip"), ("content-encoding", "zstd")]
        r = c.post("/forecast", content=twice, headers=lines)
        assert r.status_code == 200 and r.json()["forecasts"] == plain.json()["forecasts"], r.text
        r = c.post("/forecast", content=twice, headers=[*lines[:2], ("content-encoding", "br")])
        assert r.status_code == 415 and "Content-Encoding 'br' is not read here" in r.json()["message"], r.text


def test_deeply_nested_json_is_a_client_error(repository: Path) -> None:
    with TestClient(create_app(Settings(model_repository=repository))) as c:
        r = c.post("/forecast", content=b"[" * 100_000 + b"]" * 100_000, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"] == "malformed_json" and "Traceback" not in r.text


def test_the_server_never_unpickles() -> None:
    """Only ONNX files are loaded: no pickle, joblib, dill, torch.load or numpy allow_pickle in app/."""
    pattern = re.compile(r"\b(import pickle|from pickle|joblib|dill|torch\.load|allow_pickle=True|cloudpickle)")
    offenders = [str(p) for p in (ROOT / "app").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_requests_past_the_time_limit_get_503_with_retry_after(
    repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model run held (in the thread pool, so the event loop is free) under a 0.1 s limit: the request is
    answered 503 while the run is still held, and once it ends the worker goes on answering."""
    settings = Settings(model_repository=repository, request_timeout_s=0.1, inline_max_series=0)
    with TestClient(create_app(settings)) as c:
        run = ort.InferenceSession.run
        held, release = threading.Event(), threading.Event()

        def slow_run(self: ort.InferenceSession, *args: Any, **kwargs: Any) -> Any:
            held.set()
            release.wait(60)
            return run(self, *args, **kwargs)

        monkeypatch.setattr(ort.InferenceSession, "run", slow_run)  # after the load: the warm-up ran at full speed
        try:
            r = c.post("/forecast", json={"series": [{"id": "a", "values": VALUES}]})
            assert held.is_set() and not release.is_set()  # answered at the limit, the run still held
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert "GATECAST_REQUEST_TIMEOUT_S" in r.json()["message"]
        finally:
            monkeypatch.setattr(ort.InferenceSession, "run", run)
            release.set()  # the abandoned run still holds the model's batch queue until it ends
        deadline = time.monotonic() + 30
        while (status := c.post("/forecast", json={"series": [{"id": "a", "values": VALUES}]}).status_code) != 200:
            assert status == 503 and time.monotonic() < deadline, status
            time.sleep(0.05)


def test_a_body_refused_from_its_headers_is_read_to_its_end_before_the_answer(repository: Path) -> None:
    """Refused from its Content-Length, the body's rest is read and dropped (bounded) before the 413 starts: a
    connection answered while its client still sends counts as idle, and the idle cap would close it under the
    client, who would read a reset instead of the 413."""
    import asyncio

    app = create_app(Settings(model_repository=repository, max_body_bytes=1024))
    chunks = [b"x" * 400] * 5  # 2,000 bytes: over the limit, within twice it
    events: list[str] = []

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        events.append("read")
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            events.append(f"answer {message['status']}")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/forecast",
        "raw_path": b"/forecast",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"2000")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "scheme": "http",
        "http_version": "1.1",
        "app": app,
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert events == ["read"] * 5 + ["answer 413"], events
