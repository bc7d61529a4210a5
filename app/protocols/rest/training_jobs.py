"""Training jobs as a resource: POST /jobs (a config as `gatecast init` writes it, with its data), GET /jobs, GET
/jobs/{id} (state, progress, the verdict against naive and the model made), DELETE /jobs/{id} (cancel). More:
docs/design.md#appprotocolsresttraining_jobs.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile

from app.deps import TrainerDep
from app.errors import InvalidInput, UnsupportedMediaType
from app.protocols.rest.schemas import ErrorBody
from app.registry import check_segment

router = APIRouter(
    tags=["training jobs"], responses={code: {"model": ErrorBody} for code in (401, 404, 409, 413, 415, 422, 503)}
)
DATA_SUFFIXES = {".csv": "data.csv", ".parquet": "data.parquet", ".pq": "data.parquet"}
CONFIG_TYPES = ("application/toml", "text/x-toml", "text/plain")
FORM_PARTS = ("config", "data")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _config(text: str) -> tuple[dict[str, Any], str]:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        hint = "`gatecast init NAME --data FILE` writes one"
        raise InvalidInput(f"the config is not valid TOML: {exc}; {hint}") from None
    name = raw.get("name")
    if not isinstance(name, str):
        raise InvalidInput('the config sets no name: name = "my-model" (the model is served as models/<name>/)')
    return raw, check_segment("the config's name", name)


@router.post("/jobs", status_code=202, summary="Train a model: a config with its data")
async def submit_job(request: Request, trainer: TrainerDep) -> Response:
    """`multipart/form-data` with a `config` part (TOML, as `gatecast init` writes it) and a `data` part (a
    `unique_id, ds, y` .csv or .parquet file), or the config alone as `application/toml` with `dataset` a path
    the trainer can read or a named data set. Answers 202 with the job; GET /jobs/{id} follows it. What cannot be
    read is refused first (4xx), then a server without training answers 503."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data: tuple[str, bytes] | None = None
    if media == "multipart/form-data":
        form = await request.form(max_files=2, max_fields=2)
        unknown = sorted(set(form.keys()) - set(FORM_PARTS))
        if unknown:
            raise InvalidInput(f"form parts {unknown} are not read: send `config` and `data`")
        part = form.get("config")
        if part is None:
            raise InvalidInput("the form has no `config` part: curl -F config=@my-model.toml -F data=@data.csv")
        text = (await part.read()).decode("utf-8", "replace") if isinstance(part, UploadFile) else part
        upload = form.get("data")
        if upload is not None:
            if not isinstance(upload, UploadFile):
                raise InvalidInput("the `data` part must be a file: -F data=@readings.csv")
            suffix = Path(upload.filename or "").suffix.lower()
            if suffix not in DATA_SUFFIXES:
                raise InvalidInput(
                    f"the data file {upload.filename!r} is not .csv or .parquet: send a `unique_id, ds, y` table"
                )
            data = (DATA_SUFFIXES[suffix], await upload.read())
    elif media in CONFIG_TYPES:
        text = (await request.body()).decode("utf-8", "replace")
    else:
        raise UnsupportedMediaType(
            f"content-type {media or 'none'!r} is not read here: send multipart/form-data with `config` and `data` "
            "parts (curl -F config=@my-model.toml -F data=@data.csv), or the config alone as application/toml"
        )
    raw, name = _config(text)
    if data is None and not isinstance(raw.get("dataset"), str):
        raise InvalidInput("no data: send a `data` part, or set dataset in the config to a path the trainer reads")
    spec = {"name": name, "config": text, "data": data[0] if data else raw["dataset"]}
    trainer.check_available()

    def prepare(folder: Path) -> None:
        if data is not None:
            (folder / data[0]).write_bytes(data[1])

    record = await trainer.submit("train", spec, prepare)
    return _json(record.public(), 202, {"location": f"/jobs/{record.id}"})


@router.get("/jobs", summary="Training jobs, oldest first")
async def list_jobs(trainer: TrainerDep) -> Response:
    return _json({"jobs": [r.public() for r in trainer.list()]})


@router.get("/jobs/{job_id}", summary="A training job: state, progress, verdict, the model made")
async def get_job(job_id: str, trainer: TrainerDep) -> Response:
    return _json(trainer.get(job_id).public())


@router.delete("/jobs/{job_id}", status_code=202, summary="Cancel a training job")
async def cancel_job(job_id: str, trainer: TrainerDep) -> Response:
    """The trainer stops at its next epoch (or 10 fine-tuning steps), killed after 30 s otherwise; nothing of the
    job is published. 409 for a job that has already ended."""
    return _json(trainer.cancel(job_id).public(), 202)
