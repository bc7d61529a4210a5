"""Training and fine-tuning jobs, from the server's side: accepted here, run by trainer processes on Ray. More:
docs/design.md#apptrainer_client.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import Conflict, NotFound, Overloaded, ServiceUnavailable
from app.settings import Settings, available_cpus
from contract import jobs

if TYPE_CHECKING:  # `gatecast serve`'s supervisor imports this module: onnxruntime stays out of its memory
    from app.registry import ModelRepository

log = logging.getLogger("gatecast.training")
RAY_NAMESPACE = "gatecast"
POLL_S = 0.2  # how often a job submitted by another worker is re-read while waiting for it
CANCEL_GRACE_S = 30.0  # a running trainer that has not stopped by then (a long epoch) is killed
# Jobs pass file paths through Ray, never data: the local Ray's object store needs little of the server's memory.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024
TRAIN_EXTRA = "pip install 'gatecast[train]' (torch and Ray) where the server runs"


def missing_extra() -> str | None:
    """What this machine lacks to run jobs, or None."""
    absent = [name for name in ("ray", "torch") if importlib.util.find_spec(name) is None]
    if not absent:
        return None
    verb = "is" if len(absent) == 1 else "are"
    return f"training needs the train extra, and {' and '.join(absent)} {verb} not installed: {TRAIN_EXTRA}"


def start_local_ray(cpus: int) -> str:
    """A local Ray for this process and, through the returned address, the server's other workers."""
    import ray

    ray.init(
        address="local",  # a new instance of its own, never one another program left on this machine
        num_cpus=cpus,
        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        namespace=RAY_NAMESPACE,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    address: str = ray.get_runtime_context().gcs_address
    return address


class Trainer:
    """One per worker: submits jobs to Ray, follows those it submitted, reads every job's record."""

    def __init__(self, settings: Settings, repository: ModelRepository) -> None:
        self.settings = settings
        self.repository = repository
        self.root = settings.model_repository.resolve()
        self._ray_ready: asyncio.Lock = asyncio.Lock()
        self._connected = False
        self._followed: dict[str, tuple[asyncio.Task[None], Any]] = {}  # job id -> (follower, Ray ObjectRef)

    # --- availability --------------------------------------------------------------------------------------

    def check_available(self) -> None:
        if self.settings.training == "off":
            raise ServiceUnavailable("training is switched off on this server (GATECAST_TRAINING=off)")
        reason = missing_extra()
        if reason:
            raise ServiceUnavailable(reason)

    async def _connect(self) -> None:
        async with self._ray_ready:
            if self._connected:
                return
            address = self.settings.ray_address or None
            cpus = self.settings.training_cpus or available_cpus()

            def connect() -> None:
                import ray

                if ray.is_initialized():
                    return
                if address is None:
                    start_local_ray(cpus)
                else:
                    ray.init(address=address, namespace=RAY_NAMESPACE, log_to_driver=False, configure_logging=False)

            try:
                await asyncio.wait_for(
                    asyncio.get_running_loop().run_in_executor(None, connect), self.settings.ray_connect_timeout_s
                )
            except TimeoutError:
                where = f"Ray at {address}" if address else "a local Ray"
                raise ServiceUnavailable(
                    f"{where} did not answer within {self.settings.ray_connect_timeout_s} s "
                    "(GATECAST_RAY_CONNECT_TIMEOUT_S): check GATECAST_RAY_ADDRESS and that the cluster is up"
                ) from None
            self._connected = True

    # --- jobs ----------------------------------------------------------------------------------------------

    def active(self) -> list[jobs.JobRecord]:
        return [r for r in self.list() if not r.final]

    async def submit(
        self, kind: str, spec: dict[str, Any], prepare: Callable[[Path], None], job_id: str | None = None
    ) -> jobs.JobRecord:
        """Write the job's record (queued) and its files (`prepare` writes them into the job's folder), then hand it
        to Ray. 503 when training is unavailable or GATECAST_MAX_TRAINING_JOBS are queued or running."""
        self.check_available()
        busy = len(self.active())
        if busy >= self.settings.max_training_jobs:
            raise Overloaded(
                f"{busy} training jobs are queued or running; the limit is {self.settings.max_training_jobs} "
                "(GATECAST_MAX_TRAINING_JOBS): retry when one has finished",
                retry_after=30.0,
                code="training_busy",
            )
        job_id = job_id or f"{kind}-{uuid.uuid4().hex[:12]}"
        now = jobs.now()
        record = jobs.JobRecord(job_id, kind, "queued", now, now, spec)
        folder = jobs.job_dir(self.root, job_id)
        try:
            folder.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise Conflict(f"job {job_id} exists already: GET /jobs/{job_id}") from None
        try:
            prepare(folder)
            jobs.write(self.root, record)
            await self._connect()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        import ray

        task = ray.remote(run_in_trainer).options(
            num_cpus=self.settings.training_cpus_per_job, max_retries=0, name=f"gatecast-{job_id}"
        )
        ref = task.remote(str(self.root), job_id)
        follower = asyncio.create_task(self._follow(job_id, ref))
        self._followed[job_id] = (follower, ref)
        log.info("job %s (%s) submitted to Ray", job_id, kind)
        return record

    async def _follow(self, job_id: str, ref: Any) -> None:
        """Until the Ray task ends: a trainer that died before writing a final state leaves the job failed."""
        try:
            await asyncio.wrap_future(ref.future())
        except Exception as exc:  # the task's end, whatever it was, is recorded below
            record = jobs.read(self.root, job_id)
            if record is not None and not record.final:
                cancelled = jobs.cancel_requested(self.root, job_id)
                record.state = "cancelled" if cancelled else "failed"
                record.error_kind = None if cancelled else "trainer"
                record.error = (
                    "cancelled on request before it finished; nothing was published"
                    if cancelled
                    else f"the trainer process stopped before finishing ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else 'no message'}); nothing was published"
                )
                record.finished_at = jobs.now()
                jobs.write(self.root, record)
                log.warning("job %s: %s", job_id, record.error)
        finally:
            self._followed.pop(job_id, None)
        record = jobs.read(self.root, job_id)
        if record is not None and record.state == "succeeded":
            await self.repository.sync()  # this worker serves the new model now; the others on their next request

    async def wait(self, job_id: str, timeout: float) -> jobs.JobRecord | None:
        """The job's record once final, or None when `timeout` seconds pass first."""
        followed = self._followed.get(job_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if followed is not None:
            try:
                await asyncio.wait_for(asyncio.shield(followed[0]), timeout)
            except TimeoutError:
                return None
        while True:
            record = jobs.read(self.root, job_id)
            if record is not None and record.final:
                return record
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(POLL_S)

    def get(self, job_id: str) -> jobs.JobRecord:
        record = jobs.read(self.root, job_id) if _safe_id(job_id) else None
        if record is None:
            raise NotFound(f"job {job_id!r} does not exist; GET /jobs lists them")
        return _unless_stale(self.root, record)

    def list(self) -> list[jobs.JobRecord]:
        return [_unless_stale(self.root, r) for r in jobs.all_records(self.root)]

    def cancel(self, job_id: str) -> jobs.JobRecord:
        """Ask the trainer to stop (it looks between epochs and every 10 fine-tuning steps); a job Ray has not
        started yet is taken off its queue here when this worker submitted it."""
        record = self.get(job_id)
        if record.final:
            raise Conflict(f"job {job_id} has already {record.state}: there is nothing to cancel")
        jobs.request_cancel(self.root, job_id)
        followed = self._followed.get(job_id)
        if followed is not None:
            import ray

            if record.state == "queued":
                ray.cancel(followed[1])
            else:
                asyncio.get_running_loop().call_later(CANCEL_GRACE_S, self._kill_if_running, job_id)
        return record

    def _kill_if_running(self, job_id: str) -> None:
        followed = self._followed.get(job_id)
        if followed is not None:
            import ray

            log.warning("job %s did not stop within %g s of its cancel: killing its trainer", job_id, CANCEL_GRACE_S)
            ray.cancel(followed[1], force=True)

    async def close(self) -> None:
        for follower, _ in list(self._followed.values()):
            follower.cancel()


def _unless_stale(root: Path, record: jobs.JobRecord) -> jobs.JobRecord:
    """A running job whose trainer stopped writing is failed here, by whichever worker reads it first."""
    if jobs.stale(record):
        record.state, record.finished_at, record.error_kind = "failed", jobs.now(), "trainer"
        record.error = (
            f"its trainer ({record.trainer.get('host')}, pid {record.trainer.get('pid')}) stopped writing at "
            f"{record.heartbeat_at}: the trainer or its Ray is gone (a local Ray stops with its server); nothing was "
            "published"
        )
        jobs.write(root, record)
    return record


def _safe_id(job_id: str) -> bool:
    return job_id.replace("-", "").isalnum() and len(job_id) <= 64


def run_in_trainer(repository: str, job_id: str) -> dict[str, Any]:
    """What the server hands Ray. Ray sends a module's function by reference, so a trainer process imports this
    torch-free module and only then, there, training and torch; the server itself never runs it."""
    from training import jobs as trainer_jobs  # noqa: PLC0415 - the trainer's side, never the server's

    result: dict[str, Any] = trainer_jobs.run(repository, job_id)
    return result
