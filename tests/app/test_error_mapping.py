"""app.error_mapping: every exception becomes one status, code, message and headers, in the owning protocol's shape."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from app import error_mapping, metrics
from app.error_mapping import Problem, problem_of
from app.errors import MethodNotAllowed, NotFound, Overloaded, RequestTimeout, Unauthorized
from app.protocols import oip, rest, timegpt
from contract.longformat import LongFormatError


class Body(BaseModel):
    h: int


def validation_error(raw: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        Body.model_validate_json(raw)
    return info.value


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (validation_error("{not json"), 400, "malformed_json"),
        (validation_error('{"h": "x"}'), 422, "invalid_input"),
        (LongFormatError("column ds is missing"), 422, "invalid_long_format"),
        (HTTPException(404), 404, "not_found"),
        (HTTPException(405, headers={"Allow": "GET"}), 405, "method_not_allowed"),
        (KeyError("a bug"), 500, "internal"),
    ],
)
def test_each_kind_of_exception_has_one_answer(exc: BaseException, status: int, code: str) -> None:
    problem = problem_of(exc, "POST", "/forecast")
    assert (problem.status, problem.code) == (status, code)
    assert "a bug" not in problem.message  # a fault's details are logged, never answered


def test_a_missing_route_and_a_wrong_method_say_what_to_do() -> None:
    assert "no route DELETE /nowhere" in problem_of(HTTPException(404), "DELETE", "/nowhere").message
    wrong = problem_of(HTTPException(405, headers={"Allow": "POST"}), "GET", "/forecast")
    assert wrong.headers == {"allow": "POST"} and "it answers POST" in wrong.message


@pytest.mark.parametrize(
    ("exc", "headers"),
    [
        (Overloaded("busy", retry_after=2.6), {"retry-after": "3"}),
        (Overloaded("busy", retry_after=0.1), {"retry-after": "1"}),
        (RequestTimeout("slow"), {"retry-after": "1"}),
        (Unauthorized("no key"), {"www-authenticate": "Bearer"}),
        (MethodNotAllowed("no", "GET, PUT"), {"allow": "GET, PUT"}),
        (NotFound("gone"), {}),
    ],
)
def test_headers_that_tell_a_client_what_to_do_next(exc: BaseException, headers: dict[str, str]) -> None:
    assert problem_of(exc).headers == headers


@pytest.mark.parametrize(
    ("shape", "body"),
    [
        (rest.error_body, {"error": "not_found", "message": "gone"}),
        (oip.error_body, {"error": "gone"}),
        (timegpt.error_body, {"detail": "gone", "error": "not_found"}),
    ],
)
def test_the_body_takes_the_protocols_shape_and_counts_the_error(shape: error_mapping.Shape, body: dict) -> None:  # type: ignore[type-arg]
    counter = metrics.ERRORS.labels(reason="not_found")
    before = counter._value.get()
    assert json.loads(error_mapping.body(Problem(404, "not_found", "gone"), shape)) == body
    assert counter._value.get() == before + 1


def test_a_raw_response_is_a_whole_http_message_that_closes_the_connection() -> None:
    raw = error_mapping.raw_response(Problem(431, "header_too_large", "too many headers"), rest.error_body)
    head, content = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 431 Request Header Fields Too Large"
    assert "connection: close" in lines and f"content-length: {len(content)}" in lines
    assert json.loads(content) == {"error": "header_too_large", "message": "too many headers"}


def test_an_asgi_answer_carries_the_problems_headers() -> None:
    sent: list[dict] = []  # type: ignore[type-arg]

    async def send(message: dict) -> None:  # type: ignore[type-arg]
        sent.append(message)

    problem = Problem(503, "overloaded", "busy", {"retry-after": "2"})
    asyncio.run(error_mapping.send_problem({"path": "/forecast"}, send, problem, rest.error_body))  # type: ignore[arg-type]
    start, body = sent
    assert start["status"] == 503 and (b"retry-after", b"2") in start["headers"]
    assert json.loads(body["body"]) == {"error": "overloaded", "message": "busy"}
