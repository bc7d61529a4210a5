"""Pure ASGI middleware: request metrics, body-size limit and request time limit, around every route."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import auth, metrics
from app.errors import GatecastError, PayloadTooLarge, UnsupportedMediaType
from app.settings import Settings


class ServingMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["sent"] = True
            await send(message)

        metrics.IN_FLIGHT.inc()
        try:
            refused = self._refuse(scope)
            if refused is not None:
                metrics.ERRORS.labels(reason=refused.code).inc()
                extra = {"www-authenticate": "Bearer"} if refused.status == 401 else None
                await _send_error(scope, send, refused.status, refused.code, refused.message, extra)
                status.update(code=refused.status, sent=True)
                return
            try:
                async with asyncio.timeout(self.settings.request_timeout_s):
                    await self.app(scope, self._limited(receive), send_wrapper)
            except TimeoutError:
                metrics.ERRORS.labels(reason="timeout").inc()
                if not status["sent"]:
                    await _send_error(
                        scope,
                        send,
                        503,
                        "timeout",
                        f"the request took longer than "
                        f"{self.settings.request_timeout_s} s (GATECAST_REQUEST_TIMEOUT_S); retry or send less",
                        {"retry-after": "1"},
                    )
                    status.update(code=503, sent=True)
            except _BodyTooLarge as exc:
                metrics.ERRORS.labels(reason="payload_too_large").inc()
                if not status["sent"]:
                    await _send_error(scope, send, 413, "payload_too_large", str(exc))
                    status.update(code=413, sent=True)
        finally:
            metrics.IN_FLIGHT.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.HTTP_DURATION.labels(
                route=template, method=scope["method"], status_class=f"{status['code'] // 100}xx"
            ).observe(time.perf_counter() - started)

    def _refuse(self, scope: Scope) -> GatecastError | None:
        """Checks that need only the headers: access, declared size, compressed bodies."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            auth.check(scope["method"], scope["path"], headers, self.settings)
        except GatecastError as exc:
            return exc
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.settings.max_body_bytes:
            return PayloadTooLarge(_too_large_message(int(length), self.settings.max_body_bytes))
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # Never inflate a client's body: a small gzip can expand to gigabytes.
            return UnsupportedMediaType(f"Content-Encoding {encoding!r} is not accepted; send the body uncompressed")
        return None

    def _limited(self, receive: Receive) -> Receive:
        """Count streamed (chunked) body bytes too: Content-Length may be absent."""
        limit = self.settings.max_body_bytes
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(_too_large_message(seen, limit))
            return message

        return wrapped


class _BodyTooLarge(Exception):
    pass


def _too_large_message(size: int, limit: int) -> str:
    return f"the body has {size}+ bytes; the limit is {limit} (GATECAST_MAX_BODY_BYTES): split the request"


async def _send_error(
    scope: Scope, send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    # The same shapes as app.main's handlers: {"error": message} on the inference protocol's routes.
    shape = {"error": message} if scope["path"].startswith("/v2/") else {"error": code, "message": message}
    body = json.dumps(shape).encode()
    raw: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
