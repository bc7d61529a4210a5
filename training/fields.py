"""`doc`: a dataclass field that carries its documentation, so the table of config keys
(docs/configuration.md, `training.config.keys_table`) is rendered from the definitions and cannot drift."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def doc(default: Any, text: str) -> Any:
    return field(default=default, metadata={"doc": text})
