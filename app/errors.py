"""Every error gatecast raises on purpose, in one place. No FastAPI here: `app.main` maps them to HTTP.

GatecastError                       base; `status` is the HTTP status, `message` says what to fix
├── BadRequest (400)                the body cannot be read: malformed JSON or CSV, wrong content type
│   └── UnsupportedMediaType (415)  a content type the endpoint does not read
├── Unauthorized (401)              missing or wrong API key
├── Forbidden (403)                 an action switched off by a setting (model control)
├── NotFound (404)                  unknown model, version or route target
├── PayloadTooLarge (413)           body bytes, series per request or points per series over a limit
├── InvalidInput (422)              readable but wrong: series too short, bad horizon or level ...
│   └── LongFormatError             a `unique_id, ds, y` table with missing columns, gaps, duplicates ...
├── ModelLoadError (422)            a model file was refused at load (corrupt, wrong signature, no metadata)
├── Overloaded (503)                the batch queue is full; carries `retry_after` seconds
└── RequestTimeout (503)            the request ran past GATECAST_REQUEST_TIMEOUT_S
"""

from __future__ import annotations


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


class PayloadTooLarge(GatecastError):
    status = 413
    code = "payload_too_large"


class InvalidInput(GatecastError):
    status = 422
    code = "invalid_input"


class LongFormatError(InvalidInput):
    code = "invalid_long_format"


class ModelLoadError(GatecastError):
    status = 422
    code = "model_load_failed"


class Overloaded(GatecastError):
    status = 503
    code = "overloaded"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimeout(GatecastError):
    status = 503
    code = "timeout"
