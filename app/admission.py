"""Admission control by memory: a worker admits a request only while the memory it will need fits a budget. More:
docs/design.md#appadmission.
"""

from __future__ import annotations

import contextvars
import ctypes
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app import metrics
from app.errors import Overloaded, PayloadTooLarge

log = logging.getLogger("gatecast.admission")

REQUEST_BYTES = 16 * 1024  # fixed cost of any request: scope, headers, tasks, buffers
BODY_COPIES = 2  # the body's chunks and the joined body
# Peak resident bytes, each set a little above what bench/memory_cost.py measures (its ratio column).
JSON_VALUE_BYTES = 80  # a JSON number decoded into a Python float in a list
JSON_OBJECT_BYTES = 1300  # a JSON object decoded into a pydantic model (one per series)
CSV_ROW_BYTES = 150  # a CSV row through pandas into a series
BINARY_BYTE_COST = 1.0  # OIP binary tensors are viewed, not copied; integers are widened to float64
ANSWER_VALUE_BYTES = 100  # an answered value: Python float, list slot and JSON or CSV text
ANSWER_STAMP_BYTES = 170  # an answered timestamp as an ISO 8601 string
BUDGET_SHARE = 0.5  # of the worker's free share of the memory limit: estimates are not exact, and freed
# memory is not always returned to the system at once
MIN_BUDGET = 32 * 1024 * 1024
_UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


def decode_cost(body: bytes, media_type: str, json_length: int | None = None) -> int:
    """Estimated peak bytes to decode `body` into Python objects, from counts a C loop takes in milliseconds.
    `json_length`: the JSON part of an OIP binary-tensor body (Inference-Header-Content-Length); the rest is raw."""
    if json_length is not None and 0 <= json_length <= len(body):
        return _json_cost(body[:json_length]) + int(BINARY_BYTE_COST * (len(body) - json_length))
    if media_type in ("text/csv", "application/csv"):
        return CSV_ROW_BYTES * (body.count(b"\n") + 1)
    if media_type in ("multipart/form-data", "application/toml"):
        return len(body)  # a training job's files: saved as they are for the trainer, never decoded here
    return _json_cost(body)


def _json_cost(body: bytes) -> int:
    return JSON_VALUE_BYTES * (body.count(b",") + 1) + JSON_OBJECT_BYTES * body.count(b"{")


class MemoryBudget:
    """One per worker process. Not thread-safe: used from the event loop only."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        metrics.MEMORY_BUDGET.set(capacity)

    def ticket(self) -> Ticket:
        return Ticket(self)


class Ticket:
    """The memory one request holds; grows by `charge`, all of it returned by `release`."""

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget
        self.held = 0

    def charge(self, nbytes: int, what: str | Callable[[], str]) -> None:
        """`what` names the charge in the error message; a callable is only called for a refusal."""
        budget = self.budget
        if self.held + nbytes > budget.capacity:
            what = what if isinstance(what, str) else what()
            raise PayloadTooLarge(
                f"{what} needs about {_mb(self.held + nbytes)} of memory; a worker admits at most "
                f"{_mb(budget.capacity)} (GATECAST_MEMORY_BUDGET_MB, derived from the memory limit): split the request"
            )
        if budget.used + nbytes > budget.capacity:
            raise Overloaded(
                f"the server is short of memory for this request ({_mb(budget.used)} of {_mb(budget.capacity)} "
                "in use by requests in flight); retry after a short wait",
                retry_after=1.0,
                code="memory_budget",
            )
        budget.used += nbytes
        self.held += nbytes
        metrics.MEMORY_ADMITTED.value += nbytes

    def release(self) -> None:
        held = self.held
        self.budget.used -= held
        metrics.MEMORY_ADMITTED.value -= held
        self.held = 0
        if held >= TRIM_AFTER_BYTES:
            return_freed_memory()


TRIM_AFTER_BYTES = 16 * 1024 * 1024  # a request that held this much hands its freed heap back to the system


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim with
        return None


_MALLOC_TRIM = _load_malloc_trim()


def return_freed_memory() -> None:
    """After a large request: glibc keeps freed heap for reuse, so the process would stay at its high-water
    mark, which a memory limit counts. malloc_trim gives the free pages of every arena back (a few ms)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


# The ticket of the request being handled: set by the middleware for the request's task, read by the model
# service. A caller outside a request (none yet) gets a ticket of its own from the service.
current_ticket: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar("gatecast_ticket", default=None)


def _mb(nbytes: int) -> str:
    return f"{nbytes / 2**20:.0f} MiB"


@dataclass(frozen=True)
class MemoryFacts:
    limit: int  # bytes this process may use with its siblings: the cgroup limit, else physical memory
    limited_by: str  # where `limit` came from
    resident: int  # this process's anonymous resident memory now (models loaded and warmed)


def memory_facts(proc: Path = Path("/proc/self"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> MemoryFacts:
    limit = cgroup_memory_limit(proc / "cgroup", cgroup_root)
    source = "cgroup"
    if limit is None:
        limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        source = "physical memory"
    return MemoryFacts(limit, source, anonymous_resident(proc))


def anonymous_resident(proc: Path = Path("/proc/self")) -> int:
    """Resident memory the kernel cannot reclaim (heap, arenas): what a memory limit really holds against the
    process. Shared libraries' pages are file-backed; under pressure they are dropped and read again."""
    try:
        for line in (proc / "status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
        return int((proc / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def cgroup_memory_limit(proc_cgroup: Path, root: Path) -> int | None:
    """The tightest memory limit on this process's cgroup and its ancestors (cgroup v2 or v1), or None."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    found: list[int] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            bases, name = [root, root / "unified"], "memory.max"
        elif "memory" in controllers.split(","):
            bases, name = [root / "memory"], "memory.limit_in_bytes"
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for base in bases:
            for depth in range(len(parts), -1, -1):  # the cgroup itself, then each ancestor
                value = _read_limit(base.joinpath(*parts[:depth]) / name)
                if value is not None:
                    found.append(value)
    return min(found) if found else None


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():  # "max": no limit
        return None
    value = int(text)
    return value if value < _UNLIMITED else None


class TooLittleMemory(RuntimeError):
    """The memory limit cannot hold this many workers with their models and a useful request budget each."""


SUPERVISOR_BYTES = 40 * 2**20  # the supervising process and multiprocessing's resource tracker: 32 MiB measured
# (RssAnon of both beside 2 workers holding the committed models, 215 MiB each)


def derive_budget(budget_mb: int, workers: int, facts: MemoryFacts | None = None) -> int:
    """Bytes of request memory this worker admits: the setting, else a share of its free part of the limit, the
    limit counted for every worker and the supervisor. Raises TooLittleMemory, saying how many workers fit, when
    that share is below MIN_BUDGET: a worker that admits less would refuse the committed examples, and one whose
    share the others' models already take would be killed by the kernel under load."""
    if budget_mb:
        return budget_mb * 2**20
    facts = facts or memory_facts()
    workers = max(1, workers)
    free = (facts.limit - SUPERVISOR_BYTES) / workers - facts.resident
    budget = int(BUDGET_SHARE * free)
    if budget < MIN_BUDGET:
        need = facts.resident + MIN_BUDGET / BUDGET_SHARE  # what one worker needs
        fit = max(0, int((facts.limit - SUPERVISOR_BYTES) // need))
        raise TooLittleMemory(
            f"{workers} worker(s) do not fit the memory limit of {_mb(facts.limit)} ({facts.limited_by}): each holds "
            f"{_mb(facts.resident)} with its models and needs {_mb(MIN_BUDGET)} for requests at least, beside "
            f"{_mb(SUPERVISOR_BYTES)} for the supervisor. "
            + (f"Set GATECAST_WORKERS={fit}, " if fit else "Serve fewer models, ")
            + f"or raise the limit to {_mb(int(SUPERVISOR_BYTES + workers * need))} (or set GATECAST_MEMORY_BUDGET_MB)"
        )
    log.info(
        "memory budget %s per worker (limit %s from %s, %d worker(s), %s resident at startup)",
        _mb(budget),
        _mb(facts.limit),
        facts.limited_by,
        workers,
        _mb(facts.resident),
    )
    return budget
