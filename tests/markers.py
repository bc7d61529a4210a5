"""Skip markers for tests that need a program from Debian (scripts/system-deps.sh installs them as root), or the
train extra in a test module that otherwise runs on a serving install."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server missing (apt-get install redis-server)"
)

needs_training = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs the train extra (pip install -e '.[train,dev]')"
)
