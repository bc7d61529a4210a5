"""gatecast's own HTTP API: /forecast (JSON, decoded fast where it can be, and CSV), /cross_validation and
/anomalies, streams, and /models. Errors are `{"error": code, "message": what to fix}`."""

from __future__ import annotations

from typing import Any


def error_body(problem: Any) -> dict[str, Any]:
    return {"error": problem.code, "message": problem.message}
