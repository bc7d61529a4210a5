"""What the training commands print for a person to read."""

from __future__ import annotations

import sys


def red(text: str) -> str:
    """For a warning that must not be missed: red on a terminal, plain in a log file."""
    return f"\033[31m{text}\033[0m" if sys.stderr.isatty() else text
