"""The one error mapping: any exception, raised by any route, middleware, the HTTP protocol layer or the gRPC
server, becomes a status, a code, a message and headers here and nowhere else; the body's shape is the protocol's
that owns the path (app.protocols). An exception no rule knows is a bug in gatecast: answered 500 `internal`, logged
with its traceback, and never the end of the process.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import Scope, Send

from app import metrics
from app.errors import GatecastError, MethodNotAllowed, NotFound, Overloaded, RequestTimeout, Unauthorized
from contract.longformat import LongFormatError as TableError

Shape = Callable[["Problem"], dict[str, Any]]  # a protocol's error body
INTERNAL = "the server failed on this request; the error is logged (a fault in gatecast, not in the request)"


@dataclass(frozen=True)
class Problem:
    status: int
    code: str  # machine-readable reason; also the `reason` label of gatecast_errors_total
    message: str  # what is wrong and how to fix it
    headers: dict[str, str] = field(default_factory=dict)


def problem_of(exc: BaseException, method: str = "", path: str = "") -> Problem:
    """The status, code, message and headers for an exception. Total: every exception gets an answer."""
    if isinstance(exc, GatecastError):
        return Problem(exc.status, exc.code, exc.message, _headers(exc))
    if isinstance(exc, TableError):
        return Problem(422, "invalid_long_format", str(exc))
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        if any(e["type"] in ("json_invalid", "json_type") for e in errors):
            return Problem(400, "malformed_json", f"the body is not valid JSON: {describe(errors)}")
        return Problem(422, "invalid_input", describe(errors))
    if isinstance(exc, RequestValidationError):
        return Problem(422, "invalid_input", describe(exc.errors()))
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 404:
            return problem_of(NotFound(f"no route {method} {path}; the routes are listed at /docs"))
        if exc.status_code == 405:
            allow = (exc.headers or {}).get("Allow", "")
            return problem_of(MethodNotAllowed(f"{path} does not answer {method}; it answers {allow}", allow))
        return Problem(exc.status_code, "http_error", str(exc.detail), dict(exc.headers or {}))
    return Problem(500, "internal", INTERNAL)


def _headers(exc: GatecastError) -> dict[str, str]:
    if isinstance(exc, Overloaded):
        return {"retry-after": str(max(1, round(exc.retry_after)))}
    if isinstance(exc, RequestTimeout):
        return {"retry-after": "1"}
    if isinstance(exc, Unauthorized):
        return {"www-authenticate": "Bearer"}
    if isinstance(exc, MethodNotAllowed) and exc.allow:
        return {"allow": exc.allow}
    return {}


def describe(errors: Sequence[Any]) -> str:
    """pydantic errors -> 'series.0.values.3: Input should be a finite number; ...' (first five)."""
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def count(problem: Problem) -> None:
    """Every error answered, on any protocol, counts once by reason."""
    metrics.ERRORS.labels(reason=problem.code).inc()


def body(problem: Problem, shape: Shape) -> bytes:
    """The JSON body in `shape` (the protocol's that owns the path); counts the error by reason."""
    count(problem)
    return json.dumps(shape(problem)).encode()


def response(problem: Problem, shape: Shape) -> Response:
    return Response(body(problem, shape), problem.status, problem.headers, media_type="application/json")


async def send_problem(scope: Scope, send: Send, problem: Problem, shape: Shape) -> None:
    """For pure ASGI code (the middleware), before any response has started."""
    content = body(problem, shape)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in problem.headers.items()]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def raw_response(problem: Problem, shape: Shape) -> bytes:
    """A whole HTTP/1.1 response that closes the connection: for the protocol layer, before any ASGI app runs."""
    from http import HTTPStatus

    content = body(problem, shape)
    head = [f"HTTP/1.1 {problem.status} {HTTPStatus(problem.status).phrase}"]
    head += ["content-type: application/json", f"content-length: {len(content)}", "connection: close"]
    head += [f"{k}: {v}" for k, v in problem.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + content


def _handler(shape_of: Callable[[str], Shape]) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        """Only the known kinds below reach here (all client errors or ours on purpose); anything else is logged
        and answered by the middleware."""
        path = request.url.path
        if isinstance(exc, StarletteHTTPException) and exc.status_code == 405:
            # Starlette names the methods of the first route that matched; a path served by several routes (GET,
            # PUT and DELETE /streams/{id}) answers all of theirs, as the schema documents them.
            allow = _allowed(request.app, path) or (exc.headers or {}).get("Allow", "")
            exc = MethodNotAllowed(f"{path} does not answer {request.method}; it answers {allow}", allow)
        return response(problem_of(exc, request.method, path), shape_of(path))

    return handle


_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _allowed(app: FastAPI, path: str) -> str:
    table = getattr(app.state, "allowed_methods", None)
    if table is None:
        table = [
            (compile_path(template)[0], ", ".join(sorted(m.upper() for m in item if m in _METHODS)))
            for template, item in app.openapi()["paths"].items()
        ]
        app.state.allowed_methods = table
    return next((methods for regex, methods in table if regex.match(path)), "")


def install(app: FastAPI, shape_of: Callable[[str], Shape]) -> None:
    """Route every error type that handlers can see through `problem_of`, answered in `shape_of(path)`. Anything
    else that escapes a route reaches `app.middleware.ServingMiddleware`, which answers it the same way."""
    handle = _handler(shape_of)
    for kind in (GatecastError, TableError, ValidationError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, handle)
