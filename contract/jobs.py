"""A training or fine-tuning job's record, shared by the server that accepted it and the trainer that runs it. More:
docs/design.md#contractjobs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

JOBS_DIR = ".jobs"
STAGING_DIR = ".staging"  # a run's model is written here, then renamed into <name>/<version>/ in one step
TRASH_DIR = ".trash"  # a deleted model is renamed here first, so it leaves the repository in one step
RECORD_FILE = "job.json"
CANCEL_FILE = "cancel"
KINDS = ("train", "finetune")
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
HEARTBEAT_S = 5.0
# A running job whose trainer has not written for this long is failed by whoever reads it: its trainer, or the Ray
# that ran it (a local one dies with its server), is gone.
STALE_S = 60.0


class Cancelled(Exception):
    """The job's cancel file appeared; raised by the trainer between steps."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class JobRecord:
    id: str
    kind: str  # train | finetune
    state: str  # queued | running | succeeded | failed | cancelled
    created_at: str
    updated_at: str
    spec: dict[str, Any]  # what the trainer runs (training.jobs reads it)
    progress: dict[str, Any] = field(default_factory=dict)  # epoch or step, losses, seconds left
    result: dict[str, Any] = field(default_factory=dict)  # the model made, its verdict against naive
    error: str | None = None  # why it failed, in words that say what to change
    # "input": the config, data or request cannot be trained on (the sender can fix it); "trainer": the trainer or
    # its Ray failed (retry, or see its log)
    error_kind: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    trainer: dict[str, Any] = field(default_factory=dict)  # where it runs: {"host", "pid"}
    heartbeat_at: str | None = None  # the trainer writes it every HEARTBEAT_S while the job runs

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def public(self) -> dict[str, Any]:
        """What GET /jobs/{id} answers: the record less the trainer's paths."""
        out = asdict(self)
        out["spec"] = {k: v for k, v in self.spec.items() if not k.startswith("_")}
        return out


def stale(record: JobRecord, at: datetime | None = None) -> bool:
    """A running job whose trainer stopped writing its heartbeat STALE_S ago."""
    if record.state != "running" or record.heartbeat_at is None:
        return False
    last = datetime.fromisoformat(record.heartbeat_at)
    return ((at or datetime.now(UTC)) - last).total_seconds() > STALE_S


def job_dir(repository: Path, job_id: str) -> Path:
    return repository / JOBS_DIR / job_id


def read(repository: Path, job_id: str) -> JobRecord | None:
    try:
        raw = json.loads((job_dir(repository, job_id) / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None
    return JobRecord(**raw)


def write(repository: Path, record: JobRecord) -> None:
    """Whole, then renamed over the old record (atomic on one file system)."""
    folder = job_dir(repository, record.id)
    folder.mkdir(parents=True, exist_ok=True)
    record.updated_at = now()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".job-", suffix=".json")
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(record), out)
    os.replace(tmp, folder / RECORD_FILE)


def all_records(repository: Path) -> list[JobRecord]:
    root = repository / JOBS_DIR
    if not root.is_dir():
        return []
    records = [read(repository, p.name) for p in root.iterdir() if p.is_dir()]
    return sorted((r for r in records if r is not None), key=lambda r: r.created_at)


def request_cancel(repository: Path, job_id: str) -> None:
    (job_dir(repository, job_id) / CANCEL_FILE).touch()


def cancel_requested(repository: Path, job_id: str) -> bool:
    return (job_dir(repository, job_id) / CANCEL_FILE).exists()


# A fine-tuned model's card records where it came from (metadata keys outside the gatecast. schema, read back by
# the TimeGPT routes' finetuned_models).
FINETUNE_PREFIX = "finetune."


def finetune_props(base: str, base_version: str, created_by: str, steps: int, depth: int, loss: str) -> dict[str, str]:
    return {
        f"{FINETUNE_PREFIX}base_model": base,
        f"{FINETUNE_PREFIX}base_version": base_version,
        f"{FINETUNE_PREFIX}created_at": now(),
        f"{FINETUNE_PREFIX}created_by": created_by,
        f"{FINETUNE_PREFIX}steps": str(steps),
        f"{FINETUNE_PREFIX}depth": str(depth),
        f"{FINETUNE_PREFIX}loss": loss,
    }


def finetune_info(extra: dict[str, str]) -> dict[str, Any] | None:
    """The card's fine-tuning record (finetune_props), or None for a model that was not fine-tuned."""
    if f"{FINETUNE_PREFIX}base_model" not in extra:
        return None

    def get(key: str) -> str:
        return extra.get(FINETUNE_PREFIX + key, "")

    return {
        "base_model": get("base_model"),
        "base_version": get("base_version"),
        "created_at": get("created_at"),
        "created_by": get("created_by"),
        "steps": int(get("steps") or 0),
        "depth": int(get("depth") or 0),
        "loss": get("loss"),
    }
