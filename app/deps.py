"""Dependencies as Annotated aliases: the model repository and the settings, from app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.registry import ModelRepository
from app.settings import Settings
from app.trainer_client import Trainer


# async: FastAPI runs plain-def dependencies in a thread pool, two thread hops per request for nothing.
async def get_repository(request: Request) -> ModelRepository:
    repository: ModelRepository = request.app.state.repository
    return repository


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_trainer(request: Request) -> Trainer:
    trainer: Trainer = request.app.state.trainer
    return trainer


RepositoryDep = Annotated[ModelRepository, Depends(get_repository)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TrainerDep = Annotated[Trainer, Depends(get_trainer)]
