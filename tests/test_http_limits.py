"""HTTP abuse against the real server (app/httpguard.py): huge and endless header lines, too many headers,
slow and silent connections, a flood of idle connections, and an early answer while a body still arrives.
After each, the server answers a normal request; its memory does not grow with the abuse."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import running_server
from tests.test_overload import rss_kb

pytestmark = pytest.mark.slow
MODELS = Path(__file__).resolve().parent.parent / "models"
LIMITS = {
    "GATECAST_HEADER_TIMEOUT_S": "1.5",
    "GATECAST_MAX_IDLE_CONNECTIONS": "20",
    "GATECAST_API_KEYS": "secret",
    "GATECAST_LOG_LEVEL": "warning",
}


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, int]]:
    repo = tmp_path_factory.mktemp("http") / "models"
    repo.symlink_to(MODELS)
    with running_server(repo, **LIMITS) as (url, proc):
        yield url, int(url.rsplit(":", 1)[1]), proc.pid


def connect(port: int, opened: list[socket.socket]) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(10)
    opened.append(sock)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return out


def status_and_body(raw: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def still_serving(url: str) -> None:
    r = httpx.get(f"{url}/v2/health/live", timeout=5)
    assert r.status_code == 200


def test_a_one_megabyte_header_is_431(server: tuple[str, int, int], sockets: list[socket.socket]) -> None:
    url, port, _ = server
    sock = connect(port, sockets)
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n")
    status, body = status_and_body(read_until_closed(sock))
    assert status == 431 and body["error"] == "header_too_large"
    assert "GATECAST_MAX_HEADER_BYTES" in body["message"]
    still_serving(url)


def test_an_endless_header_line_is_cut_at_the_limit_without_growing_memory(
    server: tuple[str, int, int], sockets: list[socket.socket]
) -> None:
    url, port, pid = server
    before = rss_kb(pid)
    sock = connect(port, sockets)
    sock.sendall(b"GET / HTTP/1.1\r\nX-Endless: ")
    sent = 0
    try:
        for _ in range(400):  # up to 25 MB, never a line end
            sock.sendall(b"b" * 65536)
            sent += 65536
    except (BrokenPipeError, ConnectionResetError):
        pass
    raw = read_until_closed(sock)
    assert sent < 25 * 2**20, "the server kept reading an endless header"
    assert raw.startswith(b"HTTP/1.1 431")
    assert rss_kb(pid) - before < 20_000, "memory grew with the header"
    still_serving(url)


def test_more_headers_than_the_limit_is_431(server: tuple[str, int, int], sockets: list[socket.socket]) -> None:
    url, port, _ = server
    sock = connect(port, sockets)
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n")
    status, body = status_and_body(read_until_closed(sock))
    assert status == 431 and "GATECAST_MAX_HEADER_COUNT" in body["message"]
    still_serving(url)


def test_a_slow_header_connection_gets_408_and_is_closed(
    server: tuple[str, int, int], sockets: list[socket.socket]
) -> None:
    url, port, _ = server
    sock = connect(port, sockets)
    started = time.monotonic()
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
    try:
        for i in range(40):  # one header line every 0.25 s: never done within the 1.5 s limit
            sock.sendall(b"X-Slow-%d: v\r\n" % i)
            time.sleep(0.25)
    except (BrokenPipeError, ConnectionResetError):
        pass
    raw = read_until_closed(sock)
    took = time.monotonic() - started
    status, body = status_and_body(raw)
    assert status == 408 and "GATECAST_HEADER_TIMEOUT_S" in body["message"]
    assert took < 6, f"closed after {took:.1f} s"
    still_serving(url)


def test_a_silent_connection_is_closed(server: tuple[str, int, int], sockets: list[socket.socket]) -> None:
    _, port, _ = server
    sock = connect(port, sockets)
    started = time.monotonic()
    assert read_until_closed(sock) == b""
    assert time.monotonic() - started < 5


def test_idle_connections_beyond_the_cap_are_closed_oldest_first(
    server: tuple[str, int, int], sockets: list[socket.socket]
) -> None:
    url, port, _ = server
    socks = []
    for _ in range(60):
        sock = connect(port, sockets)
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\n\r\n")  # one request, then idle (keep-alive)
        answer = b""
        while not answer.endswith(b'{"live":true}'):  # the whole response, so nothing is left to read
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        socks.append(sock)
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
    assert sum(open_now) <= 20, f"{sum(open_now)} idle connections open; the cap is 20"
    assert all(open_now[-10:]), "the newest connections were closed instead of the oldest"
    still_serving(url)


def test_an_early_answer_while_the_body_still_arrives_is_delivered_whole(
    server: tuple[str, int, int], sockets: list[socket.socket]
) -> None:
    """401 before the body is read (no key); the client goes on sending 4 MB and must get the 401, and the
    same connection must serve its next request, not be cut with a header error."""
    url, _, _ = server
    big = b'{"series": [{"id": "a", "values": [' + b"1.0," * 1_000_000 + b"1.0]}]}"
    with httpx.Client(base_url=url, timeout=30) as client:
        r = client.post("/forecast", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        r = client.get("/models", headers={"x-api-key": "secret"})
        assert r.status_code == 200
