from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from contract.card import Conformal, ModelCard
from tests.synthetic import seasonal_dataset, tiny_config
from training.conformal import calibrate, coverage, interval
from training.export import ExportValidationError, export_onnx, validate
from training.model import Forecaster, ForecasterConfig
from training.pipeline import build_artifact
from training.train import WindowSet


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_export_matches_pytorch_for_every_cell(cell: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = Forecaster(
        ForecasterConfig(cell=cell, hidden_size=16, num_layers=2, input_window=40, min_window=10, horizon=6)
    ).eval()
    path = tmp_path / "m.onnx"
    export_onnx(m, path)
    real = np.cumsum(np.random.default_rng(0).normal(size=(20, 80)), axis=1)
    assert validate(m, path, WindowSet(real.astype(np.float32), np.zeros((20, 6), np.float32))) >= 20


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_export_with_every_covariate_role_matches_pytorch(cell: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = ForecasterConfig(
        cell=cell,
        hidden_size=16,
        num_layers=2,
        input_window=40,
        min_window=10,
        horizon=6,
        past_covariates=["a", "b"],
        future_covariates=["plan"],
        calendar=["hour_of_day", "day_of_week"],
    )
    m = Forecaster(config).eval()
    path = tmp_path / "m.onnx"
    export_onnx(m, path)
    names = [i.name for i in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()]
    assert names == ["values", "past_covariates", "future_covariates", "calendar"]
    assert validate(m, path) >= 20  # every probe length and batch size, each role with its declared shape


def test_gru_is_exported_with_linear_before_reset(tmp_path: Path) -> None:
    m = Forecaster(ForecasterConfig(cell="gru", hidden_size=8, num_layers=1, input_window=16, min_window=8, horizon=2))
    export_onnx(m, tmp_path / "g.onnx")
    graph = onnx.load(str(tmp_path / "g.onnx")).graph
    flags = [a.i for n in graph.node if n.op_type == "GRU" for a in n.attribute if a.name == "linear_before_reset"]
    assert flags == [1]


def test_validation_lists_every_mismatch(tmp_path: Path) -> None:
    """The known trap: a GRU written with linear_before_reset=0 gives silently wrong numbers."""
    torch.manual_seed(0)
    m = Forecaster(ForecasterConfig(cell="gru", hidden_size=8, num_layers=1, input_window=16, min_window=8, horizon=2))
    path = tmp_path / "g.onnx"
    export_onnx(m, path)
    proto = onnx.load(str(path))
    for node in proto.graph.node:
        for attr in node.attribute:
            if node.op_type == "GRU" and attr.name == "linear_before_reset":
                attr.i = 0
    onnx.save(proto, str(path))
    with pytest.raises(ExportValidationError) as info:
        validate(m, path)
    assert len(info.value.mismatches) > 1  # all reported at once, not just the first
    assert all("forecast" in line for line in info.value.mismatches)


def test_end_to_end_train_export_and_run(tmp_path: Path) -> None:
    """Train on a synthetic series, export with metadata, run the file in onnxruntime: seconds, no real data."""
    dataset = seasonal_dataset()
    path = tmp_path / "tiny" / "1" / "model.onnx"
    out = build_artifact(tiny_config(epochs=3), dataset, path)
    assert path.stat().st_size < 2_000_000
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    card = ModelCard.from_props(dict(session.get_modelmeta().custom_metadata_map))
    assert card.name == "tiny" and card.cell == "gru" and card.horizon == 12
    assert card.sha256 and card.versions["opset"] == "17"
    scores = card.metrics["scores"]
    assert {"model", "naive", "seasonal_naive"} <= set(scores)
    # even after three epochs the network beats the naive forecast on a clean seasonal series
    assert scores["model"]["mase"] < scores["naive"]["mase"]
    x = dataset.series[0].values[-48:].astype(np.float32)[None, :]
    forecast, scale = session.run(None, {"values": x})
    with torch.no_grad():
        want, _ = out["model"](torch.from_numpy(x))
    np.testing.assert_allclose(forecast, want.numpy(), rtol=1e-4, atol=1e-4)
    assert scale.shape == (1,) and scale[0] > 0


def test_conformal_quantiles_give_nominal_coverage_on_exchangeable_data() -> None:
    rng = np.random.default_rng(0)
    actual = rng.normal(size=(4000, 3))
    forecasts = np.zeros_like(actual)
    scales = np.ones(4000)
    windows = rng.normal(size=(4000, 24))
    cal = calibrate(actual[:2000], forecasts[:2000], scales[:2000], windows[:2000])
    for level in (0.8, 0.95):
        lo, hi = interval(forecasts[2000:], scales[2000:], windows[2000:], cal, level)
        assert abs(coverage(actual[2000:], lo, hi) - level) < 0.02


def test_a_window_with_no_volatility_still_gets_intervals_as_wide_as_its_errors() -> None:
    """The issue's case: exactly periodic windows make the graph's scale (mean lagged difference) nearly 0 while
    the forecast is still off. The unit's floor, learned on calibration windows, keeps their width."""
    rng = np.random.default_rng(1)
    t = np.arange(48)
    n = 3000
    amplitude = rng.uniform(1, 5, size=(n, 1))
    periodic = rng.uniform(size=n) < 0.2  # a fifth of the windows repeat exactly; the rest are noisy
    windows = amplitude * np.sin(2 * np.pi * t / 24) + np.where(periodic[:, None], 0, rng.normal(size=(n, 48)))
    lagged = np.abs(windows[:, 24:] - windows[:, :-24]).mean(axis=1)
    scales = np.maximum(lagged, 1e-4 * np.abs(windows).max(axis=1))  # the graph's scale, with its own floor
    errors = rng.normal(scale=0.3 * amplitude[:, 0:1], size=(n, 4))  # errors in proportion to the amplitude
    forecasts = np.zeros((n, 4))
    cal = calibrate(errors[:2000], forecasts[:2000], scales[:2000], windows[:2000])
    assert cal.scale_floor > 0
    lo, hi = interval(forecasts[2000:], scales[2000:], windows[2000:], cal, 0.95)
    smooth = periodic[2000:]
    # The floor is a floor: the smooth windows are covered less than the others, but far from never.
    assert coverage(errors[2000:][smooth], lo[smooth], hi[smooth]) > 0.7
    assert abs(coverage(errors[2000:], lo, hi) - 0.95) < 0.03  # and the whole stays calibrated
    unfloored = Conformal(cal.levels, cal.quantiles, cal.calibration_windows)
    lo0, hi0 = interval(forecasts[2000:], scales[2000:], windows[2000:], unfloored, 0.95)
    assert coverage(errors[2000:][smooth], lo0[smooth], hi0[smooth]) < 0.1


def test_the_committed_test_models_are_what_the_pipeline_builds(tmp_path: Path) -> None:
    """The server tests serve tests/fixtures/models (no torch, no training at session start): rebuilt here, the
    card's contract (everything but what training measures and when) and the graph's signature must match the
    committed files, or the fixtures are stale: run `python -m tests.build_fixtures`."""
    from tests.build_fixtures import TINY, TINYCOV, TINYQ, build

    def contract(path: Path) -> tuple[dict[str, str], list[tuple[str, str]], list[str]]:
        model = onnx.load(str(path))
        props = {p.key: p.value for p in model.metadata_props}
        measured = ("gatecast.trained_at", "gatecast.sha256", "gatecast.metrics", "gatecast.conformal")
        card = {k: v for k, v in props.items() if k not in measured}
        inputs = [(i.name, str(i.type.tensor_type.shape)) for i in model.graph.input]
        return card, inputs, [o.name for o in model.graph.output]

    fresh = build(tmp_path)
    for committed, rebuilt in ((TINY, fresh["tiny"]), (TINYCOV, fresh["tinycov"]), (TINYQ, fresh["tinyq"])):
        assert contract(committed) == contract(rebuilt), f"{committed} is stale: run `python -m tests.build_fixtures`"
        ModelCard.from_props({p.key: p.value for p in onnx.load(str(committed)).metadata_props}).check()


def test_the_pytorch_reference_runs_on_one_thread_and_the_callers_count_comes_back(tmp_path: Path) -> None:
    """Sums in another order differ by ~1e-4 on a long window; the check must not depend on the caller's threads."""
    torch.manual_seed(0)
    m = Forecaster(ForecasterConfig(cell="gru", hidden_size=8, num_layers=1, input_window=16, min_window=8, horizon=2))
    path = tmp_path / "m.onnx"
    export_onnx(m, path)
    seen: list[int] = []
    m.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert validate(m.eval(), path) >= 10
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}
