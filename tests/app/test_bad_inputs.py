"""Every case of the bad-input table, in-process against the committed models, on the route it names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from harness.bad_inputs import CASES, Case

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_repository=MODELS)), raise_server_exceptions=False) as c:
        yield c


def send(client: TestClient | httpx.Client, case: Case) -> httpx.Response:
    return client.request(case.method, case.path, content=case.body, headers=case.headers)


def message(case: Case, r: httpx.Response) -> str:
    """The message in the error shape of the case's route: {"error": message} on /v2, else error and message."""
    body = r.json()
    if case.path.startswith("/v2/"):
        assert set(body) == {"error"}, body
        return str(body["error"])
    assert set(body) == {"error", "message"}, body
    return str(body["message"])


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input_gets_its_status_and_a_message_that_says_what_to_fix(client: TestClient, case: Case) -> None:
    r = send(client, case)
    assert r.status_code == case.status, r.text[:500]
    if case.status == 200:
        assert r.status_code == 200
    else:
        assert case.fragment in message(case, r), r.text[:500]
    assert client.get("/v2/health/ready").status_code == 200  # still up and serving


def test_every_class_of_fault_reaches_every_route_that_can_meet_it() -> None:
    routes_by_kind: dict[str, set[str]] = {}
    for case in CASES:
        routes_by_kind.setdefault(case.kind, set()).add(case.route)
    assert {"POST /forecast", "POST /forecast (CSV)"} <= routes_by_kind["time"]
    assert {"POST /forecast", "POST /forecast (CSV)", "POST /v2/models/etth1-lstm/infer (JSON)"} <= routes_by_kind[
        "values"
    ]
    assert {"POST /v2/models/etth1-lstm/infer (JSON)", "POST /v2/models/etth1-lstm/infer (binary)"} <= routes_by_kind[
        "protocol"
    ]
    assert any(route.startswith("GET /v2/") for route in routes_by_kind["routes"])
