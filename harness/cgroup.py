"""A child memory cgroup for a test's server process: a real memory limit, enforced by the kernel's OOM killer.

Needs root and a writable memory controller (cgroup v1 `memory`, or v2 with `memory` in the parent's
subtree_control). `memory_cgroup` yields None when neither is available, and the caller skips.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class MemoryCgroup:
    path: Path
    version: int

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        for line in (self.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def peak_bytes(self) -> int:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int((self.path / name).read_text().split()[0])
        except (OSError, ValueError):
            return -1


def _own_cgroup(version: int) -> Path | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if version == 1 and "memory" in controllers.split(","):
            return ROOT / "memory" / path.lstrip("/")
        if version == 2 and hierarchy == "0" and controllers == "":
            base = ROOT if (ROOT / "cgroup.controllers").exists() else ROOT / "unified"
            return base / path.lstrip("/")
    return None


def _make(limit: int) -> MemoryCgroup | None:
    if os.geteuid() != 0:
        return None
    name = f"gatecast-test-{uuid.uuid4().hex[:8]}"
    parent = _own_cgroup(1)
    if parent is not None and (parent / "memory.limit_in_bytes").exists():
        with contextlib.suppress(OSError):
            child = parent / name
            child.mkdir()
            (child / "memory.limit_in_bytes").write_text(str(limit))
            with contextlib.suppress(OSError):  # no swap to spill into: the limit is the limit
                (child / "memory.memsw.limit_in_bytes").write_text(str(limit))
            return MemoryCgroup(child, 1)
    parent = _own_cgroup(2)
    if parent is not None and "memory" in (parent / "cgroup.subtree_control").read_text().split():
        with contextlib.suppress(OSError):
            child = parent / name
            child.mkdir()
            (child / "memory.max").write_text(str(limit))
            (child / "memory.swap.max").write_text("0")
            return MemoryCgroup(child, 2)
    return None


@contextlib.contextmanager
def memory_cgroup(limit: int) -> Iterator[MemoryCgroup | None]:
    group = _make(limit)
    try:
        yield group
    finally:
        if group is not None:
            for _ in range(50):  # processes must have left before the folder can go
                with contextlib.suppress(OSError):
                    group.path.rmdir()
                    break
                time.sleep(0.1)
