"""The model repository: `<root>/<name>/<version>/model.onnx`, each version loaded into a `ModelService`. More:
docs/design.md#appregistry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from app import metrics
from app.batcher import Batcher
from app.errors import InvalidInput, ModelLoadError, NotFound
from app.runtime import CPU, Runtime, choose_providers, load_runtime
from app.service import Limits, ModelService
from app.settings import Settings
from contract import generation, jobs
from contract.card import BASE_MODEL

log = logging.getLogger("gatecast.registry")
MODEL_FILE = "model.onnx"
# Names and versions are single path segments: no separators, no "..", nothing hidden.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # fullmatch: `$` would take a final newline
Fingerprint = tuple[int, int]  # (size, mtime_ns) of a model file; (-1, -1) when it is gone
DiskState = dict[str, dict[str, Fingerprint]]  # name -> version -> fingerprint


def check_segment(kind: str, value: str) -> str:
    if not _SEGMENT.fullmatch(value) or ".." in value:
        raise InvalidInput(
            f"{kind} {value!r} is not valid: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return value


def version_key(version: str) -> tuple[int, int | str]:
    """Numeric versions sort numerically and after non-numeric ones ("2" < "10")."""
    return (1, int(version)) if version.isdigit() else (0, version)


@dataclass
class ModelRepository:
    settings: Settings
    executor: ThreadPoolExecutor  # inference runs
    models: dict[str, dict[str, ModelService]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # "name@version" or "name" -> why
    # File reads and session creation: one thread of their own, so a slow disk or a huge file never holds
    # an inference thread or the event loop.
    loader: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="gatecast-load")
    )
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _seen: DiskState = field(default_factory=dict)  # disk state at the last load attempt, per model
    _loaded: dict[tuple[str, str], Fingerprint] = field(default_factory=dict)  # what each service was built from
    _generation: int = -1  # contract.generation read at the start of the last finished sync; -1: never synced
    _syncing: asyncio.Future[None] | None = None  # the sync that requests catching up wait for

    @property
    def root(self) -> Path:
        return self.settings.model_repository

    # --- lookup -----------------------------------------------------------------------------------------

    def resolve(self, spec: str | None) -> ModelService:
        """`name`, `name@version` or None (the default model) -> a loaded model, or NotFound."""
        if spec is None:
            spec = self.settings.default_model or self.default_name()
            if spec is None:
                raise NotFound("no model is loaded; check GET /models and the server log")
        name, _, version = spec.partition("@")
        return self.get(name, version or None)

    def get(self, name: str, version: str | None = None) -> ModelService:
        versions = self.models.get(name)
        if not versions:
            known = ", ".join(sorted(self.models)) or "none"
            raise NotFound(f"model {name!r} is not loaded; loaded models: {known}")
        if version is None:
            return versions[max(versions, key=version_key)]
        if version not in versions:
            raise NotFound(f"model {name!r} has no version {version!r}; versions: {sorted(versions, key=version_key)}")
        return versions[version]

    def default_name(self) -> str | None:
        """GATECAST_DEFAULT_MODEL (its name); unset, the base model when it is served, else the first by name."""
        if self.settings.default_model:
            return self.settings.default_model.partition("@")[0]
        if BASE_MODEL in self.models:
            return BASE_MODEL
        return min(self.models) if self.models else None

    # --- the folder ---------------------------------------------------------------------------------------

    def scan(self) -> DiskState:
        """Model names on disk -> version -> file fingerprint (folders holding model.onnx). Blocking: stat calls."""
        found: DiskState = {}
        if not self.root.is_dir():
            return found
        for model_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and _SEGMENT.fullmatch(p.name)):
            versions = {
                v.name: _fingerprint(v / MODEL_FILE)
                for v in model_dir.iterdir()
                if _SEGMENT.fullmatch(v.name) and (v / MODEL_FILE).is_file()
            }
            if versions:
                found[model_dir.name] = versions
        return found

    async def _scan(self) -> DiskState:
        return await asyncio.get_running_loop().run_in_executor(self.loader, self.scan)

    async def discover(self) -> dict[str, list[str]]:
        """Model names on disk -> their versions, sorted (scanned in the loader thread)."""
        return {name: sorted(versions, key=version_key) for name, versions in (await self._scan()).items()}

    # --- loading ----------------------------------------------------------------------------------------

    async def catch_up(self) -> None:
        """Before a request is answered: when a publish or removal elsewhere advanced the repository's generation
        (contract.generation) since this worker last synced, wait for a sync (one, shared by every request that
        saw the change; shielded, so a request that times out does not cancel it). Otherwise one stat."""
        for _ in range(2):  # a sync already under way may have read the generation before the change
            if generation.current(self.root) == self._generation:
                return
            if self._syncing is None or self._syncing.done():
                self._syncing = asyncio.ensure_future(self.sync())
            try:
                await asyncio.shield(self._syncing)
            except Exception:  # noqa: BLE001 - the request goes on with what is loaded; the poll retries
                log.exception("model repository catch-up failed")
                return

    async def sync(self) -> None:
        """Make this worker match the folder: (re)load what is new or changed, unload what is gone."""
        seen = generation.current(self.root)  # read first: a change during the scan leaves the next request to sync
        disk = await self._scan()
        for name in sorted(set(self.models) - set(disk)):
            log.warning("model %s is gone from %s: unloading it", name, self.root)
            with contextlib.suppress(NotFound):
                await self.unload(name)
            self._seen.pop(name, None)
        for name, versions in disk.items():
            if versions != self._seen.get(name):
                # A refusal is recorded in `failures` and logged; the other models keep loading.
                with contextlib.suppress(ModelLoadError, NotFound):
                    await self.load(name)
        for key in [k for k in self.failures if k.partition("@")[0] not in disk]:
            del self.failures[key]  # a refused file that was deleted is no longer a failure to report
        self._generation = seen

    async def load(self, name: str) -> dict[str, ModelService]:
        """(Re)load every version of `name` from disk. Versions that fail keep their old copy serving;
        versions deleted from disk are unloaded; a model whose folder is gone is unloaded and NotFound."""
        check_segment("model name", name)
        async with self._lock:
            disk = (await self._scan()).get(name, {})
            self._seen[name] = disk
            if not disk:
                gone = self.models.get(name)
                if gone:
                    self.models = {k: v for k, v in self.models.items() if k != name}
                    for service in gone.values():
                        await self._retire(service)
                raise NotFound(f"model {name!r} has no {MODEL_FILE} under {self.root / name}/<version>/")
            current = dict(self.models.get(name, {}))
            errors = []
            for version in sorted(disk, key=version_key):
                key = (name, version)
                if version in current and self._loaded.get(key) == disk[version]:
                    continue  # unchanged
                try:
                    service = await self._load_version(name, version)
                except ModelLoadError as exc:
                    errors.append(f"version {version}: {exc.message}")
                    continue
                old = current.get(version)
                current[version] = service
                self._loaded[key] = disk[version]
                if old is not None:
                    old.replaced_by = service  # requests that resolved the old copy are answered by this one
                    await self._retire(old)
            for gone_version in set(current) - set(disk):
                await self._retire(current.pop(gone_version))
            others = {k: v for k, v in self.models.items() if k != name}
            self.models = {**others, name: current} if current else others
            for stale in [k for k in self.failures if k.startswith(f"{name}@") and k.partition("@")[2] not in disk]:
                del self.failures[stale]
            if errors:
                raise ModelLoadError(f"model {name!r}: " + "; ".join(errors) + " (previous versions keep serving)")
            return current

    async def _load_version(self, name: str, version: str) -> ModelService:
        path = self.root / name / version / MODEL_FILE
        key = f"{name}@{version}"
        try:
            runtime = await asyncio.get_running_loop().run_in_executor(self.loader, self._open, path)
            if runtime.card.name != name:
                log.warning("%s: the file's metadata names it %r; served as %r", key, runtime.card.name, name)
        except ModelLoadError as exc:
            self.failures[key] = exc.message
            metrics.MODEL_LOAD_FAILURES.labels(model=name).inc()
            log.error("model %s refused at load: %s", key, exc.message)
            raise
        self.failures.pop(key, None)
        settings = self.settings
        batcher = Batcher(
            runtime.run,
            self.executor,
            name,
            version,
            settings.max_batch_series,
            settings.max_queue_delay_us,
            settings.max_queue_series,
            inline_max_series=settings.inline_max_series if inline_runs(runtime, settings) else 0,
            gather_wait_us=settings.gather_wait_us,
        )
        batcher.start()
        limits = Limits(
            settings.max_series_per_request, settings.max_points_per_series, settings.max_windows_per_request
        )
        metrics.MODEL_LOADED.labels(model=name, version=version, provider=runtime.provider).set(1)
        fallback = (
            f", {len(runtime.cpu_fallback_nodes)} nodes on CPU: {runtime.cpu_fallback_nodes}"
            if runtime.cpu_fallback_nodes
            else ""
        )
        card = runtime.card
        log.info(
            "model %s loaded on %s (window %d-%d, horizon %d%s)",
            key,
            runtime.provider,
            card.min_window,
            card.trained_window,
            card.horizon,
            fallback,
        )
        return ModelService(name, version, runtime, batcher, limits)

    def _open(self, path: Path) -> Runtime:
        """In the loader thread: size check, read, session, checks and warm-up."""
        _check_inside(self.root, path)
        try:
            size = path.stat().st_size
            if size > self.settings.max_model_bytes:
                raise ModelLoadError(
                    f"the file has {size} bytes; the limit is {self.settings.max_model_bytes} "
                    "(GATECAST_MAX_MODEL_BYTES)"
                )
            data = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"the file could not be read: {exc}") from exc
        settings = self.settings
        providers = choose_providers(settings.provider)
        return load_runtime(data, providers, settings.ort_threads(), settings.max_batch_series)

    async def unload(self, name: str) -> None:
        check_segment("model name", name)
        async with self._lock:
            versions = self.models.get(name)
            if not versions:
                raise NotFound(f"model {name!r} is not loaded")
            self.models = {k: v for k, v in self.models.items() if k != name}
            for service in versions.values():
                await self._retire(service)
            log.info("model %s unloaded", name)

    def remove(self, name: str) -> None:
        """Delete a model from the folder: renamed out in one step (no reader sees half of it), the generation
        advanced (every worker refuses it before the caller answers), then deleted. Workers unload it at their sync."""
        check_segment("model name", name)
        trash = self.root / jobs.TRASH_DIR / f"{name}-{uuid.uuid4().hex[:8]}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.root / name, trash)
        generation.advance(self.root)
        shutil.rmtree(trash, ignore_errors=True)

    async def _retire(self, service: ModelService) -> None:
        """Let queued requests finish on the old version, then forget it."""
        await service.batcher.close()
        self._loaded.pop((service.name, service.version), None)
        metrics.MODEL_LOADED.labels(model=service.name, version=service.version, provider=service.runtime.provider).set(
            0
        )

    async def close(self) -> None:
        for versions in list(self.models.values()):
            for service in versions.values():
                await self._retire(service)
        self.models = {}
        self.loader.shutdown(wait=False, cancel_futures=True)


def _fingerprint(path: Path) -> Fingerprint:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)


def _check_inside(root: Path, path: Path) -> None:
    """Symlinks or odd names must not lead outside the repository."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise ModelLoadError(f"{path} resolves outside the model repository {root}")


def inline_runs(runtime: Runtime, settings: Settings) -> bool:
    """Small batches run on the event loop only where a run is plain CPU work in the calling thread: a CPU
    session with one intra-op thread (one worker per core). A multi-threaded or GPU session keeps the hop."""
    return runtime.provider == CPU and settings.ort_threads() == 1
