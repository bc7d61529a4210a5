"""HTTP/1.1 limits enforced before a request reaches the app: uvicorn's httptools protocol, with guards. More:
docs/design.md#apphttpguard.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any, cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app import error_mapping
from app.errors import GatecastError, HeaderTooLarge, RequestTimeout
from app.protocols import rest
from app.settings import get_settings

# Connections of this worker with no request in progress, least recently active first.
_IDLE: OrderedDict[GuardedHttpToolsProtocol, None] = OrderedDict()


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a head that was refused."""


class HeadTimeout(RequestTimeout):
    status = 408
    code = "header_timeout"


class _CoalescingTransport:
    """The connection's transport, except that a response head is held back until its body is written. uvicorn
    writes the status line and headers, then the body: two send() calls and two TCP segments for every answer,
    where one does. A head with no write after it in this turn of the event loop goes out on its own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._flush: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            data = self._held + data
            self._held = None
            if self._flush is not None:
                self._flush.cancel()
                self._flush = None
        elif data[:9] == b"HTTP/1.1 " and data[-4:] == b"\r\n\r\n":
            self._held = bytes(data)
            self._flush = self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        self._flush = None
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.max_head_bytes = settings.max_header_bytes
        self.max_headers = settings.max_header_count
        self.head_timeout_s = settings.header_timeout_s
        self.max_idle = settings.max_idle_connections
        self._in_head = False  # a request head has begun and is not complete yet
        self._between = True  # the last message is complete: the next bytes start a new head
        self._head_bytes = 0  # received while in a head or between messages
        self._counting = True  # the bytes being parsed now were counted in _head_bytes
        self._head_counted = True  # every byte of the current head was counted: _head_bytes bounds its size
        self._header_count = 0
        # One timer per connection, re-armed lazily: a request's head sets a deadline and clears it when complete,
        # and the timer checks the deadline when it fires. Scheduling and cancelling a timer for every request
        # cost more than the rest of these guards together.
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_deadline: float | None = None
        self._refused = False

    # --- connection -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, _CoalescingTransport(transport, self.loop)))
        self._start_head_timer()
        self._mark_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        _IDLE.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        self._counting = self._in_head or self._between  # not while the parser is reading a body
        if self._counting:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if not self._refused:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_head and self._head_bytes > self.max_head_bytes:  # a head still incomplete past the limit
            self._refuse(HeaderTooLarge(self._too_large()))

    # --- parser callbacks -------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        _IDLE.pop(self, None)
        self._in_head = True
        self._between = False
        self._header_count = 0
        # A pipelined head can begin inside bytes that arrived during the previous body, which were not counted.
        self._head_counted = self._counting
        self._start_head_timer()
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refuse(HeaderTooLarge(f"more than {self.max_headers} headers (GATECAST_MAX_HEADER_COUNT)"))
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        # The bytes received since the head began bound its size from above: count exactly only past the limit.
        if not self._head_counted or self._head_bytes > self.max_head_bytes:
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self.max_head_bytes:
                self._refuse(HeaderTooLarge(self._too_large()))
                raise _Refused
        self._in_head = False
        self._head_bytes = 0
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._between = True
        self._head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._mark_idle()

    # --- guards -----------------------------------------------------------------------------------------

    def _too_large(self) -> str:
        return f"the request line and headers exceed {self.max_head_bytes} bytes (GATECAST_MAX_HEADER_BYTES)"

    def _start_head_timer(self) -> None:
        self._head_deadline = self.loop.time() + self.head_timeout_s
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(self._head_deadline, self._head_timer_fired)

    def _stop_head_timer(self) -> None:
        self._head_deadline = None  # the timer stays armed and does nothing when it fires

    def _head_timer_fired(self) -> None:
        self._head_timer = None
        deadline = self._head_deadline
        if deadline is None:
            return
        if self.loop.time() < deadline:  # a later head began after this timer was set: wait for its deadline
            self._head_timer = self.loop.call_at(deadline, self._head_timer_fired)
            return
        self._head_deadline = None
        self._head_timed_out()

    def _head_timed_out(self) -> None:
        if not (self._in_head or self._between) or self.transport.is_closing():
            return
        if self._head_bytes == 0:
            self.transport.close()  # nothing sent at all: close quietly, as for an idle keep-alive connection
            return
        limit = f"{self.head_timeout_s} s (GATECAST_HEADER_TIMEOUT_S)"
        self._refuse(HeadTimeout(f"the request's headers did not arrive within {limit}"))

    def _refuse(self, error: GatecastError) -> None:
        """Answer the refusal (in the error shape of app.error_mapping) and close the connection."""
        if self._refused:
            return
        self._refused = True
        self._stop_head_timer()
        self.logger.warning("refused a request from %s: %s", self.client, error.message)
        if not self.transport.is_closing():
            self.transport.write(error_mapping.raw_response(error_mapping.problem_of(error), rest.error_body))
            self.transport.close()

    def _mark_idle(self) -> None:
        _IDLE.pop(self, None)
        _IDLE[self] = None
        while len(_IDLE) > self.max_idle:
            oldest, _ = _IDLE.popitem(last=False)
            oldest._stop_head_timer()
            oldest.transport.close()
