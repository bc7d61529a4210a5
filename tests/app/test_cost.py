"""The cost table (harness/cost_cases.py), in-process against the committed models: each case's status and
message, and that what is refused for its work is refused from its numbers, allocating next to nothing."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app import forecasting
from app.forecast_jobs import SeriesInput, WindowJob
from app.main import create_app
from app.settings import Settings
from harness.cost_cases import CASES, TINY, Case

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    state = tmp_path_factory.mktemp("state")
    settings = Settings(model_repository=MODELS, state_dir=state)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def send(client: TestClient, case: Case) -> httpx.Response:
    return client.request(case.method, case.path, content=case.body, headers=case.headers)


def message(r: httpx.Response) -> str:
    """The message in any route's error shape: gatecast's, TimeGPT's (`detail`) or OIP's (`error`)."""
    body = r.json()
    return str(body.get("message") or body.get("detail") or body.get("error"))


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_each_cost_case_gets_its_status_and_a_message_that_says_what_to_fix(client: TestClient, case: Case) -> None:
    r = send(client, case)
    assert r.status_code == case.status, r.text[:500]
    if case.status != 200:
        text = message(r)
        assert case.fragment in text, text[:500]
        assert len(text) < 1000  # what the client sent is named, never echoed whole
    assert client.get("/v2/health/ready").status_code == 200


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES if c.kind == TINY])
def test_a_job_too_big_for_its_history_or_the_limits_is_refused_before_it_is_built(
    client: TestClient, case: Case
) -> None:
    """Peak Python allocation while the refusal is made: its body and the parsed request, no windows (a list
    of 10^9 cutoffs alone would be 8 GB)."""
    send(client, case)  # warm: imports, caches
    tracemalloc.start()
    try:
        r = send(client, case)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == case.status
    assert peak < 40 * len(case.body) + 8 * 2**20, peak


def test_windows_are_views_of_one_copy_of_the_series(client: TestClient) -> None:
    """A window job's windows share memory with one float32 copy of the series: 10,000 windows of 168 values
    hold 40 KB of values, not 6.7 MB."""
    service = client.app.state.repository.resolve("etth1-lstm")  # type: ignore[attr-defined]
    values = np.linspace(10, 20, 10_100)
    cutoffs = [np.arange(100, 10_100, dtype=np.int64)]
    plan = service.plan([SeriesInput("a", values)], cutoffs, 1, forecast=False)
    base = plan.windows[0].base
    assert base is not None and base.dtype == np.float32 and len(base) == 10_100
    assert all(w.base is base for w in plan.windows)
    job = WindowJob([SeriesInput("a", values)], cutoffs, 1)
    answered = client.portal.call(forecasting.windows, service, job)  # type: ignore[union-attr]
    assert answered.result.mean.shape == (10_000, 1)
