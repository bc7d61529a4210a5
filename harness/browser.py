"""Headless Chromium (Debian's `chromium`) on pages of a local server, with no network beyond loopback:
every other host name fails to resolve, as on a machine without internet. Shared by tests/docs/test_docs_pages.py
and bench/docs_pages.py (which saves the screenshots under docs/images/)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no internet: only loopback resolves
    "--virtual-time-budget=15000",  # let the page's scripts run to completion before the DOM is read
]


def render(url: str, screenshot: Path | None = None, size: str = "1280,1000") -> str:
    """The page's DOM after its scripts ran; optionally a screenshot of it."""
    assert CHROMIUM is not None, "chromium is not installed"
    with tempfile.TemporaryDirectory() as profile:
        base = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}"]
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True)
        done = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout
