"""Pure ASGI middleware: request metrics, body-size limit and request time limit, around every route."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
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
            too_large = self._declared_too_large(scope)
            if too_large:
                await _send_error(send, 413, "payload_too_large", too_large)
                status.update(code=413, sent=True)
                return
            try:
                async with asyncio.timeout(self.settings.request_timeout_s):
                    await self.app(scope, self._limited(receive), send_wrapper)
            except TimeoutError:
                metrics.ERRORS.labels(reason="timeout").inc()
                if not status["sent"]:
                    await _send_error(
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
                    await _send_error(send, 413, "payload_too_large", str(exc))
                    status.update(code=413, sent=True)
        finally:
            metrics.IN_FLIGHT.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.HTTP_DURATION.labels(
                route=template, method=scope["method"], status_class=f"{status['code'] // 100}xx"
            ).observe(time.perf_counter() - started)

    def _declared_too_large(self, scope: Scope) -> str | None:
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    return None
                if size > self.settings.max_body_bytes:
                    metrics.ERRORS.labels(reason="payload_too_large").inc()
                    return _too_large_message(size, self.settings.max_body_bytes)
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


async def _send_error(send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": code, "message": message}).encode()
    raw: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
