"""One home per protocol. Each decodes its wire format into a model name and a job (app.jobs), calls the
forecasting entry point (app.forecasting), encodes the result, and says how its errors look; its routes bind
the paths. Nothing else in a protocol: the checks, costs and the model are shared.

    rest      gatecast's own API: JSON (with a fast decoder) and CSV /forecast, /cross_validation,
              /anomalies, streams, /models
    timegpt   Nixtla's TimeGPT API, as the `nixtla` client sends it
    oip       the Open Inference Protocol v2: its wire codec and the adapter to jobs, served over HTTP and gRPC

The error mapping (app.problems) asks `error_body` for the body of an error on a path.
"""

from __future__ import annotations

from typing import Any, Protocol


class _Problem(Protocol):
    @property
    def code(self) -> str: ...

    @property
    def message(self) -> str: ...


def error_body(problem: _Problem, path: str) -> dict[str, Any]:
    """The error body in the shape of the protocol that owns `path` (gatecast's own for the rest)."""
    from app.protocols import rest, timegpt
    from app.protocols.oip import http

    for protocol in (timegpt, http):
        if protocol.owns_error(path):
            shaped: dict[str, Any] = protocol.error_body(problem)
            return shaped
    return rest.error_body(problem)
