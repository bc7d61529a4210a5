"""app.envelope: what every HTTP request and gRPC call passes around its protocol's work."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app import admission, metrics
from app.admission import MemoryBudget
from app.auth import Access
from app.envelope import Envelope
from app.errors import BadRequest, Forbidden, InvalidInput, Overloaded, PayloadTooLarge, Unauthorized
from app.settings import Settings


def envelope(**settings: object) -> Envelope:
    return Envelope(Settings(**settings))  # type: ignore[arg-type]


def test_a_call_holds_its_ticket_and_counts_in_flight_until_it_ends() -> None:
    budget = MemoryBudget(10_000_000)
    before = metrics.IN_FLIGHT.value

    async def call() -> tuple[int, float]:
        with envelope().open(budget, "client") as opened:
            assert opened.ticket is not None
            envelope().admit(opened, Access.API_KEY, [], 1000, "the body")
            return budget.used, metrics.IN_FLIGHT.value

    used, in_flight = asyncio.run(call())
    assert used == admission.REQUEST_BYTES + admission.BODY_COPIES * 1000
    assert in_flight == before + 1
    assert budget.used == 0 and metrics.IN_FLIGHT.value == before


def test_a_scrape_is_not_counted_in_flight() -> None:
    before = metrics.IN_FLIGHT.value

    async def call() -> float:
        with envelope().open(None, None, counted=False):
            return metrics.IN_FLIGHT.value

    assert asyncio.run(call()) == before


def test_two_credentials_are_refused_before_the_key_is_checked() -> None:
    async def call() -> None:
        with envelope(api_keys=["k"]).open(None, None) as opened:
            headers = [("authorization", "Bearer k"), ("x-api-key", "k")]
            envelope(api_keys=["k"]).admit(opened, Access.API_KEY, headers, 0, "the body")

    with pytest.raises(BadRequest, match="2 credentials"):
        asyncio.run(call())


@pytest.mark.parametrize(
    ("access", "headers", "refusal"),
    [
        (Access.API_KEY, [], Unauthorized),
        (Access.API_KEY, [("x-api-key", "admin")], None),
        (Access.ADMIN, [("x-api-key", "user")], Unauthorized),
        (Access.ADMIN, [("authorization", "Bearer admin")], None),
        (Access.OPEN, [], None),
        (Access.METRICS, [], None),
        (Access.CONTROL, [("x-api-key", "admin")], Forbidden),  # model control is off
    ],
)
def test_the_key_check_applies_the_protocols_rule(
    access: Access, headers: list[tuple[str, str]], refusal: type[Exception] | None
) -> None:
    checked = envelope(api_keys=["user"], admin_keys=["admin"])

    async def call() -> None:
        with checked.open(None, None) as opened:
            checked.admit(opened, access, headers, 0, "the body")

    if refusal is None:
        asyncio.run(call())
    else:
        with pytest.raises(refusal):
            asyncio.run(call())


def test_a_message_that_cannot_fit_now_or_ever_is_refused_and_nothing_stays_charged() -> None:
    budget = MemoryBudget(admission.REQUEST_BYTES * 4)

    async def call(message_bytes: int) -> None:
        with envelope().open(budget, None) as opened:
            envelope().admit(opened, Access.API_KEY, [], message_bytes, "this body")

    with pytest.raises(PayloadTooLarge, match="this body"):  # more than the whole budget: never admitted
        asyncio.run(call(admission.REQUEST_BYTES * 2))
    held = budget.ticket()
    held.charge(admission.REQUEST_BYTES * 3, "another request")
    with pytest.raises(Overloaded, match="short of memory") as info:  # would fit once the other request is done
        asyncio.run(call(admission.REQUEST_BYTES // 4))
    assert info.value.code == "memory_budget" and info.value.retry_after == 1.0
    held.release()
    assert budget.used == 0


def test_only_the_deadline_counts_as_a_time_out() -> None:
    limited = envelope(request_timeout_s=0.05)

    async def call(cancel_it_ourselves: bool) -> bool:
        with limited.open(None, None) as opened:
            try:
                if cancel_it_ourselves:
                    asyncio.current_task().cancel()  # type: ignore[union-attr]
                await asyncio.sleep(30)
            except asyncio.CancelledError as exc:
                return limited.timed_out(opened, exc)
        raise AssertionError("never cancelled")

    assert asyncio.run(call(cancel_it_ourselves=False)) is True
    assert asyncio.run(call(cancel_it_ourselves=True)) is False


def test_a_clients_mistake_is_not_logged_and_a_fault_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="gatecast"):
        mistake = envelope().problem(InvalidInput("bad values"), "POST", "/forecast")
        assert not caplog.records
        fault = envelope().problem(ZeroDivisionError("oops"), "POST", "/forecast")
    assert (mistake.status, mistake.code) == (422, "invalid_input")
    assert (fault.status, fault.code) == (500, "internal") and "oops" not in fault.message
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None


def test_a_time_out_is_worded_with_its_setting() -> None:
    problem = envelope(request_timeout_s=7).problem(asyncio.CancelledError(), "POST", "/forecast", timed_out=True)
    assert (problem.status, problem.code) == (503, "timeout") and problem.headers == {"retry-after": "1"}
    assert "7.0 s (GATECAST_REQUEST_TIMEOUT_S)" in problem.message
