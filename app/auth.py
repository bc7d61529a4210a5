"""Optional API keys, off unless GATECAST_API_KEYS (or GATECAST_ADMIN_KEYS) is set. Which rule (`Access`) guards a
path is its protocol's to say (app.protocols); keys are compared in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Iterable

from app.errors import BadRequest, Forbidden, Unauthorized
from app.settings import Settings


class Access(enum.Enum):
    """What a path asks of a caller; each protocol says which applies to each of its paths (app.protocols)."""

    OPEN = "open"  # health and the docs: probes and browsers work without a key
    API_KEY = "api key"  # an API or admin key, when keys are configured
    ADMIN = "admin key"  # training jobs: an admin key, when keys are configured
    CONTROL = "model control"  # load and unload: GATECAST_MODEL_CONTROL, and an admin key when keys are configured
    METRICS = "metrics"  # open unless GATECAST_METRICS_NEED_KEY


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


def check(access: Access, headers: dict[str, str], settings: Settings) -> None:
    """Raise Unauthorized or Forbidden when the request may not pass `access` (its protocol's rule for the path)."""
    if access is Access.CONTROL:
        if not settings.model_control:
            raise Forbidden("model control is disabled; start the server with GATECAST_MODEL_CONTROL=true")
        if (settings.api_keys or settings.admin_keys) and not _matches(presented_key(headers), settings.admin_keys):
            raise Unauthorized("model control needs an admin key (GATECAST_ADMIN_KEYS)")
        return
    if not settings.api_keys and not settings.admin_keys:
        return
    if access is Access.ADMIN:
        if not _matches(presented_key(headers), settings.admin_keys):
            raise Unauthorized("training jobs need an admin key (GATECAST_ADMIN_KEYS)")
        return
    if access is Access.OPEN or (access is Access.METRICS and not settings.metrics_need_key):
        return
    if not _matches(presented_key(headers), settings.api_keys + settings.admin_keys):
        raise Unauthorized(UNAUTHORIZED)
