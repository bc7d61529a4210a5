"""`doc`: a dataclass field that carries its documentation, so the table of config keys
(docs/configuration.md, `training.config.keys_table`) is rendered from the definitions and cannot drift."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def doc(default: Any, text: str) -> Any:
    if isinstance(default, list):  # a mutable default: each instance gets its own copy
        return field(default_factory=lambda: list(default), metadata={"doc": text})
    return field(default=default, metadata={"doc": text})
