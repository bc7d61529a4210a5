"""The TimeGPT API's routes, as nixtla 0.9's client calls them. Each decodes its body (decode), runs gatecast's job
through the forecasting entry point or the fine-tuning client (app.finetuning), and answers in TimeGPT's shapes
(answers); docs/api.md describes what each reads and refuses."""

from __future__ import annotations

import uuid

import orjson
from fastapi import APIRouter, Query, Request, Response

from app import auto, backtest, finetuning, forecasting, frequency
from app.deps import RepositoryDep, TrainerDep
from app.errors import Conflict, InvalidInput
from app.forecast_jobs import ForecastJob, WindowJob
from app.protocols.timegpt import answers, decode
from app.protocols.timegpt.schemas import FORECAST_PARAMETERS, FinetuneRequest, TimeGPTError, TimeGPTRequest
from app.registry import ModelRepository, check_segment
from app.service import ModelService
from app.trainer_client import Trainer

router = APIRouter(
    tags=["TimeGPT API (nixtla client)"],
    responses={code: {"model": TimeGPTError} for code in (400, 401, 404, 413, 415, 422, 431, 503)},
)


@router.get("/validate_api_key", summary="TimeGPT API: is the key accepted")
async def validate_api_key() -> Response:
    """Reached only with a key gatecast accepts (or with keys switched off): the key check runs before."""
    return answers.answer({"detail": "API key is valid"})


@router.get("/model_params", summary="TimeGPT API: a model's input size and horizon")
async def model_params(
    repository: RepositoryDep, model: str | None = Query(None, max_length=300), freq: str | None = None
) -> Response:
    service = decode.resolve(repository, model)
    return answers.answer({"detail": {"input_size": service.card.trained_window, "horizon": service.card.horizon}})


@router.get("/v2/models", summary="TimeGPT API: the models")
async def list_models(repository: RepositoryDep) -> Response:
    return answers.answer({"models": [{"name": name} for name in sorted(repository.models)]})


@router.post("/v2/forecast", summary="TimeGPT API: forecast")
async def forecast(body: TimeGPTRequest, repository: RepositoryDep, trainer: TrainerDep, request: Request) -> Response:
    """With `finetune_steps`, the model is first fine-tuned on the history sent (once: the same history, model and
    settings reuse the model made the first time), then forecasts; bounded by GATECAST_FINETUNE_MAX_STEPS and
    GATECAST_FINETUNE_TIMEOUT_S."""
    calibration = decode.refuse_unsupported(body, FORECAST_PARAMETERS, finetune=True).get("calibration")
    levels, zero = decode.levels(body.level)
    if body.model.lower() == auto.AUTO and not body.finetuned_model_id and not body.finetune_steps:
        series = decode.series_inputs(body, repository.resolve(None), future_h=body.h)
        result = await auto.forecast(
            repository, ForecastJob(series, body.h, levels, calibration=calibration or "model")
        )
    else:
        service = await decode.model_of(repository, body)
        if body.finetune_steps:
            service = await _finetuned_on_history(body, service, repository, trainer, request)
        h = service.horizon(body.h)
        series = decode.series_inputs(body, service, future_h=h)
        # A quantile head answers intervals of its own; a conformal model's are rescaled on history where it suffices.
        calibration = calibration or ("model" if service.card.quantile_levels else "auto")
        result = await forecasting.forecast(service, ForecastJob(series, h, levels, calibration=calibration))
    intervals = answers.flat_intervals(result.intervals, result.mean, zero)
    response = answers.answer(
        {"mean": result.mean.ravel(), "intervals": intervals, "weights_x": None}, answers.made_by(result)
    )
    response.headers.update(frequency.warning_headers(result.warnings))
    return response


@router.post("/v2/cross_validation", summary="TimeGPT API: cross-validation")
async def cross_validation(body: TimeGPTRequest, repository: RepositoryDep) -> Response:
    decode.refuse_unsupported(body)
    service = await decode.model_of(repository, body)
    card = service.card
    levels, zero = decode.levels(body.level)
    series = decode.series_inputs(body, service, future_h=None)
    if body.full_history:  # the client's add_history: in-sample forecasts over as much history as possible
        h = card.horizon
        cutoffs = [backtest.history_cutoffs(len(s.values), h, card.min_window) for s in series]
    else:
        h = service.horizon(body.h)
        step = body.step_size or h
        n_windows = body.n_windows or 1
        cutoffs = [backtest.rolling_cutoffs(s, len(s.values), h, n_windows, step, card.min_window) for s in series]
    windows = await forecasting.windows(service, WindowJob(series, cutoffs, h, levels))
    return answers.answer(answers.cross_validation(series, windows, h, zero), f"{service.name}@{service.version}")


@router.post("/v2/anomaly_detection", summary="TimeGPT API: anomalies in the history")
async def anomaly_detection(body: TimeGPTRequest, repository: RepositoryDep) -> Response:
    """Every value with a full input window before it, against the one-step forecast made before it."""
    decode.refuse_unsupported(body)
    service = await decode.model_of(repository, body)
    level = decode.one_level(body.level)
    series = decode.series_inputs(body, service, future_h=None)
    # A series too short to score a single value is refused by name, not left out of the answer.
    cutoffs = [backtest.detection_cutoffs(s, len(s.values), None, 1, service.card.min_window) for s in series]
    return answers.answer(
        await answers.scored(service, series, cutoffs, 1, level, online=False), f"{service.name}@{service.version}"
    )


@router.post("/v2/online_anomaly_detection", summary="TimeGPT API: anomalies in the last values")
async def online_anomaly_detection(body: TimeGPTRequest, repository: RepositoryDep) -> Response:
    """The last `detection_size` values of each series, each against the latest forecast (of `h` steps, made
    every `step_size` values) made before it."""
    decode.refuse_unsupported(body)
    service = await decode.model_of(repository, body)
    if body.threshold_method not in (None, "univariate"):
        raise InvalidInput(
            f"threshold_method {body.threshold_method!r} is not available: gatecast scores each series on its "
            "own; use threshold_method='univariate'"
        )
    if body.detection_size is None:
        raise InvalidInput("detection_size is missing: how many of the last values to score")
    level = decode.one_level(body.level)
    h = service.horizon(body.h)
    step = body.step_size or h
    if step > h:
        raise InvalidInput(f"step_size {step} exceeds h {h}: values between forecasts would go unscored")
    series = decode.series_inputs(body, service, future_h=None)
    min_window = service.card.min_window
    cutoffs = [backtest.detection_cutoffs(s, len(s.values), body.detection_size, step, min_window) for s in series]
    return answers.answer(
        await answers.scored(service, series, cutoffs, h, level, online=True), f"{service.name}@{service.version}"
    )


@router.post("/v2/finetune", summary="TimeGPT API: fine-tune a model on your series")
async def finetune(body: FinetuneRequest, repository: RepositoryDep, trainer: TrainerDep, request: Request) -> Response:
    """Warm-starts from the model's checkpoint (or a fine-tuned model's), trains `finetune_steps` optimizer steps on
    windows of the series sent, recalibrates the intervals on their held-out tail, exports, validates and serves
    it; answers its id once this worker serves it."""
    if body.finetuned_model_id:
        base = await finetuning.finetuned(repository, body.finetuned_model_id)
    else:
        base = decode.resolve(repository, body.model)
    finetuning.check_settings(body.finetune_steps, body.finetune_loss, trainer.settings)
    finetuning.check_base(base, body.freq if body.series.start_datetime else None)
    if body.series.X or body.series.X_future or body.series.categorical_exog:
        raise InvalidInput("fine-tuning reads the target alone: send no covariate columns")
    output_id = body.output_model_id or f"ft-{uuid.uuid4().hex[:16]}"
    check_segment("output_model_id", output_id)
    if (repository.root / output_id).exists():
        raise Conflict(f"a model named {output_id!r} already exists: choose another output_model_id")
    series = decode.series_inputs(
        TimeGPTRequest(series=body.series, model=body.model, freq=body.freq), base, future_h=None
    )
    trainer.check_available()
    tuning = finetuning.Tuning(body.finetune_steps, body.finetune_depth, body.finetune_loss)
    asked_by = finetuning.created_by(dict(request.headers))
    made = await finetuning.run(trainer, repository, base, series, output_id, tuning, asked_by)
    return answers.answer({"finetuned_model_id": made.name})


@router.get("/v2/finetuned_models", summary="TimeGPT API: the fine-tuned models")
async def finetuned_models(repository: RepositoryDep) -> Response:
    await repository.sync()  # one made or deleted through another worker moments ago
    found = []
    for name in sorted(repository.models):
        described = answers.finetuned_model_info(repository.get(name))
        if described is not None:
            found.append(described)
    return answers.answer({"finetuned_models": found})


@router.get("/v2/finetuned_models/{model_id}", summary="TimeGPT API: one fine-tuned model")
async def finetuned_model(model_id: str, repository: RepositoryDep) -> Response:
    described = answers.finetuned_model_info(await finetuning.finetuned(repository, model_id))
    return answers.answer(described or {})


@router.delete("/v2/finetuned_models/{model_id}", status_code=204, summary="TimeGPT API: delete a fine-tuned model")
async def delete_finetuned_model(model_id: str, repository: RepositoryDep) -> Response:
    """Removed from the repository, then unloaded here; every worker refuses it once this call has answered."""
    service = await finetuning.finetuned(repository, model_id)
    repository.remove(service.name)
    await repository.sync()
    return Response(status_code=204)


async def _finetuned_on_history(
    body: TimeGPTRequest, base: ModelService, repository: ModelRepository, trainer: Trainer, request: Request
) -> ModelService:
    """forecast(finetune_steps=N): the model fine-tuned on this history, made once (app.finetuning.on_history)."""
    if body.finetune_depth not in (1, 2, 3, 4, 5):
        raise InvalidInput(f"finetune_depth {body.finetune_depth} is not one of 1, 2, 3, 4, 5")
    finetuning.check_settings(body.finetune_steps, body.finetune_loss, trainer.settings)
    finetuning.check_base(base, body.freq if body.series.start_datetime else None)
    series = decode.series_inputs(body, base, future_h=None)
    tuning = finetuning.Tuning(body.finetune_steps, body.finetune_depth, body.finetune_loss)
    keyed_by = f"{body.freq}".encode() + orjson.dumps(body.series.start_datetime)
    asked_by = finetuning.created_by(dict(request.headers))
    return await finetuning.on_history(trainer, repository, base, series, tuning, keyed_by, asked_by)
