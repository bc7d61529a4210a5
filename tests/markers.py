"""Skip markers for tests that need a program from Debian (scripts/system-deps.sh installs them as root)."""

from __future__ import annotations

import shutil

import pytest

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server missing (apt-get install redis-server)"
)
