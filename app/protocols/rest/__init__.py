"""gatecast's own HTTP API: /forecast (JSON, decoded fast where it can be, and CSV), /cross_validation and
/anomalies, streams, /models and training jobs. Errors are `{"error": code, "message": what to fix}`."""

from __future__ import annotations

from typing import Any

from app.auth import Access
from app.protocols.protocol import Problem, ServingProtocol
from app.protocols.rest import backtest, forecast, model_routes, streams, training_jobs
from app.protocols.rest.schemas import ForecastRequest, StreamReadings, StreamSettings


def error_body(problem: Problem) -> dict[str, Any]:
    return {"error": problem.code, "message": problem.message}


def access(method: str, path: str) -> Access:
    """Training jobs need an admin key; the rest an API key."""
    return Access.ADMIN if path == "/jobs" or path.startswith("/jobs/") else Access.API_KEY


PROTOCOL = ServingProtocol(
    "rest",
    (forecast.router, backtest.router, model_routes.router, streams.router, training_jobs.router),
    error_body,
    prefixes=("/jobs/", "/streams/", "/models/"),
    access=access,
    bodies=(ForecastRequest, StreamReadings, StreamSettings),  # /forecast (JSON or CSV) and the streams' bodies
)
