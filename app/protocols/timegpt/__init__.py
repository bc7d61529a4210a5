"""Nixtla's TimeGPT API, so that the unmodified `nixtla` client (`NixtlaClient(base_url=<gatecast>)`) forecasts,
cross-validates, detects anomalies and fine-tunes with gatecast's models. Errors are `{"detail": message, "error":
code}`: the client shows `detail`. More: docs/design.md#appprotocolstimegpt.
"""

from __future__ import annotations

from typing import Any

from app.protocols.protocol import Problem, ServingProtocol
from app.protocols.timegpt import routes


def error_body(problem: Problem) -> dict[str, Any]:
    return {"detail": problem.message, "error": problem.code}


PROTOCOL = ServingProtocol("timegpt", (routes.router,), error_body, prefixes=("/v2/finetuned_models/",))
