"""Every case of the bad-input table, in-process against the committed models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.bad_inputs import CASES, Case

MODELS = Path(__file__).resolve().parent.parent / "models"


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_repository=MODELS))) as c:
        yield c


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input_gets_its_status_and_a_message_that_says_what_to_fix(client: TestClient, case: Case) -> None:
    r = client.post("/forecast", content=case.body, headers=case.headers)
    assert r.status_code == case.status, r.text[:500]
    if case.status == 200:
        assert all(len(f["mean"]) == 24 for f in r.json()["forecasts"])
    else:
        assert case.fragment in r.json()["message"], r.text[:500]
    assert client.get("/v2/health/ready").status_code == 200  # still up and serving
