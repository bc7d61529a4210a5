"""The model repository's generation: whoever publishes or removes a model appends a byte to `<repository>/.generation`
after its rename, and every worker compares the file's size with the one it last synced at before it answers. More:
docs/design.md#contractgeneration.
"""

from __future__ import annotations

import os
from pathlib import Path

GENERATION_FILE = ".generation"


def advance(repository: Path) -> None:
    """After a model folder or version was renamed into or out of the repository."""
    with open(repository / GENERATION_FILE, "ab") as marker:
        marker.write(b".")


def current(repository: Path) -> int:
    """The repository's generation (0 before any change); one stat, cheap enough to run per request."""
    try:
        return os.stat(repository / GENERATION_FILE).st_size
    except FileNotFoundError:
        return 0
