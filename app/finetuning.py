"""Fine-tuning from the server's side: the checks before a job is made, the job submitted to a trainer
(app.trainer_client) and waited for, and the model it made, loaded. A fine-tuning asked inside a forecast is keyed by
its history, made once and pruned beyond GATECAST_FINETUNE_HISTORY_MODELS.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from app import auth, deadlines
from app.errors import Conflict, InvalidInput, NotFound, RequestTimeout, ServiceUnavailable
from app.forecast_jobs import SeriesInput
from app.registry import ModelRepository, check_segment
from app.service import ModelService
from app.settings import Settings
from app.trainer_client import Trainer
from contract import jobs


@dataclass(frozen=True)
class Tuning:
    steps: int
    depth: int
    loss: str


LOSSES = ("default", "mae")  # the losses gatecast fine-tunes with (training.finetune.LOSSES)
HISTORY_PREFIX = "ft-history-"  # models made by forecast(finetune_steps), one per history, pruned beyond a limit


async def finetuned(repository: ModelRepository, model_id: str) -> ModelService:
    """A fine-tuned model by id; one made by another worker moments ago is loaded from the repository first."""
    check_segment("finetuned_model_id", model_id)
    if model_id not in repository.models:
        await repository.sync()
    if model_id not in repository.models:
        raise NotFound(f"fine-tuned model {model_id!r} does not exist: client.finetuned_models() lists them")
    service = repository.get(model_id)
    if jobs.finetune_info(service.card.extra) is None:
        raise NotFound(f"{model_id!r} is a model, not a fine-tuned one: pass it as model={model_id!r}")
    return service


def check_base(service: ModelService, freq: str | None) -> None:
    """What fine-tuning needs of its base model and the series' frequency, checked before a job is made."""
    card = service.card
    if not card.covariates.empty:
        raise InvalidInput(
            f"{service.name} reads covariates {list(card.covariates.observed) or list(card.covariates.calendar)}; "
            "fine-tuning takes a model without covariates (the finetune call sends none)"
        )
    if freq is not None and not card.any_freq and not _same_freq(freq, card.freq):
        raise InvalidInput(
            f"the series' frequency is {freq!r}, and {service.name} forecasts at {card.freq!r}: fine-tune a model "
            "trained at your series' frequency (GET /models lists each model's freq)"
        )


def _same_freq(a: str, b: str) -> bool:
    try:
        return bool(pd.tseries.frequencies.to_offset(a) == pd.tseries.frequencies.to_offset(b))
    except ValueError:
        return False


def check_settings(steps: int, loss: str, settings: Settings) -> None:
    limit = settings.finetune_max_steps
    if steps > limit:
        raise InvalidInput(f"finetune_steps {steps} exceeds {limit} (GATECAST_FINETUNE_MAX_STEPS): ask for fewer")
    if loss not in LOSSES:
        raise InvalidInput(
            f"finetune_loss {loss!r} is not a loss gatecast trains with: use 'default' (the model's own training "
            "loss) or 'mae' (L1 on each window's scale)"
        )


def created_by(headers: dict[str, str]) -> str:
    """Who asked, as a fine-tuned model's card records it: a digest of the key, never the key."""
    key = auth.presented_key(headers)
    return f"key {hashlib.sha256(key.encode()).hexdigest()[:8]}" if key else "anonymous"


async def run(
    trainer: Trainer,
    repository: ModelRepository,
    base: ModelService,
    series: list[SeriesInput],
    output_id: str,
    tuning: Tuning,
    asked_by: str,
    job_id: str | None = None,
) -> ModelService:
    """Submit the fine-tuning job, wait for it (GATECAST_FINETUNE_TIMEOUT_S) and return the model it made, loaded."""
    timeout = trainer.settings.finetune_timeout_s
    deadlines.allow(timeout + 5.0)  # this call waits for its job; it answers its own timeout before the limit
    y = np.concatenate([np.asarray(s.values, dtype=np.float64) for s in series])
    sizes = np.asarray([len(s.values) for s in series], dtype=np.int64)
    spec = {
        "base_model": base.name,
        "base_version": base.version,
        "output_id": output_id,
        "steps": tuning.steps,
        "depth": tuning.depth,
        "loss": tuning.loss,
        "created_by": asked_by,
        "series": len(series),
        "values": int(sizes.sum()),
    }

    def prepare(folder: Path) -> None:
        np.savez(folder / "series.npz", y=y, sizes=sizes)

    record = await trainer.submit("finetune", spec, prepare, job_id=job_id)
    done = await trainer.wait(record.id, timeout)
    if done is None:
        raise RequestTimeout(
            f"fine-tuning is still running after {timeout:g} s (GATECAST_FINETUNE_TIMEOUT_S) as job {record.id}: "
            f"GET /jobs/{record.id} follows it; the model {output_id!r} is served once it succeeds"
        )
    if done.state != "succeeded":
        if done.error_kind == "input":
            raise InvalidInput(f"fine-tuning {base.name} failed: {done.error}")
        raise ServiceUnavailable(f"fine-tuning {base.name} failed on its trainer (job {done.id}): {done.error}")
    return await finetuned(repository, output_id)


async def on_history(
    trainer: Trainer,
    repository: ModelRepository,
    base: ModelService,
    series: list[SeriesInput],
    tuning: Tuning,
    keyed_by: bytes,
    asked_by: str,
) -> ModelService:
    """The model fine-tuned on this history, made once: its id is a digest of the base model's weights, the settings,
    `keyed_by` (what else the caller's protocol says of the series) and the values, so the same call reuses it and a
    different one never does."""
    trainer.check_available()
    digest = hashlib.sha256()
    digest.update(f"{base.card.sha256}|{tuning.steps}|{tuning.depth}|{tuning.loss}|".encode())
    digest.update(keyed_by)
    for s in series:
        digest.update(np.asarray(s.values, dtype=np.float64).tobytes())
        digest.update(b"|")
    key = digest.hexdigest()[:20]
    output_id = f"{HISTORY_PREFIX}{key}"
    if (repository.root / output_id).exists():
        return await finetuned(repository, output_id)
    job_id = f"finetune-{key}"
    previous = jobs.read(trainer.root, job_id)
    if previous is not None and not previous.final:  # the same fine-tuning, asked a moment ago: wait for it
        deadlines.allow(trainer.settings.finetune_timeout_s + 5.0)
        done = await trainer.wait(job_id, trainer.settings.finetune_timeout_s)
        if done is not None and done.state == "succeeded":
            return await finetuned(repository, output_id)
    if previous is not None:
        shutil.rmtree(jobs.job_dir(trainer.root, job_id), ignore_errors=True)
    try:
        made = await run(trainer, repository, base, series, output_id, tuning, asked_by, job_id=job_id)
    except Conflict:  # the same fine-tuning, submitted by another call a moment ago: its model, once made
        done = await trainer.wait(job_id, trainer.settings.finetune_timeout_s)
        if done is None or done.state != "succeeded":
            raise ServiceUnavailable(f"the same fine-tuning (job {job_id}) did not succeed: retry") from None
        return await finetuned(repository, output_id)
    await prune_history_models(repository, trainer.settings.finetune_history_models, keep=output_id)
    return made


async def prune_history_models(repository: ModelRepository, limit: int, keep: str) -> None:
    """The oldest models made by forecast(finetune_steps) beyond `limit` (GATECAST_FINETUNE_HISTORY_MODELS) are
    removed: each different history makes one, and every worker loads them all."""
    made = sorted(
        (p for p in repository.root.glob(f"{HISTORY_PREFIX}*") if p.name != keep),
        key=lambda p: p.stat().st_mtime,
    )
    for old in made[: max(0, len(made) - (limit - 1))]:
        repository.remove(old.name)
    await repository.sync()
