"""What a trainer process runs for a job: `run(repository, job_id)`, called by Ray on behalf of the server. More:
docs/design.md#trainingjobs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
import tomllib
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from contract import generation, jobs

log = logging.getLogger("gatecast.jobs")
REPORT_EVERY_S = 1.0  # progress writes at most this often: a record per epoch of a fast model would be noise
DATA_FILES = ("data.csv", "data.parquet")  # an uploaded data file, saved in the job's folder by the server


class Progress:
    """Writes the job's progress into its record (at most every REPORT_EVERY_S) and checks for a cancel; a thread
    writes its heartbeat meanwhile, so a reader can tell a long epoch from a dead trainer (contract.jobs.stale)."""

    def __init__(self, repository: Path, record: jobs.JobRecord) -> None:
        self.repository, self.record, self.last = repository, record, 0.0
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.beat = threading.Thread(target=self._beat, name="gatecast-job-heartbeat", daemon=True)

    def __call__(self, progress: dict[str, Any]) -> None:
        if jobs.cancel_requested(self.repository, self.record.id):
            raise jobs.Cancelled()
        with self.lock:
            self.record.progress = progress
            if time.monotonic() - self.last >= REPORT_EVERY_S:
                self.last = time.monotonic()
                self.write()

    def write(self) -> None:
        self.record.heartbeat_at = jobs.now()
        jobs.write(self.repository, self.record)

    def _beat(self) -> None:
        while not self.stopped.wait(jobs.HEARTBEAT_S):
            with self.lock:
                self.write()

    def cancelled(self) -> bool:
        return jobs.cancel_requested(self.repository, self.record.id)


def run(repository: str, job_id: str) -> dict[str, Any]:
    """Run one job to a final state; returns its public record. Never raises for the job's own failures: they
    are the record's `error`."""
    repo = Path(repository)
    record = jobs.read(repo, job_id)
    if record is None:
        raise FileNotFoundError(f"job {job_id} has no record under {jobs.job_dir(repo, job_id)}")
    if record.final:
        return record.public()
    record.state, record.started_at = "running", jobs.now()
    record.trainer = {"host": socket.gethostname(), "pid": os.getpid()}
    progress = Progress(repo, record)
    progress.write()
    progress.beat.start()
    try:
        if jobs.cancel_requested(repo, job_id):
            raise jobs.Cancelled()
        work = _finetune if record.kind == "finetune" else _train
        record.result = work(repo, record, progress)
        record.state = "succeeded"
    except jobs.Cancelled:
        record.state, record.error = "cancelled", "cancelled on request; nothing was published"
    except Exception as exc:  # the job's failure is its record's, in words; the trainer stays up for the next
        record.state, (record.error, record.error_kind) = "failed", _reason(exc)
        log.warning("job %s failed: %s\n%s", job_id, record.error, traceback.format_exc())
    finally:
        progress.stopped.set()
        progress.beat.join()
        shutil.rmtree(repo / jobs.STAGING_DIR / job_id, ignore_errors=True)
        folder = jobs.job_dir(repo, job_id)
        shutil.rmtree(folder / "work", ignore_errors=True)
        for sent in (*DATA_FILES, "series.npz"):  # the data sent with the job: the record outlives it
            (folder / sent).unlink(missing_ok=True)
    record.finished_at = jobs.now()
    jobs.write(repo, record)
    return record.public()


def _reason(exc: Exception) -> tuple[str, str]:
    """(message, kind): what was sent cannot be trained on ("input", the message says what to change), or the trainer
    failed ("trainer", named with the error's type)."""
    from training.artifacts import NameTaken, StaleEvaluation
    from training.finetune import FinetuneError

    if isinstance(exc, KeyError):
        return f"missing {exc}", "input"
    if isinstance(exc, FinetuneError | NameTaken | StaleEvaluation | ValueError | FileNotFoundError):
        return str(exc), "input"
    return f"{type(exc).__name__}: {exc}", "trainer"


def _finetune(repo: Path, record: jobs.JobRecord, progress: Progress) -> dict[str, Any]:
    from training.finetune import finetune, spec_from_job

    spec = spec_from_job(record, repo)
    return finetune(
        spec,
        repo,
        runs_dir=_runs_dir(repo),
        report=progress,
        cancelled=progress.cancelled,
        staging=repo / jobs.STAGING_DIR / record.id,
    )


def _runs_dir(repo: Path) -> Path:
    """Where committed models' checkpoints are: GATECAST_RUNS_DIR, else runs/ beside the repository."""
    return Path(os.environ.get("GATECAST_RUNS_DIR") or repo.resolve().parent / "runs")


def _train(repo: Path, record: jobs.JobRecord, progress: Progress) -> dict[str, Any]:
    """`gatecast pipeline` on the job's config and data, in the job's folder; the model then renamed into the
    repository as the next version of its name."""
    from training import pipeline
    from training.config import RunConfig
    from training.train import EpochHook

    folder = jobs.job_dir(repo, record.id)
    raw = tomllib.loads(record.spec["config"])
    uploaded = [folder / name for name in DATA_FILES if (folder / name).exists()]
    if uploaded:
        raw["dataset"] = str(uploaded[0])
    config = RunConfig.from_dict(raw, source=f"job {record.id}")
    config = replace(config, version=_next_version(repo, config.name, config.version))
    work = folder / "work"
    hook: EpochHook = progress
    model_file = pipeline.run_all(config, work, progress=False, force=True, on_epoch=hook)
    evaluation = json.loads((work / "reports" / config.name / "metrics.json").read_text())["evaluation"]
    summary = pipeline.run_summary(config, work)
    shutil.copy2(work / "runs" / config.name / "checkpoint.pt", model_file.parent / "checkpoint.pt")
    published = repo / config.name / config.version
    _publish_version(model_file.parent, published)
    # The report stays with the job (the work folder goes): the summary names where things are now.
    report = folder / "report"
    shutil.move(work / "reports" / config.name, report)
    summary = summary.replace(str(work / "reports" / config.name), str(report))
    summary = summary.replace(str(model_file), str(published / "model.onnx"))
    summary = summary.replace(f"gatecast serve --models {work / 'models'}, then", "it is served already; for instance")
    validation = evaluation.get("validation", {})
    return {
        "model": config.name,
        "version": config.version,
        "verdict": validation.get("verdict"),
        "beats_naive": validation.get("beats_naive"),
        "validation_mase": validation.get("mase"),
        "test_mase": {k: v.get("mase") for k, v in evaluation.get("scores", {}).items() if isinstance(v, dict)},
        "summary": summary,
        "report": str(report / "report.md"),
    }


def _next_version(repo: Path, name: str, asked: str) -> str:
    """The config's version for a new name; after the highest numeric version on disk for a name that exists."""
    folder = repo / name
    versions = [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    if not versions:
        return asked
    numbers = [int(v) for v in versions if v.isdigit()]
    return str(max(numbers, default=0) + 1)


def _publish_version(built: Path, target: Path) -> None:
    """One rename: the version folder appears whole (model and checkpoint) or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise FileExistsError(f"{target} appeared while the job ran: nothing was overwritten; submit the job again")
    os.rename(built, target)
    generation.advance(target.parent.parent)  # every worker serves it before the job's record says it succeeded
