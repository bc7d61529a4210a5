"""Ensembles in one graph, the validated naive blend, and log models: trained, exported, validated against
PyTorch in onnxruntime and served through the one model service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from contract.card import ModelCard
from tests.synthetic import tiny_config
from training.config import RunConfig
from training.data import Dataset, Series
from training.ensemble import Ensemble, fit_naive_weight, median
from training.model import Forecaster, ForecasterConfig
from training.pipeline import build_artifact
from training.train import l1_loss


def _config(name: str, **sections: dict[str, object]) -> RunConfig:
    raw = tiny_config(name).__dict__
    base = {
        "name": name,
        "dataset": "synthetic",
        "seed": 0,
        "model": raw["model"].to_dict(),
        "train": {"epochs": 2, "batch_size": 64, "train_stride": 4, "patience": 2},
        "evaluate": {"stride": 6, "stat_model": ""},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}  # type: ignore[dict-item]
    return RunConfig.from_dict(base)


def _seasonal(n: int = 900, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 50 + 10 * np.sin(2 * np.pi * t / 24) + np.cumsum(rng.normal(scale=0.3, size=n)) + rng.normal(size=n)
    return Dataset("seasonal", "y", "h", 24, [Series("s", values, 600, 750, n)])


def _walk(n: int = 900) -> Dataset:
    values = np.cumsum(np.random.default_rng(3).normal(size=n)) + 100
    return Dataset("walk", "y", "h", 24, [Series("w", values, 600, 750, n)])


def test_median_is_the_middle_member_or_the_mean_of_the_middle_two() -> None:
    stack = torch.tensor([[[1.0, 9.0]], [[3.0, 5.0]], [[2.0, 7.0]]])  # (N=3, B=1, H=2)
    assert median(stack).tolist() == [[2.0, 7.0]]
    assert median(stack[:2]).tolist() == [[2.0, 7.0]]  # (1+3)/2, (9+5)/2
    assert median(stack[:1]).tolist() == [[1.0, 9.0]]


def test_members_read_their_own_window() -> None:
    """A member trained on 48 steps reads the last 48 of a 96-step window, exactly as it does alone."""
    torch.manual_seed(0)
    short = Forecaster(
        ForecasterConfig(cell="gru", hidden_size=4, num_layers=1, input_window=48, min_window=30, horizon=6)
    )
    long = Forecaster(
        ForecasterConfig(cell="lstm", hidden_size=4, num_layers=1, input_window=96, min_window=40, horizon=6)
    )
    ens = Ensemble([short, long]).eval()
    x = torch.randn(3, 96).cumsum(1)
    with torch.no_grad():
        got = ens.member_forecasts(x)
        assert torch.allclose(got[0], short(x[:, -48:])[0]) and torch.allclose(got[1], long(x)[0])
        assert torch.allclose(ens(x)[0], (got[0] + got[1]) / 2)
    assert ens.config.input_window == 96 and ens.config.min_window == 40 and ens.cell == "mixed"


def test_fit_naive_weight_picks_naive_on_a_random_walk_and_nothing_when_the_model_is_right() -> None:
    rng = np.random.default_rng(0)
    actuals = rng.normal(size=(200, 4)).cumsum(1)
    naive = np.zeros_like(actuals)
    noisy = actuals + rng.normal(scale=5.0, size=actuals.shape)
    w, kind, _ = fit_naive_weight(noisy, {"naive": naive}, actuals, np.ones(200))
    assert w >= 0.5 and kind == "naive"
    w, _, tried = fit_naive_weight(actuals + 0.01, {"naive": naive}, actuals, np.ones(200))
    assert w == 0.0 and tried["model"] < tried["naive w=0.05"]


def test_an_ensemble_with_mixed_windows_and_cells_exports_as_one_graph_and_is_served(tmp_path: Path) -> None:
    config = _config("ens", ensemble={"members": 3, "input_windows": [48, 72], "cells": ["gru", "lstm"]})
    path = tmp_path / "models" / "ens" / "1" / "model.onnx"
    built = build_artifact(config, _seasonal(), path)  # validates the ONNX graph against PyTorch
    card: ModelCard = built["card"]
    assert card.cell == "mixed" and card.trained_window == 72 and card.schema == "5"
    assert [m["input_window"] for m in card.members] == [48, 72, 48]
    assert [m["cell"] for m in card.members] == ["gru", "lstm", "gru"]
    evaluation = built["evaluation"]
    assert evaluation["ensemble"]["naive_weight"] == 0.0  # no blend asked for
    curve = evaluation["ensemble"]["test_mase_by_members"]  # what each member buys: the last is the whole
    assert len(curve) == 3 and curve[-1] == pytest.approx(evaluation["scores"]["model"]["mase"], rel=1e-4)
    model: Ensemble = built["model"]
    x = _seasonal().series[0].values[-72:]
    with torch.no_grad():
        want = model(torch.tensor(x[None], dtype=torch.float32))[0].numpy()[0]
    with TestClient(create_app(Settings(model_repository=tmp_path / "models"))) as c:
        r = c.post("/forecast", json={"model": "ens", "series": [{"id": "a", "values": x.tolist()}]})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["forecasts"][0]["mean"], want, rtol=1e-4, atol=1e-3)
        shown = c.get("/models/ens").json()["versions"][0]
        assert shown["members"] == card.members
        short = c.post("/forecast", json={"model": "ens", "series": [{"id": "a", "values": x[:25].tolist()}]})
        assert short.status_code == 422 and "at least 30" in short.json()["message"]


def test_naive_blend_keeps_a_random_walk_model_level_with_naive(tmp_path: Path) -> None:
    """One epoch on a random walk loses to naive by 84% (tests/training/test_verdict.py); with the validated blend the
    exported graph is mostly naive and level with it on validation."""
    config = _config("walk", train={"epochs": 1}, ensemble={"naive_blend": True})
    built = build_artifact(config, _walk(), tmp_path / "models" / "walk" / "1" / "model.onnx")
    blend = built["evaluation"]["ensemble"]
    assert blend["naive_weight"] >= 0.5 and blend["naive_lag"] == 1
    mase = built["evaluation"]["validation"]["mase"]
    assert mase["model"] <= mase["naive"] * 1.02


def test_a_log_model_forecasts_positive_values_and_refuses_non_positive_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    t = np.arange(900)
    values = np.exp(3 + 1.5 * np.sin(2 * np.pi * t / 24) + rng.normal(scale=0.1, size=900))  # 3 to 90, daily
    dataset = Dataset("peaky", "y", "h", 24, [Series("p", values, 600, 750, 900)])
    config = _config("peaky", model={"transform": "log"})
    built = build_artifact(config, dataset, tmp_path / "models" / "peaky" / "1" / "model.onnx")
    assert built["card"].transform == "log"
    with TestClient(create_app(Settings(model_repository=tmp_path / "models"))) as c:
        ok = c.post("/forecast", json={"model": "peaky", "series": [{"id": "a", "values": values[-48:].tolist()}]})
        assert ok.status_code == 200 and min(ok.json()["forecasts"][0]["mean"]) > 0
        bad = values[-48:].copy()
        bad[40] = 0.0
        for body in (
            {"model": "peaky", "series": [{"id": "a", "values": bad.tolist()}]},
            {"model": "peaky", "series": [{"id": "a", "values": bad.tolist()}, {"id": "b", "values": bad.tolist()}]},
        ):
            r = c.post("/forecast", json=body)
            assert r.status_code == 422, r.text
            assert "value 40 is 0.0" in r.json()["message"] and "> 0" in r.json()["message"]
        assert c.get("/models/peaky").json()["versions"][0]["transform"] == "log"


def test_log_training_refuses_data_with_a_value_at_or_below_zero() -> None:
    dataset = _seasonal()
    dataset.series[0].values[10] = -1.0
    with pytest.raises(ValueError, match=r"series 's': value 10 is -1.0; \[model\] transform = \"log\""):
        build_artifact(_config("neg", model={"transform": "log"}), dataset, Path("/nonexistent/model.onnx"))


def test_members_trained_in_worker_processes_match_members_trained_in_turn() -> None:
    """[ensemble] workers only changes where members train: same seeds, same weights (up to float noise)."""
    from training.train import train

    dataset = _seasonal()
    x = torch.tensor(dataset.series[0].values[-48:][None], dtype=torch.float32)
    forecasts = []
    for workers in (1, 2):
        result = train(_config("w", ensemble={"members": 2, "workers": workers}), dataset, progress=False)
        assert len(result.members) == 2 and [len(m.history) for m in result.members] == [2, 2]
        with torch.no_grad():
            forecasts.append(result.model(x)[0].numpy())
    np.testing.assert_allclose(forecasts[0], forecasts[1], rtol=1e-4, atol=1e-4)


def test_an_ensemble_of_covariate_models_cuts_each_input_to_its_member(tmp_path: Path) -> None:
    """Past inputs cover a member's window, future and calendar inputs its window and horizon: the graph, checked
    against PyTorch at every probe length (build_artifact), and each member against itself alone."""
    from tests.synthetic import covariate_config, covariate_dataset

    config = covariate_config("covens")
    config.ensemble = type(config.ensemble)(members=2, input_windows=[48, 36])
    config.model = type(config.model)(**{**config.model.to_dict(), "min_window": 30})
    built = build_artifact(config, covariate_dataset(), tmp_path / "models" / "covens" / "1" / "model.onnx")
    model: Ensemble = built["model"]
    assert built["card"].members[1]["input_window"] == 36 and built["card"].covariates == config.model.covariates
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(2, 48)).cumsum(1) + 10, dtype=torch.float32)
    past = torch.tensor(rng.normal(size=(2, 48, 1)), dtype=torch.float32)
    future = torch.tensor(rng.normal(size=(2, 48 + 12, 1)), dtype=torch.float32)
    calendar = torch.tensor(rng.uniform(-1, 1, size=(2, 48 + 12, 4)), dtype=torch.float32)
    with torch.no_grad():
        both = model.member_forecasts(x, past, future, calendar)
        short = model.members[1]
        alone = short(x[:, -36:], past[:, -36:], future[:, -48:], calendar[:, -48:])[0]
    assert torch.allclose(both[1], alone)


def test_the_log_loss_is_the_mean_absolute_error_of_the_log_forecast() -> None:
    """[train] loss = "log": |log f - log y|, the relative error sMAPE counts, whatever the window's spread."""
    torch.manual_seed(0)
    model = Forecaster(
        ForecasterConfig(
            cell="gru", hidden_size=8, num_layers=1, input_window=48, min_window=24, horizon=6, transform="log"
        )
    ).eval()
    rng = np.random.default_rng(0)
    steady = 100 + rng.normal(size=(1, 54))
    swinging = np.exp(3 + 1.7 * np.sin(np.arange(54) * 2 * np.pi / 24))[None, :]  # 5 to 110 each day
    series = torch.tensor(np.concatenate([steady, swinging]), dtype=torch.float32)
    x, y = series[:, :48], series[:, 48:]
    with torch.no_grad():
        forecast, _ = model(x)
        expected = (forecast.log() - y.log()).abs().mean()
        torch.testing.assert_close(l1_loss(model, x, y, kind="log"), expected, rtol=1e-5, atol=1e-6)
        # The window loss divides each window's log error by its spread: the swinging one weighs far less.
        pred, loc, scale = model.forward_normalized(x)
        assert float(scale[1]) > 10 * float(scale[0])
        assert not torch.allclose(l1_loss(model, x, y), expected)


def test_the_log_loss_needs_a_log_model_and_an_unknown_loss_is_named() -> None:
    with pytest.raises(ValueError, match=r'\[train\] loss = "log" needs \[model\] transform = "log"'):
        _config("noloss", train={"loss": "log"})
    with pytest.raises(ValueError, match=r"\[train\] loss 'huber' is unknown; use one of \['window', 'log'\]"):
        _config("noloss", train={"loss": "huber"})
    assert _config("logloss", model={"transform": "log"}, train={"loss": "log"}).train.loss == "log"
