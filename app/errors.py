"""Every error gatecast raises on purpose, in one place. No HTTP here: `app.error_mapping` maps them to responses.

GatecastError                       base; `status` is the HTTP status, `message` says what to fix
├── BadRequest (400)                the body cannot be read: malformed JSON or CSV, a bad protocol header
│   └── UnsupportedMediaType (415)  a content type or encoding the endpoint does not read
├── Unauthorized (401)              missing or wrong API key
├── Forbidden (403)                 an action switched off by a setting (model control)
├── NotFound (404)                  unknown model, version or route
├── MethodNotAllowed (405)          a route that exists, asked with another method; carries `allow`
├── Conflict (409)                  the request contradicts stored state: a reading already received, a
│                                   stream setting that can no longer change, the store's stream limit
├── PayloadTooLarge (413)           body bytes, series per request, points per series, or a request bigger
│                                   than the worker's whole memory budget
├── HeaderTooLarge (431)            request line and headers over GATECAST_MAX_HEADER_BYTES or _COUNT
├── InvalidInput (422)              readable but wrong: series too short, bad horizon, level, time axis ...
├── ModelLoadError (422)            a model file was refused at load (corrupt, wrong signature, no metadata)
├── InferenceFailed (500)           onnxruntime failed on a request that passed every check (a model fault)
├── Overloaded (503)                the batch queue or the memory budget is full; carries `retry_after`
├── ServiceUnavailable (503)        a part of the service this server cannot run: training without the train
│                                   extra, or with GATECAST_TRAINING=off, or a Ray that does not answer
└── RequestTimeout (503)            the request ran past GATECAST_REQUEST_TIMEOUT_S

`contract.longformat.LongFormatError` (a `unique_id, ds, y` table with missing columns, gaps, duplicates ...)
is raised by the shared table reader and answered 422 `invalid_long_format` by `app.error_mapping`.
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
