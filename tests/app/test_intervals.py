"""The interval unit (contract.intervals): the graph's scale floored at a learned share of the window's spread,
written into the card by calibration and applied by the model service; older cards (no floor) unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from contract.card import PREFIX, Conformal, ContractError, ModelCard
from tests.contract.test_contract import card

ROOT = Path(__file__).resolve().parents[2]


def test_a_negative_or_non_finite_floor_is_refused_by_name() -> None:
    good = card()
    for bad in (-0.1, float("nan"), float("inf")):
        conformal = Conformal(good.conformal.levels, good.conformal.quantiles, 10, bad)
        props = {**good.to_props(), PREFIX + "conformal": json.dumps(conformal.__dict__)}
        with pytest.raises(ContractError, match="scale_floor"):
            ModelCard.from_props(props)


def _widths(repo: Path, model: str, window: list[float]) -> tuple[float, dict]:
    with TestClient(create_app(Settings(model_repository=repo))) as c:
        body = {"model": model, "level": [95], "series": [{"id": "w", "values": window}]}
        answer = c.post("/forecast", json=body).json()["forecasts"][0]
        version = c.get(f"/models/{model}").json()["versions"][0]
    return answer["intervals"]["95"]["hi"][0] - answer["mean"][0], version


def test_an_exactly_periodic_window_keeps_a_width(repository: Path) -> None:
    """The tiny model's interval scale is the window's mean |y[t] - y[t-24]|: 0 up to the graph's own 1e-4 floor
    for a window that repeats every 24 steps. The served width follows the learned floor instead."""
    t = np.arange(48)
    window = (50 + 8 * np.sin(2 * np.pi * t / 24)).round(6).tolist()
    half, _ = _widths(repository, "tiny", window)
    onnx = repository / "tiny" / "1" / "model.onnx"
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    graph_scale = float(session.run(None, {"values": np.asarray([window], dtype=np.float32)})[1][0])
    cal = ModelCard.from_props(dict(_props(onnx))).conformal
    spread = float(np.abs(np.asarray(window) - np.mean(window)).mean())
    assert cal.scale_floor > 0 and graph_scale < 1e-2 * spread
    q95 = cal.half_width_factors(0.95)[0]
    assert half == pytest.approx(q95 * cal.scale_floor * spread, rel=1e-4)  # the floor, not the graph's scale
    assert half > 100 * q95 * graph_scale


def test_cards_without_a_floor_serve_the_graphs_scale(tmp_path: Path) -> None:
    """A card calibrated before the floor existed (the committed model's, with its floor taken out)."""
    repo = tmp_path / "models"
    (repo / "vix-lstm" / "1").mkdir(parents=True)
    proto = onnx.load(str(ROOT / "models" / "vix-lstm" / "1" / "model.onnx"))
    for entry in proto.metadata_props:
        if entry.key == PREFIX + "conformal":
            conformal = json.loads(entry.value)
            del conformal["scale_floor"]
            entry.value = json.dumps(conformal)
    onnx.save(proto, str(repo / "vix-lstm" / "1" / "model.onnx"))
    window = (20 + np.cumsum(np.random.default_rng(0).normal(size=60))).round(3).tolist()
    half, _ = _widths(repo, "vix-lstm", window)
    path = repo / "vix-lstm" / "1" / "model.onnx"
    model_card = ModelCard.from_props(dict(_props(path)))
    cal = model_card.conformal
    assert cal.scale_floor == 0.0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.asarray([window[-model_card.trained_window :]])
    graph_scale = float(session.run(None, {"values": x.astype(np.float32)})[1][0])
    assert half == pytest.approx(cal.half_width_factors(0.95)[0] * graph_scale, rel=1e-4)


def _props(path: Path) -> list[tuple[str, str]]:
    return [(p.key, p.value) for p in onnx.load(str(path), load_external_data=False).metadata_props]
