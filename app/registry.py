"""The model repository: `<root>/<name>/<version>/model.onnx`, loaded into sessions, swapped atomically.

Loading builds the new version completely (session, metadata check, warm-up run, batcher) before it
replaces the old one in a single dict assignment, so a request sees either the old or the new model,
never a half-loaded one, and a bad file leaves the old version serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from app import metrics
from app.batcher import Batcher
from app.contract import ModelCard
from app.errors import InvalidInput, ModelLoadError, NotFound
from app.runtime import Runtime, choose_providers, load_runtime
from app.settings import Settings

log = logging.getLogger("gatecast.registry")
MODEL_FILE = "model.onnx"
# Names and versions are single path segments: no separators, no "..", nothing hidden.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_segment(kind: str, value: str) -> str:
    if not _SEGMENT.match(value) or ".." in value:
        raise InvalidInput(
            f"{kind} {value!r} is not valid: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return value


def version_key(version: str) -> tuple[int, int | str]:
    """Numeric versions sort numerically and after non-numeric ones ("2" < "10")."""
    return (1, int(version)) if version.isdigit() else (0, version)


@dataclass
class LoadedModel:
    name: str
    version: str
    path: Path
    runtime: Runtime
    batcher: Batcher
    fingerprint: tuple[int, int]

    @property
    def card(self) -> ModelCard:
        return self.runtime.card


@dataclass
class ModelRepository:
    settings: Settings
    executor: ThreadPoolExecutor
    models: dict[str, dict[str, LoadedModel]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # "name@version" or "name" -> why
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _seen: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)  # disk state at last load try

    @property
    def root(self) -> Path:
        return self.settings.model_repository

    # --- lookup -----------------------------------------------------------------------------------------

    def resolve(self, spec: str | None) -> LoadedModel:
        """`name`, `name@version` or None (the default model) -> a loaded model, or NotFound."""
        if spec is None:
            spec = self.settings.default_model or (min(self.models) if self.models else None)
            if spec is None:
                raise NotFound("no model is loaded; check GET /models and the server log")
        name, _, version = spec.partition("@")
        return self.get(name, version or None)

    def get(self, name: str, version: str | None = None) -> LoadedModel:
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
        if self.settings.default_model:
            return self.settings.default_model.partition("@")[0]
        return min(self.models) if self.models else None

    # --- loading ----------------------------------------------------------------------------------------

    def discover(self) -> dict[str, list[str]]:
        """Model names on disk -> their versions (folders holding model.onnx)."""
        found: dict[str, list[str]] = {}
        if not self.root.is_dir():
            return found
        for model_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and _SEGMENT.match(p.name)):
            versions = [v.name for v in model_dir.iterdir() if (v / MODEL_FILE).is_file() and _SEGMENT.match(v.name)]
            if versions:
                found[model_dir.name] = sorted(versions, key=version_key)
        return found

    async def load_all(self) -> None:
        for name in self.discover():
            # A refusal is recorded in `failures` and logged; the other models keep loading.
            with contextlib.suppress(ModelLoadError):
                await self.load(name)

    async def load(self, name: str) -> dict[str, LoadedModel]:
        """(Re)load every version of `name` from disk. Versions that fail keep their old copy serving."""
        check_segment("model name", name)
        async with self._lock:
            versions = self.discover().get(name)
            self._seen[name] = self._disk_state(name)
            if not versions:
                raise NotFound(f"model {name!r} has no {MODEL_FILE} under {self.root / name}/<version>/")
            current = dict(self.models.get(name, {}))
            errors = []
            for version in versions:
                try:
                    loaded = await self._load_version(name, version, current.get(version))
                except ModelLoadError as exc:
                    errors.append(f"version {version}: {exc.message}")
                    continue
                if loaded is not None:
                    old = current.get(version)
                    current[version] = loaded
                    if old is not None:
                        await self._retire(old)
            for gone in set(current) - set(versions):
                await self._retire(current.pop(gone))
            if current:
                self.models = {**self.models, name: current}  # the atomic swap
            if errors:
                raise ModelLoadError(f"model {name!r}: " + "; ".join(errors) + " (previous versions keep serving)")
            return current

    async def _load_version(self, name: str, version: str, old: LoadedModel | None) -> LoadedModel | None:
        path = self.root / name / version / MODEL_FILE
        fingerprint = _fingerprint(path)
        if old is not None and old.fingerprint == fingerprint:
            return None  # unchanged
        key = f"{name}@{version}"
        try:
            _check_inside(self.root, path)
            data = path.read_bytes()
            providers = choose_providers(self.settings.provider)
            runtime = await asyncio.get_running_loop().run_in_executor(
                self.executor, load_runtime, data, providers, self.settings.ort_threads()
            )
            if runtime.card.name != name:
                log.warning("%s: the file's metadata names it %r; served as %r", key, runtime.card.name, name)
        except ModelLoadError as exc:
            self.failures[key] = exc.message
            metrics.MODEL_LOAD_FAILURES.labels(model=name).inc()
            log.error("model %s refused at load: %s", key, exc.message)
            raise
        self.failures.pop(key, None)
        batcher = Batcher(
            runtime.run,
            self.executor,
            name,
            version,
            self.settings.max_batch_series,
            self.settings.max_queue_delay_us,
            self.settings.max_queue_series,
        )
        batcher.start()
        metrics.MODEL_LOADED.labels(model=name, version=version, provider=runtime.provider).set(1)
        fallback = (
            f", {len(runtime.cpu_fallback_nodes)} nodes on CPU: {runtime.cpu_fallback_nodes}"
            if runtime.cpu_fallback_nodes
            else ""
        )
        log.info(
            "model %s loaded on %s (window %d, horizon %d%s)",
            key,
            runtime.provider,
            runtime.card.trained_window,
            runtime.card.horizon,
            fallback,
        )
        return LoadedModel(name, version, path, runtime, batcher, fingerprint)

    async def unload(self, name: str) -> None:
        check_segment("model name", name)
        async with self._lock:
            versions = self.models.get(name)
            if not versions:
                raise NotFound(f"model {name!r} is not loaded")
            self.models = {k: v for k, v in self.models.items() if k != name}
            for loaded in versions.values():
                await self._retire(loaded)
            log.info("model %s unloaded", name)

    async def _retire(self, loaded: LoadedModel) -> None:
        """Let queued requests finish on the old version, then forget it."""
        await loaded.batcher.close()
        metrics.MODEL_LOADED.labels(model=loaded.name, version=loaded.version, provider=loaded.runtime.provider).set(0)

    async def reload_changed(self) -> None:
        """Poll step for a watched repository: (re)load every model whose files changed since the last try."""
        for name in self.discover():
            if self._disk_state(name) != self._seen.get(name):
                try:
                    await self.load(name)
                except (ModelLoadError, NotFound) as exc:
                    log.error("watch: %s", exc.message)

    def _disk_state(self, name: str) -> dict[str, tuple[int, int]]:
        return {v: _fingerprint(self.root / name / v / MODEL_FILE) for v in self.discover().get(name, [])}

    async def close(self) -> None:
        for versions in list(self.models.values()):
            for loaded in versions.values():
                await self._retire(loaded)
        self.models = {}


def _fingerprint(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)


def _check_inside(root: Path, path: Path) -> None:
    """Symlinks or odd names must not lead outside the repository."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise ModelLoadError(f"{path} resolves outside the model repository {root}")
