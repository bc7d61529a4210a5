"""The model repository's generation: whoever publishes or removes a model appends a byte to `<repository>/.generation`
after its rename, and every worker compares the file's size with the one it last synced at before it answers.

A model made or deleted through one worker, replica or trainer is then served (or refused) by all of them as soon as
the call that made the change answers, not at their next poll. Appending makes the size grow with every change, so a
stat tells a new generation from an old one whatever the file system's clock resolution; the registry skips dot files.
Standard library only: the server and the trainer both write it.
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
