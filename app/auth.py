"""Optional API keys. Off unless GATECAST_API_KEYS (or GATECAST_ADMIN_KEYS) is set.

- Health routes stay open so probes work; /metrics is open unless GATECAST_METRICS_NEED_KEY=true.
- Every other route needs `Authorization: Bearer <key>` or `X-API-Key: <key>` from the API or admin keys.
- Model control (load/unload) needs GATECAST_MODEL_CONTROL=true and, when keys are configured, an admin key.
- Training jobs (/jobs) need an admin key when keys are configured; fine-tuning through the TimeGPT API, an API key.
Keys are compared in constant time (hmac.compare_digest on their SHA-256 digests, so lengths leak nothing).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from app.errors import BadRequest, Forbidden, Unauthorized
from app.settings import Settings

OPEN_PATHS = frozenset(
    {"/v2/health/live", "/v2/health/ready", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}
)
DOCS_ASSETS = "/docs-assets"  # Swagger UI's and ReDoc's files, served from the package (open, like the docs)
CONTROL_SUFFIXES = ("/load", "/unload")
UNAUTHORIZED = "missing or invalid API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _matches(given: str | None, keys: list[str]) -> bool:
    if not given:
        return False
    digest = _digest(given)
    found = False
    for key in keys:  # no early exit: the time taken does not say which key matched
        found |= hmac.compare_digest(digest, _digest(key))
    return found


CREDENTIAL_HEADERS = ("authorization", "x-api-key")


def one_credential(headers: Iterable[tuple[str, str]]) -> None:
    """A call carries one credential at most: two `authorization` entries, or one beside an `x-api-key`, would
    make the answer depend on their order; refused (400) on every protocol, whether keys are on or off."""
    sent = [name for name, _ in headers if name.lower() in CREDENTIAL_HEADERS]
    if len(sent) > 1:
        raise BadRequest(
            f"the request carries {len(sent)} credentials ({', '.join(sent)}); send exactly one: "
            "`Authorization: Bearer <key>` or `X-API-Key: <key>`"
        )


def presented_key(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("x-api-key")


def is_training(path: str) -> bool:
    return path == "/jobs" or path.startswith("/jobs/")


def is_control(path: str) -> bool:
    return path.startswith("/v2/repository/models/") and path.endswith(CONTROL_SUFFIXES)


def check(method: str, path: str, headers: dict[str, str], settings: Settings) -> None:
    """Raise Unauthorized or Forbidden when the request may not reach `path`."""
    if method == "POST" and is_control(path):
        if not settings.model_control:
            raise Forbidden("model control is disabled; start the server with GATECAST_MODEL_CONTROL=true")
        if (settings.api_keys or settings.admin_keys) and not _matches(presented_key(headers), settings.admin_keys):
            raise Unauthorized("model control needs an admin key (GATECAST_ADMIN_KEYS)")
        return
    if not settings.api_keys and not settings.admin_keys:
        return
    if is_training(path):
        if not _matches(presented_key(headers), settings.admin_keys):
            raise Unauthorized("training jobs need an admin key (GATECAST_ADMIN_KEYS)")
        return
    if (
        path in OPEN_PATHS
        or path.startswith(DOCS_ASSETS + "/")
        or (path == "/metrics" and not settings.metrics_need_key)
    ):
        return
    if not _matches(presented_key(headers), settings.api_keys + settings.admin_keys):
        raise Unauthorized(UNAUTHORIZED)
