"""The real server process: two workers, real ETTh1 windows, metrics merged across workers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from harness.live import running_server
from harness.waiting import wait_for

pytestmark = pytest.mark.slow
MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("live")
    repo = work / "models"
    repo.symlink_to(MODELS)
    with running_server(repo, workers=2) as (url, _):
        yield url


def metric_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.data
def test_two_workers_answer_real_etth1_windows_like_the_onnx_model(two_workers: str) -> None:
    from training.data import load_etth1

    values = load_etth1().series[0].values
    session = ort.InferenceSession(str(MODELS / "etth1-lstm" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    before = httpx.get(f"{two_workers}/metrics").text
    origins = list(range(11520, 14400 - 24, 97))
    with httpx.Client(base_url=two_workers, timeout=10) as client:
        for origin in origins:
            window = values[origin - 168 : origin]
            r = client.post(
                "/forecast", json={"model": "etth1-lstm", "series": [{"id": str(origin), "values": window.tolist()}]}
            )
            assert r.status_code == 200, r.text
            want = session.run(None, {"values": window.astype(np.float32)[None, :]})[0][0]
            np.testing.assert_allclose(r.json()["forecasts"][0]["mean"], want, rtol=1e-5, atol=1e-5)
    after = httpx.get(f"{two_workers}/metrics").text
    # every request is counted once, whichever worker served it
    labels = {"route": "/forecast", "method": "POST", "status_class": "2xx"}
    counted = metric_value(after, "gatecast_http_request_duration_seconds_count", **labels) - metric_value(
        before, "gatecast_http_request_duration_seconds_count", **labels
    )
    assert counted == len(origins)
    series = metric_value(after, "gatecast_series_forecast_total", model="etth1-lstm") - metric_value(
        before, "gatecast_series_forecast_total", model="etth1-lstm"
    )
    assert series == len(origins)


def test_metrics_scrape_is_valid_exposition(two_workers: str) -> None:
    httpx.post(f"{two_workers}/forecast", json={"model": "etth1-lstm", "series": [{"id": "a", "values": [1.0] * 10}]})
    r = httpx.get(f"{two_workers}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert re.search(r'gatecast_errors_total\{reason="invalid_input"\} [1-9]', text)
    # both workers report their loaded models (liveall keeps one series per process)
    loaded = [line for line in text.splitlines() if line.startswith("gatecast_model_loaded{") and "etth1-lstm" in line]
    assert len({re.search(r'pid="(\d+)"', line).group(1) for line in loaded}) == 2  # type: ignore[union-attr]


def worker_pids(server_pid: int) -> set[int]:
    """uvicorn's worker processes: children of the server whose command line is a multiprocessing spawn."""
    pids = set()
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # the thread ended while we listed
            continue
        for child in children:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:  # a killed worker reaped between the listing and the read is no worker
                continue
            if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                pids.add(int(child))
    return pids


def test_a_killed_worker_is_replaced_and_the_others_keep_answering(tmp_path: Path) -> None:
    import os
    import signal
    import threading
    import time

    from harness.live import running_server

    repo = tmp_path / "models"
    repo.symlink_to(MODELS)
    payload = {"model": "etth1-lstm", "series": [{"id": "a", "values": [float(i % 24) for i in range(168)]}]}
    with running_server(repo, workers=2) as (url, proc):
        deadline = time.monotonic() + 20
        while len(worker_pids(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        before = worker_pids(proc.pid)
        assert len(before) == 2
        outcomes: list[str] = []
        stop = time.monotonic() + 8

        def load() -> None:
            with httpx.Client(base_url=url, timeout=10) as client:
                while time.monotonic() < stop:
                    try:
                        outcomes.append(str(client.post("/forecast", json=payload).status_code))
                    except httpx.HTTPError as exc:
                        outcomes.append(type(exc).__name__)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        assert wait_for(lambda: outcomes.count("200") >= 20)  # the load is under way on both workers
        victim = sorted(before)[0]
        os.kill(victim, signal.SIGKILL)
        for t in threads:
            t.join()
        ok = outcomes.count("200")
        assert not [o for o in outcomes if o.startswith("5")], "no 5xx answers"
        # only requests in flight on the killed worker (at most one per connection) may fail
        assert len(outcomes) - ok <= 4, outcomes
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            after = worker_pids(proc.pid)
            if len(after) == 2 and victim not in after:
                break
            time.sleep(0.5)
        assert len(after) == 2 and victim not in after, "the killed worker was replaced"
        assert httpx.post(f"{url}/forecast", json=payload).status_code == 200
        # The replacement is listed before it has loaded its models (on a busy machine, seconds before).
        deadline = time.monotonic() + 30
        while True:
            text = httpx.get(f"{url}/metrics").text
            loaded_pids = set(re.findall(r'gatecast_model_loaded\{model="etth1-lstm",pid="(\d+)"', text))
            if len(loaded_pids) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert str(victim) not in loaded_pids and len(loaded_pids) == 2
        assert "gatecast_requests_in_flight " in text
        # Each worker publishes its in-flight count every second (app.metrics.ProcessValue): the survivor's may
        # still show the load for a moment. What the dead worker held must never stay.
        deadline = time.monotonic() + 5
        while (in_flight := metric_value(text, "gatecast_requests_in_flight")) > 0 and time.monotonic() < deadline:
            time.sleep(0.25)
            text = httpx.get(f"{url}/metrics").text
        assert in_flight == 0  # a scrape does not count itself


def test_workers_exit_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    """A SIGKILL to `gatecast serve` (an OOM kill, `kill -9`) leaves no worker answering on the port unsupervised."""
    import os
    import shutil
    import signal
    import time

    from harness.live import running_server

    repo = tmp_path / "models"
    shutil.copytree(MODELS.parent / "tests" / "fixtures" / "models" / "tiny", repo / "tiny")
    with running_server(repo, workers=2) as (url, proc):
        deadline = time.monotonic() + 30
        while len(workers := worker_pids(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 2, workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10  # the bar: no worker alive 10 s after its supervisor is killed
        while (alive := {p for p in workers if Path(f"/proc/{p}").exists()}) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in alive:  # a failure here leaves nothing running behind the test
            os.kill(pid, signal.SIGKILL)
        assert not alive, f"workers {sorted(alive)} outlived their supervisor"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/v2/health/live", timeout=2)


def test_a_model_published_or_removed_is_served_or_refused_by_every_worker_before_the_call_returns(
    tmp_path: Path,
) -> None:
    """With the poll out of the picture (an hour), a publish or removal that advances the repository's generation
    (contract.generation, as the trainer and the TimeGPT routes do) is seen by both workers on the next request."""
    import os
    import shutil

    from contract import generation

    repo = tmp_path / "models"
    tiny = MODELS.parent / "tests" / "fixtures" / "models" / "tiny"
    shutil.copytree(tiny, repo / "tiny")
    payload = {"model": "fresh", "series": [{"id": "a", "values": [float(i % 24) for i in range(200)]}]}

    def statuses() -> set[int]:
        found = set()
        for _ in range(24):  # a new connection each time: the kernel hands them to both workers
            with httpx.Client(base_url=url, timeout=30) as client:
                found.add(client.post("/forecast", json=payload).status_code)
        return found

    with running_server(repo, workers=2, GATECAST_REPOSITORY_POLL_S="3600") as (url, _):
        assert statuses() == {404}
        staging = repo / ".staging" / "fresh"
        shutil.copytree(tiny, staging)
        os.rename(staging, repo / "fresh")  # published as a trainer publishes: one rename, then the generation
        generation.advance(repo)
        assert statuses() == {200}
        (repo / ".trash").mkdir()
        os.rename(repo / "fresh", repo / ".trash" / "fresh")  # removed as the TimeGPT delete route removes
        generation.advance(repo)
        assert statuses() == {404}


def test_a_sighup_under_load_drops_no_request_and_replaces_no_worker(tmp_path: Path) -> None:
    """SIGHUP to `gatecast serve` makes every worker re-read the model folder; it never replaces the workers.
    (uvicorn's own SIGHUP restarts them all, and a retiring worker closes its keep-alive connections under their
    clients: a request in flight on one of them fails.)"""
    import shutil
    import signal
    import threading

    repo = tmp_path / "models"
    shutil.copytree(MODELS.parent / "tests" / "fixtures" / "models" / "tiny", repo / "tiny")
    payload = {"model": "tiny", "series": [{"id": "a", "values": [float(i % 24) for i in range(200)]}]}
    answered: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as session:  # one keep-alive connection per client
            while not stop.is_set():
                try:
                    status = session.post("/forecast", json=payload).status_code
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                answered.append(status)

    def reloads() -> int:
        log = next(tmp_path.glob("server-*.log")).read_text(errors="replace")
        return log.count("SIGHUP: re-reading the model repository")

    with running_server(repo, workers=2) as (url, proc):
        assert wait_for(lambda: len(worker_pids(proc.pid)) == 2)
        before = worker_pids(proc.pid)
        clients = [threading.Thread(target=client) for _ in range(6)]
        for thread in clients:
            thread.start()
        try:
            assert wait_for(lambda: len(answered) >= 100)
            for signals in range(1, 4):
                proc.send_signal(signal.SIGHUP)
                assert wait_for(lambda n=signals: reloads() >= 2 * n), "not every worker re-read the folder"
                seen = len(answered)
                assert wait_for(lambda s=seen: len(answered) >= s + 100)
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=60)
        assert not failures, f"{len(failures)} of {len(answered) + len(failures)} requests failed: {failures[:3]}"
        assert set(answered) == {200}
        assert worker_pids(proc.pid) == before, "SIGHUP replaced the workers"
