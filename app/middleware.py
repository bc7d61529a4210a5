"""The outermost layer of the app, around every HTTP request: in order, the header checks (the protocol's key rule,
declared size, encoding), the memory ticket, the body (bounded, inflated, its decoding charged), the route under the
request's deadline, and the error mapping for whatever escaped it. The protocols' direct routes are called here,
without FastAPI's router. More: docs/design.md#appmiddleware.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from prometheus_client import Histogram
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import admission, encoding, error_mapping, metrics
from app.envelope import Call, Envelope
from app.errors import PayloadTooLarge
from app.protocols import Protocols
from app.protocols.protocol import DirectRoute
from app.settings import Settings

log = logging.getLogger("gatecast")


@dataclass
class _Status:
    code: int = 500
    sent: bool = False  # the response has started: it can no longer be replaced by an error


class ServingMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, protocols: Protocols) -> None:
        self.app = app
        self.settings = settings
        self.protocols = protocols
        direct = protocols.direct_routes
        self._direct = {r.template: r for r in direct if "{" not in r.template}
        self._direct_patterns = [(r.pattern, r) for r in direct if "{" in r.template]
        self._templates: dict[object, str] | None = None  # endpoint -> path template, built on first use
        self._durations: dict[tuple[str, str, int], Histogram] = {}
        self._envelope = Envelope(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = _Status()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.code = message["status"]
                status.sent = True
            await send(message)

        counted = scope["path"] != "/metrics"  # a scrape does not count itself in flight
        budget: admission.MemoryBudget | None = getattr(scope["app"].state, "memory_budget", None)
        incoming = _Body(receive)
        with self._envelope.open(budget, scope.get("client"), counted) as call:
            try:
                pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
                headers = _fields(pairs)
                declared = headers.get("content-length", "")
                self._envelope.admit(
                    call,
                    self.protocols.access(scope["method"], scope["path"]),
                    pairs,
                    int(declared) if declared.isdigit() else 0,
                    "this request's body",
                )
                self._check_headers(headers)
                ticket = call.ticket
                body = await self._read_body(incoming.receive, ticket, declared.isdigit())
                if body is None:
                    return  # the client went away before sending its body
                coding = headers.get("content-encoding", "").strip().lower()
                if body and coding:
                    body = encoding.inflate(body, coding, self.settings.max_body_bytes)
                    if ticket is not None:
                        ticket.charge(admission.BODY_COPIES * len(body), "this request's inflated body")
                if ticket is not None and body:
                    cost = self.protocols.decode_cost(scope["path"], body, headers)
                    ticket.charge(cost, "decoding this request's body")
                repository = getattr(scope["app"].state, "repository", None)
                if repository is not None and counted:  # a model published or removed through another worker
                    await repository.catch_up()
                route = self._match(scope)
                if route is None:
                    await self.app(scope, _replay(body, receive), send_wrapper)
                else:
                    request = Request(scope, receive)
                    request._body = body  # Starlette's cache behind request.body(): the body read above
                    response = await route.endpoint(request)
                    await response(scope, receive, send_wrapper)
            except asyncio.CancelledError as exc:
                if not self._envelope.timed_out(call, exc):
                    raise  # not the time limit: the server is shutting down
                await self._answer(scope, send_wrapper, status, exc, timed_out=True)
            except Exception as exc:  # noqa: BLE001 - the one place nothing may escape from
                if not incoming.ended:  # refused before its body was read: let the client finish sending first
                    await self._drain(incoming, call)
                await self._answer(scope, send_wrapper, status, exc)
            finally:
                route_template = self._template(scope)
                self._duration(route_template, scope["method"], status.code).observe(time.perf_counter() - started)

    def _duration(self, route: str, method: str, status: int) -> Histogram:
        """The request-duration histogram child, cached: `labels()` takes a lock and sorts its arguments."""
        key = (route, method, status)
        child = self._durations.get(key)
        if child is None:
            child = metrics.HTTP_DURATION.labels(route=route, method=method, status_class=f"{status // 100}xx")
            if len(self._durations) < 4096:  # routes x methods x statuses: small, but never unbounded
                self._durations[key] = child
        return child

    def _match(self, scope: Scope) -> DirectRoute | None:
        """The direct route for this request, with its path parameters set in the scope; None for the rest."""
        path = scope["path"]
        route = self._direct.get(path)
        if route is None:
            for pattern, candidate in self._direct_patterns:
                match = pattern.match(path)
                if match:
                    route = candidate
                    scope["path_params"] = match.groupdict()
                    break
        if route is None or route.method != scope["method"]:
            return None  # other methods (405) and everything else: FastAPI's router
        scope["gatecast.route"] = route.template
        return route

    def _template(self, scope: Scope) -> str:
        """The matched route's path template; "unmatched" only for paths no route took. FastAPI's own routes set
        scope["route"]; plain Starlette routes and mounts (/openapi.json, the docs' assets) only their endpoint."""
        direct = scope.get("gatecast.route")
        if direct is not None:
            return str(direct)
        route = scope.get("route")
        if route is not None:
            return str(route.path)
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return "unmatched"
        if self._templates is None:
            self._templates = {}
            for r in scope["app"].router.routes:
                key, path = getattr(r, "endpoint", None) or getattr(r, "app", None), getattr(r, "path", None)
                if key is not None and isinstance(path, str):
                    self._templates[key] = path
        return self._templates.get(endpoint, "unmatched")

    async def _answer(
        self, scope: Scope, send: Send, status: _Status, exc: BaseException, timed_out: bool = False
    ) -> None:
        problem = self._envelope.problem(exc, scope["method"], scope["path"], timed_out)
        if status.sent:
            return  # the response is under way; it cannot be replaced, only cut short by the server
        await error_mapping.send_problem(scope, send, problem, self.protocols.owner(scope["path"]).error_body)

    def _check_headers(self, headers: dict[str, str]) -> None:
        """Checks that need only the headers: declared size, compressed bodies (access: the envelope)."""
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.settings.max_body_bytes:
            raise PayloadTooLarge(_too_large_message(int(length), self.settings.max_body_bytes))
        encoding.check(headers.get("content-encoding", ""))

    async def _drain(self, body: _Body, call: Call) -> None:
        """Read and drop the rest of a refused request's body (at most twice the body limit, and no longer than the
        request's own deadline) before answering: a connection answered while its client still sends counts as
        idle, the idle cap can close it under the client, and the client reads a reset instead of its 413 or 503."""
        left = 2 * self.settings.max_body_bytes
        try:
            while not body.ended and left > 0:
                left -= len((await body.receive()).get("body", b""))
        except asyncio.CancelledError as exc:
            if not self._envelope.timed_out(call, exc):
                raise  # not the deadline: the server is shutting down

    async def _read_body(self, receive: Receive, ticket: admission.Ticket | None, charged: bool) -> bytes | None:
        """The whole body, or None when the client disconnected. Chunked bodies are charged as they arrive."""
        limit = self.settings.max_body_bytes
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            if chunk:
                seen += len(chunk)
                if seen > limit:
                    raise PayloadTooLarge(_too_large_message(seen, limit))
                if ticket is not None and not charged:
                    ticket.charge(admission.BODY_COPIES * len(chunk), "this request's body")
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Body:
    """The connection's receive, noting when the request's body has ended (or its client has gone)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.ended = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            self.ended = True
        return message


def _replay(body: bytes, receive: Receive) -> Receive:
    """The app's receive: the buffered body once, then the connection's own messages (disconnects)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _too_large_message(size: int, limit: int) -> str:
    return f"the body has {size}+ bytes; the limit is {limit} (GATECAST_MAX_BODY_BYTES): split the request"


# Header fields whose value is a list: sent on several lines, they are one list in order (RFC 9110, section 5.3).
LIST_FIELDS = ("content-encoding",)


def _fields(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Header fields by (lower-case) name: a list field's lines joined with commas, otherwise the last line."""
    fields = dict(pairs)
    for name in LIST_FIELDS:
        lines = [value for key, value in pairs if key == name]
        if len(lines) > 1:
            fields[name] = ", ".join(lines)
    return fields
