"""Memory admission (app/admission.py): tickets against a budget, the memory limit read from cgroups, the
estimates, and the HTTP answers they give in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import admission
from app.admission import MemoryBudget, MemoryFacts, cgroup_memory_limit, decode_cost, derive_budget
from app.errors import Overloaded, PayloadTooLarge
from app.main import create_app
from app.settings import Settings

MiB = 2**20


def test_a_ticket_that_fits_is_admitted_and_released() -> None:
    budget = MemoryBudget(10 * MiB)
    ticket = budget.ticket()
    ticket.charge(4 * MiB, "a body")
    ticket.charge(4 * MiB, "its answer")
    assert budget.used == 8 * MiB and ticket.held == 8 * MiB
    ticket.release()
    assert budget.used == 0 and ticket.held == 0


def test_a_charge_that_does_not_fit_now_is_503_and_one_that_never_fits_is_413() -> None:
    budget = MemoryBudget(10 * MiB)
    first = budget.ticket()
    first.charge(7 * MiB, "a body")
    with pytest.raises(Overloaded, match="short of memory") as busy:
        budget.ticket().charge(4 * MiB, "a body")
    assert busy.value.code == "memory_budget" and busy.value.retry_after == 1.0
    with pytest.raises(PayloadTooLarge, match="split the request"):
        budget.ticket().charge(11 * MiB, "a body")
    first.release()
    again = budget.ticket()
    again.charge(4 * MiB, "a body")  # fits again once the first request is done
    again.release()


def test_the_limit_is_the_tightest_of_the_cgroup_and_its_ancestors_v1(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("12:pids:/x\n4:memory:/pod/app\n0::/\n")
    root = tmp_path / "fs"
    (root / "memory" / "pod" / "app").mkdir(parents=True)
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    (root / "memory" / "pod" / "memory.limit_in_bytes").write_text(str(512 * MiB))
    (root / "memory" / "pod" / "app" / "memory.limit_in_bytes").write_text(str(768 * MiB))
    assert cgroup_memory_limit(proc, root) == 512 * MiB


def test_the_limit_is_read_from_cgroup_v2_and_max_means_none(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("0::/kubepods/pod1\n")
    root = tmp_path / "fs"
    (root / "kubepods" / "pod1").mkdir(parents=True)
    (root / "kubepods" / "pod1" / "memory.max").write_text("max\n")
    assert cgroup_memory_limit(proc, root) is None
    (root / "kubepods" / "pod1" / "memory.max").write_text(f"{1024 * MiB}\n")
    assert cgroup_memory_limit(proc, root) == 1024 * MiB


def test_the_budget_is_a_share_of_the_workers_free_part_of_the_limit() -> None:
    """The limit is shared by every worker and the supervisor."""
    sup = admission.SUPERVISOR_BYTES
    facts = MemoryFacts(limit=1024 * MiB, limited_by="cgroup", resident=224 * MiB)
    assert derive_budget(0, 1, facts) == int(admission.BUDGET_SHARE * (1024 * MiB - sup - 224 * MiB))
    two = MemoryFacts(limit=1024 * MiB, limited_by="cgroup", resident=212 * MiB)
    assert derive_budget(0, 2, two) == int(admission.BUDGET_SHARE * ((1024 * MiB - sup) / 2 - 212 * MiB))
    assert derive_budget(64, 2, two) == 64 * MiB  # the setting wins


def test_more_workers_than_the_limit_holds_are_refused_saying_how_many_fit() -> None:
    """The committed models take about 215 MiB a worker: two of them do not fit 400 MiB, one does."""
    small = MemoryFacts(limit=400 * MiB, limited_by="cgroup", resident=215 * MiB)
    with pytest.raises(admission.TooLittleMemory, match="Set GATECAST_WORKERS=1") as caught:
        derive_budget(0, 2, small)
    assert "400 MiB (cgroup)" in str(caught.value)
    assert derive_budget(0, 1, small) >= admission.MIN_BUDGET
    starved = MemoryFacts(limit=256 * MiB, limited_by="cgroup", resident=250 * MiB)
    with pytest.raises(admission.TooLittleMemory, match="Serve fewer models"):
        derive_budget(0, 1, starved)


def test_decode_estimates_count_values_objects_rows_and_raw_tensor_bytes() -> None:
    json_body = b'{"series": [{"id": "a", "values": [1.0, 2.0, 3.0]}]}'
    assert (
        decode_cost(json_body, "application/json") == admission.JSON_VALUE_BYTES * 4 + admission.JSON_OBJECT_BYTES * 2
    )
    csv_body = b"unique_id,ds,y\na,2024-01-01,1\na,2024-01-02,2\n"
    assert decode_cost(csv_body, "text/csv") == admission.CSV_ROW_BYTES * 4
    head = b'{"inputs": []}'
    raw = bytes(8000)
    header_cost = admission.JSON_VALUE_BYTES + admission.JSON_OBJECT_BYTES  # no comma, one object
    assert decode_cost(head + raw, "", json_length=len(head)) == header_cost + int(admission.BINARY_BYTE_COST * 8000)


def test_in_process_a_body_over_the_whole_budget_is_413_and_the_worker_keeps_serving(repository: Path) -> None:
    with TestClient(create_app(Settings(model_repository=repository, memory_budget_mb=2))) as c:
        series = [{"id": str(i), "values": [1.5] * 40} for i in range(2_000)]
        r = c.post("/forecast", json={"series": series})
        assert r.status_code == 413 and "split the request" in r.json()["message"]
        assert c.post("/forecast", json={"series": series[:2]}).status_code == 200
        assert "gatecast_memory_budget_bytes 2.097152e+06" in c.get("/metrics").text
        assert c.app.state.memory_budget.used == 0  # type: ignore[attr-defined]  # every ticket was released
