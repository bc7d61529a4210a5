"""The request envelope: what every call passes around its protocol's work, on HTTP (app.middleware) and gRPC
(app.protocols.oip.grpc_server) alike, written once so the two cannot drift. More: docs/design.md#appenvelope.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from app import admission, auth, batcher, deadlines, error_mapping, metrics
from app.deadlines import Deadlines
from app.errors import GatecastError, RequestTimeout
from app.settings import Settings

log = logging.getLogger("gatecast")


@dataclass
class Call:
    ticket: admission.Ticket | None
    task: asyncio.Task[object]


class Envelope:
    """One per worker and protocol server; used from the worker's event loop only."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.deadlines = Deadlines(settings.request_timeout_s)

    @contextmanager
    def open(
        self, budget: admission.MemoryBudget | None, source: Hashable | None, counted: bool = True
    ) -> Iterator[Call]:
        ticket = budget.ticket() if budget is not None else None
        token = admission.current_ticket.set(ticket)
        source_token = batcher.current_source.set(source)
        task = self.deadlines.start()
        deadline_token = deadlines.current.set((self.deadlines, task))
        if counted:
            metrics.IN_FLIGHT.value += 1
        try:
            yield Call(ticket, task)
        finally:
            self.deadlines.finish(task)
            deadlines.current.reset(deadline_token)
            admission.current_ticket.reset(token)
            batcher.current_source.reset(source_token)
            if ticket is not None:
                ticket.release()
            if counted:
                metrics.IN_FLIGHT.value -= 1

    def admit(
        self, call: Call, access: auth.Access, headers: Iterable[tuple[str, str]], message_bytes: int, what: str
    ) -> None:
        """The credential and key checks (`access`: the protocol's rule for the call), then the message's bytes
        charged to the ticket."""
        pairs = list(headers)
        auth.one_credential(pairs)
        auth.check(access, dict(pairs), self.settings)
        if call.ticket is not None:
            call.ticket.charge(admission.REQUEST_BYTES + admission.BODY_COPIES * message_bytes, what)

    def timed_out(self, call: Call, exc: BaseException) -> bool:
        """For a CancelledError: whether the time limit caused it (it is then answered), not a shutdown."""
        return isinstance(exc, asyncio.CancelledError) and self.deadlines.expired(call.task)

    def problem(self, exc: BaseException, method: str, path: str, timed_out: bool = False) -> error_mapping.Problem:
        """The answer to a failed call; logs what is not a client's mistake."""
        if timed_out:
            exc = timeout(self.settings.request_timeout_s)
        problem = error_mapping.problem_of(exc, method, path)
        if not isinstance(exc, GatecastError) and problem.status >= 500:
            log.error("unexpected error on %s %s", method, path, exc_info=exc)
        return problem


def timeout(limit: float) -> RequestTimeout:
    return RequestTimeout(f"the request took longer than {limit} s (GATECAST_REQUEST_TIMEOUT_S); retry or send less")
