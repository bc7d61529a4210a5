"""app.finetuning: what a fine-tuning is checked for before a job is made, and who asked, without the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import onnx
import pytest

from app import finetuning
from app.errors import InvalidInput
from app.settings import Settings
from contract.card import ModelCard

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def service(name: str, **card_changes: Any) -> Any:
    graph = onnx.load(str(FIXTURES / name / "1" / "model.onnx"), load_external_data=False)
    card = ModelCard.from_props({p.key: p.value for p in graph.metadata_props})
    return SimpleNamespace(name=name, card=dataclasses.replace(card, **card_changes))


def test_steps_and_loss_within_what_the_server_allows() -> None:
    settings = Settings(finetune_max_steps=50)
    finetuning.check_settings(50, "mae", settings)
    with pytest.raises(InvalidInput, match="exceeds 50 \\(GATECAST_FINETUNE_MAX_STEPS\\)"):
        finetuning.check_settings(51, "default", settings)
    with pytest.raises(InvalidInput, match="'poisson' is not a loss gatecast trains with"):
        finetuning.check_settings(5, "poisson", settings)


def test_the_base_must_read_no_covariates_and_forecast_at_the_series_frequency() -> None:
    finetuning.check_base(service("tiny"), "h")
    finetuning.check_base(service("tiny"), "60min")  # the same offset, spelled otherwise
    finetuning.check_base(service("tiny"), None)  # no timestamps sent: nothing to compare
    with pytest.raises(InvalidInput, match="the series' frequency is 'D', and tiny forecasts at 'h'"):
        finetuning.check_base(service("tiny"), "D")
    with pytest.raises(InvalidInput, match="fine-tuning takes a model without covariates"):
        finetuning.check_base(service("tinycov"), "h")


def test_who_asked_is_a_digest_of_the_key_never_the_key() -> None:
    asked_by = finetuning.created_by({"authorization": "Bearer secret-key"})
    assert asked_by.startswith("key ") and "secret" not in asked_by
    assert asked_by == finetuning.created_by({"x-api-key": "secret-key"})
    assert finetuning.created_by({}) == "anonymous"
