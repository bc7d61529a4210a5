"""HTTP abuse against the real server (app/httpguard.py), through the probes of tests/http_abuse.py: huge and
endless header lines, too many headers, slow and silent connections, a flood of idle connections, and an early
answer while a body still arrives. After each, the server answers a normal request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import http_abuse as abuse
from harness.live import running_server

pytestmark = pytest.mark.slow
MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, int]]:
    repo = tmp_path_factory.mktemp("http") / "models"
    repo.symlink_to(MODELS)
    with running_server(repo, **abuse.ABUSE_SETTINGS) as (url, proc):
        yield url, int(url.rsplit(":", 1)[1]), proc.pid
        assert abuse.serving(url)


@pytest.mark.parametrize(
    ("probe", "setting"),
    [
        pytest.param(abuse.huge_header, "GATECAST_MAX_HEADER_BYTES", id="one-megabyte-header"),
        pytest.param(abuse.many_headers, "GATECAST_MAX_HEADER_COUNT", id="150-headers"),
    ],
)
def test_a_request_head_over_a_limit_is_431_naming_the_setting(
    server: tuple[str, int, int], probe: Callable[[int, int], abuse.Outcome], setting: str
) -> None:
    _, port, pid = server
    outcome = probe(port, pid)
    assert outcome.status == 431 and setting in outcome.message


def test_an_endless_header_line_is_cut_at_the_limit_without_growing_memory(server: tuple[str, int, int]) -> None:
    _, port, pid = server
    outcome = abuse.endless_header(port, pid)
    assert outcome.status == 431
    assert int(outcome.detail["sent"]) < 25 * 2**20, "the server kept reading an endless header"  # type: ignore[call-overload]
    assert outcome.rss_growth_kb < 20_000, "memory grew with the header"


def test_a_slow_header_connection_gets_408_and_is_closed(server: tuple[str, int, int]) -> None:
    _, port, pid = server
    outcome = abuse.slow_header(port, pid)
    assert outcome.status == 408 and "GATECAST_HEADER_TIMEOUT_S" in outcome.message
    assert outcome.seconds < 6, f"closed after {outcome.seconds:.1f} s"


def test_the_head_time_limit_applies_to_each_request_on_a_connection(server: tuple[str, int, int]) -> None:
    _, port, pid = server
    outcome = abuse.slow_header_after_a_request(port, pid)
    assert outcome.status == 408 and "GATECAST_HEADER_TIMEOUT_S" in outcome.message
    assert 2.5 < outcome.seconds < 7, f"closed after {outcome.seconds:.1f} s (1 s idle, then a 1.5 s head limit)"


def test_a_huge_head_pipelined_behind_a_body_is_431(server: tuple[str, int, int]) -> None:
    _, port, pid = server
    outcome = abuse.pipelined_huge_header(port, pid)
    assert outcome.status == 431 and "GATECAST_MAX_HEADER_BYTES" in outcome.message


def test_a_silent_connection_is_closed(server: tuple[str, int, int]) -> None:
    _, port, pid = server
    outcome = abuse.silent_connection(port, pid)
    assert outcome.message == "" and outcome.seconds < 5


def test_idle_connections_beyond_the_cap_are_closed_oldest_first(server: tuple[str, int, int]) -> None:
    _, port, pid = server
    outcome = abuse.idle_flood(port, pid)
    assert int(outcome.detail["open"]) <= 20, outcome.detail  # type: ignore[call-overload]
    assert outcome.detail["newest_open"], "the newest connections were closed instead of the oldest"


def test_an_early_answer_while_the_body_still_arrives_is_delivered_whole(server: tuple[str, int, int]) -> None:
    """401 before the body is read; the client goes on sending and must get the 401, and the same connection
    must serve its next request, not be cut with a header error."""
    url, _, _ = server
    outcome = abuse.early_answer(url)
    assert outcome.status == 401 and outcome.detail["next_request_status"] == 200
