"""HTTP/1.1 limits enforced before a request reaches the app: uvicorn's httptools protocol, with guards.

uvicorn with httptools accepts a request head of any size and never times out a connection that is still
sending its head, so one client could hold memory and sockets without bound. Per connection this adds:

- head size: a request line and headers over GATECAST_MAX_HEADER_BYTES, or more than
  GATECAST_MAX_HEADER_COUNT headers, is answered 431 and the connection closed. Bytes are counted as they
  arrive, so an endless header line is cut at the limit instead of growing in the parser;
- head time: a connection that has not completed a request head GATECAST_HEADER_TIMEOUT_S after it opened,
  or after the head began, is answered 408 and closed (slow-header clients);

and per worker process:

- idle connections: at most GATECAST_MAX_IDLE_CONNECTIONS connections with no request in progress; past
  that the one idle longest is closed. A request in progress is never cut. Idle keep-alive connections also
  close after GATECAST_KEEP_ALIVE_S (uvicorn's keep-alive timeout).

`gatecast serve` passes this class to uvicorn (`http=`); tests/test_http_limits.py drives each guard
against the real server, so an uvicorn release that changes the internals used here fails there first.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app import problems
from app.errors import GatecastError, HeaderTooLarge, RequestTimeout
from app.settings import get_settings

# Connections of this worker with no request in progress, least recently active first.
_IDLE: OrderedDict[GuardedHttpToolsProtocol, None] = OrderedDict()


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a head that was refused."""


class HeadTimeout(RequestTimeout):
    status = 408
    code = "header_timeout"


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
        self._header_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    # --- connection -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()
        self._mark_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        _IDLE.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        if self._in_head or self._between:  # not while the parser is reading a body
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
        self._start_head_timer()
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refuse(HeaderTooLarge(f"more than {self.max_headers} headers (GATECAST_MAX_HEADER_COUNT)"))
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
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
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not (self._in_head or self._between) or self.transport.is_closing():
            return
        if self._head_bytes == 0:
            self.transport.close()  # nothing sent at all: close quietly, as for an idle keep-alive connection
            return
        limit = f"{self.head_timeout_s} s (GATECAST_HEADER_TIMEOUT_S)"
        self._refuse(HeadTimeout(f"the request's headers did not arrive within {limit}"))

    def _refuse(self, error: GatecastError) -> None:
        """Answer the refusal (in the error shape of app.problems) and close the connection."""
        if self._refused:
            return
        self._refused = True
        self._stop_head_timer()
        self.logger.warning("refused a request from %s: %s", self.client, error.message)
        if not self.transport.is_closing():
            self.transport.write(problems.raw_response(problems.problem_of(error)))
            self.transport.close()

    def _mark_idle(self) -> None:
        _IDLE.pop(self, None)
        _IDLE[self] = None
        while len(_IDLE) > self.max_idle:
            oldest, _ = _IDLE.popitem(last=False)
            oldest._stop_head_timer()
            oldest.transport.close()
