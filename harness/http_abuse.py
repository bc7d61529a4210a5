"""HTTP abuse against a live server, as probes that report what the client saw. Shared by
tests/live/test_http_limits.py (which asserts on the outcomes) and bench/reliability.py (which renders them).
The server is expected to run with ABUSE_SETTINGS."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ABUSE_SETTINGS = {
    "GATECAST_HEADER_TIMEOUT_S": "1.5",
    "GATECAST_MAX_IDLE_CONNECTIONS": "20",
    "GATECAST_API_KEYS": "secret",
    "GATECAST_LOG_LEVEL": "warning",
}


@dataclass
class Outcome:
    what: str
    status: int | None = None  # the HTTP status the client got, None when the connection closed without one
    message: str = ""
    seconds: float = 0.0
    rss_growth_kb: int = 0
    detail: dict[str, object] = field(default_factory=dict)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(10)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return out


def _parse(raw: bytes) -> tuple[int | None, str]:
    if not raw.startswith(b"HTTP/1.1 "):
        return None, ""
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        message = json.loads(body).get("message", "")
    except ValueError:
        message = body.decode(errors="replace")[:200]
    return int(head.split()[1]), message


def _send_then_read(port: int, send: Callable[[socket.socket, list[int]], None]) -> tuple[bytes, int, float]:
    """Run `send` (which adds what it sent to the counter as it goes) until done or cut off; then read."""
    with closing(_connect(port)) as sock:
        started = time.monotonic()
        sent = [0]
        with suppress(BrokenPipeError, ConnectionResetError):
            send(sock, sent)
        return _read_until_closed(sock), sent[0], time.monotonic() - started


def _once(data: bytes) -> Callable[[socket.socket, list[int]], None]:
    def send(sock: socket.socket, sent: list[int]) -> None:
        sock.sendall(data)
        sent[0] += len(data)

    return send


def huge_header(port: int, pid: int) -> Outcome:
    before = rss_kb(pid)
    head = b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
    raw, _, took = _send_then_read(port, _once(head))
    status, message = _parse(raw)
    return Outcome("a 1 MB header", status, message, took, rss_kb(pid) - before)


def endless_header(port: int, pid: int) -> Outcome:
    before = rss_kb(pid)

    def flood(sock: socket.socket, sent: list[int]) -> None:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Endless: ")
        for _ in range(400):  # up to 25 MB, never a line end
            sock.sendall(b"b" * 65536)
            sent[0] += 65536

    raw, sent, took = _send_then_read(port, flood)
    status, message = _parse(raw)
    return Outcome("an endless header line (up to 25 MB)", status, message, took, rss_kb(pid) - before, {"sent": sent})


def many_headers(port: int, pid: int) -> Outcome:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    raw, _, took = _send_then_read(port, _once(b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n"))
    status, message = _parse(raw)
    return Outcome("150 headers", status, message, took)


def slow_header(port: int, pid: int) -> Outcome:
    raw, _, took = _send_then_read(port, slow_header_lines)
    status, message = _parse(raw)
    return Outcome("a header line every 0.25 s, never finished", status, message, took)


def slow_header_after_a_request(port: int, pid: int) -> Outcome:
    """One request answered on a keep-alive connection, then a head that never finishes: the head's own time
    limit applies, not one left from the first request."""

    def answered_then_trickle(sock: socket.socket, sent: list[int]) -> None:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\n\r\n")
        answer = b""
        while not answer.endswith(b'{"live":true}'):
            answer += sock.recv(65536)
        time.sleep(1.0)  # most of the head time limit passes while idle: the next head gets all of its own
        slow_header_lines(sock, sent)

    raw, _, took = _send_then_read(port, answered_then_trickle)
    status, message = _parse(raw)
    return Outcome("an answered request, then a header line every 0.25 s", status, message, took)


def slow_header_lines(sock: socket.socket, sent: list[int]) -> None:
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
    for i in range(40):  # one header line every 0.25 s, never finished
        sock.sendall(b"X-Slow-%d: v\r\n" % i)
        sent[0] += 1
        time.sleep(0.25)


def pipelined_huge_header(port: int, pid: int) -> Outcome:
    """A 40 kB head pipelined behind a body, in the same packet as the body's end: bytes that arrive while a body
    is read are not counted as head bytes, so the head must still be measured."""

    def send(sock: socket.socket, sent: list[int]) -> None:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(0.3)  # the server is now reading the body
        sock.sendall(b"world" + b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
        sent[0] += 1

    raw, _, took = _send_then_read(port, send)
    status, message = _parse(raw[raw.rfind(b"HTTP/1.1 ") :])  # the refusal can overtake the first answer
    return Outcome("a 40 kB head pipelined behind a body", status, message, took)


def silent_connection(port: int, pid: int) -> Outcome:
    raw, _, took = _send_then_read(port, lambda sock, sent: None)
    return Outcome("a connection that sends nothing", None, raw.decode(errors="replace"), took)


def idle_flood(port: int, pid: int, count: int = 60) -> Outcome:
    """`count` keep-alive connections, one request each, then idle: how many stay open, and which."""
    socks = []
    try:
        for _ in range(count):
            sock = _connect(port)
            socks.append(sock)
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"live":true}'):  # the whole response, so nothing is left to read
                answer += sock.recv(65536)
        time.sleep(0.3)
        open_now = []
        for sock in socks:
            sock.settimeout(0.05)
            try:
                open_now.append(sock.recv(1) != b"")
            except TimeoutError:
                open_now.append(True)  # nothing to read and not closed: still open
            except ConnectionResetError:
                open_now.append(False)
    finally:
        for sock in socks:
            sock.close()
    detail: dict[str, object] = {"opened": count, "open": sum(open_now), "newest_open": all(open_now[-10:])}
    return Outcome(f"{count} idle keep-alive connections", None, "", 0.0, 0, detail)


def early_answer(url: str) -> Outcome:
    """An answer (401: no key) sent before a 4 MB body has arrived; the same connection then asks again."""
    big = b'{"series": [{"id": "a", "values": [' + b"1.0," * 1_000_000 + b"1.0]}]}"
    with httpx.Client(base_url=url, timeout=30) as client:
        started = time.monotonic()
        first = client.post("/forecast", content=big, headers={"content-type": "application/json"})
        second = client.get("/models", headers={"x-api-key": "secret"})
    detail: dict[str, object] = {"next_request_status": second.status_code}
    return Outcome(
        "a 401 while a 4 MB body is still arriving",
        first.status_code,
        first.json().get("message", ""),
        time.monotonic() - started,
        0,
        detail,
    )


def serving(url: str) -> bool:
    return httpx.get(f"{url}/v2/health/live", timeout=5).status_code == 200


RAW_PROBES: list[Callable[[int, int], Outcome]] = [
    huge_header,
    endless_header,
    many_headers,
    slow_header,
    silent_connection,
    idle_flood,
]
