"""GET /models and /models/{name}: what is loaded, with each version's metadata and provider."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import RepositoryDep
from app.protocols.rest.schemas import ErrorBody, ModelInfo, ModelVersionInfo
from app.registry import version_key
from app.service import ModelService

router = APIRouter(tags=["models"], responses={code: {"model": ErrorBody} for code in (401, 404)})


def version_info(loaded: ModelService) -> ModelVersionInfo:
    card = loaded.card
    return ModelVersionInfo(
        version=loaded.version,
        cell=card.cell,
        input_window=card.input_window,
        horizon=card.horizon,
        freq=card.freq,
        season=card.season,
        target=card.target,
        dataset=card.dataset,
        provider=loaded.runtime.provider,
        cpu_fallback_nodes=loaded.runtime.cpu_fallback_nodes,
        interval_levels=[round(level * 100, 2) for level in card.conformal.levels],
        covariates=card.covariates.to_json(),
        metrics=card.metrics,
        validation=card.metrics.get("validation"),
        transform=card.transform,
        members=card.members,
        trained_at=card.trained_at,
        sha256=card.sha256,
    )


def model_info(repository: RepositoryDep, name: str) -> ModelInfo:
    default = repository.get(name)
    versions = sorted(repository.models[name].values(), key=lambda m: version_key(m.version))
    return ModelInfo(name=name, default_version=default.version, versions=[version_info(v) for v in versions])


@router.get("/models", response_model=dict[str, object])
async def list_models(repository: RepositoryDep) -> dict[str, object]:
    """Loaded models, the default one, and files refused at load (with the reason)."""
    return {
        "default": repository.default_name(),
        "models": [model_info(repository, name) for name in sorted(repository.models)],
        "failed": repository.failures,
    }


@router.get("/models/{name}", response_model=ModelInfo, responses={404: {"model": ErrorBody}})
async def get_model(name: str, repository: RepositoryDep) -> ModelInfo:
    return model_info(repository, name)
