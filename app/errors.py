"""Every error gatecast raises on purpose, in one place. No HTTP here: `app.error_mapping` maps them to responses.
More: docs/design.md#apperrors.
"""

from __future__ import annotations

from collections.abc import Iterable

SHOWN_CHARS = 64  # of a name or value the client sent, echoed in a message


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`repr(value)` for a message, cut to `limit` characters: a client's 5,000-character name is named, not echoed."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 14]}... ({len(text)} chars)"


def shown_all(values: Iterable[object], limit: int = 8) -> str:
    """A list of names for a message: each `shown`, at most `limit` of them."""
    items = list(values)
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return "[" + ", ".join(shown(v) for v in items[:limit]) + more + "]"


class GatecastError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(GatecastError):
    status = 400
    code = "bad_request"


class UnsupportedMediaType(BadRequest):
    status = 415
    code = "unsupported_media_type"


class Unauthorized(GatecastError):
    status = 401
    code = "unauthorized"


class Forbidden(GatecastError):
    status = 403
    code = "forbidden"


class NotFound(GatecastError):
    status = 404
    code = "not_found"


class MethodNotAllowed(GatecastError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allow: str = "") -> None:
        super().__init__(message)
        self.allow = allow


class Conflict(GatecastError):
    status = 409
    code = "conflict"


class PayloadTooLarge(GatecastError):
    status = 413
    code = "payload_too_large"


class HeaderTooLarge(GatecastError):
    status = 431
    code = "header_too_large"


class InvalidInput(GatecastError):
    status = 422
    code = "invalid_input"


class ModelLoadError(GatecastError):
    status = 422
    code = "model_load_failed"


class InferenceFailed(GatecastError):
    status = 500
    code = "inference_failed"


class Overloaded(GatecastError):
    status = 503
    code = "overloaded"

    def __init__(self, message: str, retry_after: float = 1.0, code: str = "overloaded") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


class ServiceUnavailable(GatecastError):
    status = 503
    code = "unavailable"


class RequestTimeout(GatecastError):
    status = 503
    code = "timeout"
