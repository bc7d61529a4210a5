from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from tests.synthetic import seasonal_dataset, tiny_config
from training.model import Forecaster, ForecasterConfig
from training.train import train


def model(cell: str = "lstm", **kw: int) -> Forecaster:
    torch.manual_seed(0)
    return Forecaster(
        ForecasterConfig(cell=cell, hidden_size=8, num_layers=1, input_window=32, min_window=8, horizon=4, **kw)
    ).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_cell_chosen_by_name(cell: str) -> None:
    assert type(model(cell).rnn).__name__ == cell.upper()


def test_unknown_cell_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="cell 'tcn' is unknown"):
        ForecasterConfig(cell="tcn")


def test_forecast_shapes_and_dynamic_length() -> None:
    m = model()
    for t in (8, 32, 100):
        f, s = m(torch.randn(3, t))
        assert f.shape == (3, 4) and s.shape == (3,)


def test_forecast_is_affine_equivariant() -> None:
    """Normalisation inside forward: forecast(a*x + b) == a*forecast(x) + b (a > 0), raw units in and out."""
    m = model()
    x = torch.randn(2, 32).cumsum(1)
    f, s = m(x)
    f2, s2 = m(1000 * x + 5e4)
    torch.testing.assert_close(f2, 1000 * f + 5e4, rtol=1e-4, atol=1e-1)
    torch.testing.assert_close(s2, 1000 * s, rtol=1e-4, atol=1e-6)


def test_constant_window_gives_a_finite_flat_forecast() -> None:
    f, s = model()(torch.full((1, 32), 7.5))
    assert torch.isfinite(f).all() and torch.isfinite(s).all()
    torch.testing.assert_close(f, torch.full_like(f, 7.5), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("magnitude", [1e30, -1e30, 1e-30])
def test_huge_and_tiny_magnitudes_do_not_overflow(magnitude: float) -> None:
    x = magnitude * (1 + 0.1 * torch.randn(2, 32))
    f, s = model()(x)
    assert torch.isfinite(f).all() and torch.isfinite(s).all() and (s > 0).all()


def test_interval_scale_is_mean_absolute_lagged_difference() -> None:
    m = model(interval_lag=2)
    x = torch.tensor([[1.0, 2.0, 4.0, 7.0, 11.0, 16.0, 22.0, 29.0]])
    expected = np.mean(np.abs(x.numpy()[0, 2:] - x.numpy()[0, :-2]))
    assert float(m.interval_scale(x)[0]) == pytest.approx(expected, rel=1e-5)


def test_same_seed_same_weights() -> None:
    config, dataset = tiny_config(epochs=1), seasonal_dataset(600)
    a = train(config, dataset, progress=False).model.state_dict()
    b = train(config, dataset, progress=False).model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_training_gives_the_process_its_ieee_floats_back() -> None:
    """Training flushes denormals to zero for speed; a flag left set would change every float computed later in
    the process (hypothesis refuses to generate floats then)."""
    train(tiny_config(epochs=1), seasonal_dataset(600), progress=False)
    tiny = sys.float_info.min
    assert tiny / 2 > 0
    assert float(torch.tensor(tiny / 2, dtype=torch.float64) * 1) > 0


def test_early_stopping_keeps_the_best_epoch() -> None:
    config = tiny_config(epochs=6)
    result = train(config, seasonal_dataset(600), progress=False)
    best = min(h["val_loss"] for h in result.history)
    assert result.best_val_loss == best
    assert result.history[result.best_epoch - 1]["val_loss"] == best


def test_seasonal_skip_starts_from_seasonal_naive() -> None:
    torch.manual_seed(0)
    m = Forecaster(
        ForecasterConfig(
            cell="gru", hidden_size=8, num_layers=1, input_window=32, min_window=8, horizon=6, seasonal_skip=4
        )
    ).eval()
    torch.nn.init.zeros_(m.head.weight)
    torch.nn.init.zeros_(m.head.bias)
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0] * 8])
    f, _ = m(x)
    torch.testing.assert_close(f, torch.tensor([[1.0, 2.0, 3.0, 4.0, 1.0, 2.0]]), rtol=1e-5, atol=1e-5)


def test_seasonal_skip_exports_with_parity(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from training.export import export_onnx, validate

    torch.manual_seed(0)
    m = Forecaster(
        ForecasterConfig(
            cell="gru", hidden_size=8, num_layers=1, input_window=48, min_window=24, horizon=30, seasonal_skip=24
        )
    ).eval()
    export_onnx(m, tmp_path / "m.onnx")
    assert validate(m, tmp_path / "m.onnx") > 0


def test_patches_are_the_last_whole_segments_in_time_order() -> None:
    m = Forecaster(ForecasterConfig(cell="gru", hidden_size=4, input_window=10, min_window=6, horizon=2, patch_len=3))
    steps = torch.arange(2 * 10 * 2, dtype=torch.float32).reshape(2, 10, 2)  # (B, T, K)
    segments = m._segments(steps)
    assert segments.shape == (2, 3, 6)
    # the oldest step (10 % 3 = 1) is left out; each segment holds its 3 steps' channels in time order
    for b in range(2):
        for j in range(3):
            torch.testing.assert_close(segments[b, j], steps[b, 1 + 3 * j : 4 + 3 * j].flatten())


def test_patch_len_must_fit_the_shortest_window() -> None:
    with pytest.raises(ValueError, match="patch_len 24 must be in"):
        ForecasterConfig(input_window=48, min_window=12, horizon=6, patch_len=24)


def test_patched_model_exports_with_parity_at_lengths_that_are_not_multiples(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The graph cuts T % patch_len steps off a dynamic time axis: checked against PyTorch at every probe
    length (contract.windows) and at lengths that leave 1 and patch_len - 1 steps over."""
    import onnxruntime as ort

    from training.export import export_onnx, validate

    torch.manual_seed(0)
    config = ForecasterConfig(
        cell="gru", hidden_size=8, input_window=48, min_window=12, horizon=6, seasonal_skip=12, patch_len=12
    )
    m = Forecaster(config).eval()
    export_onnx(m, tmp_path / "m.onnx")
    assert validate(m, tmp_path / "m.onnx") > 0
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    rng = np.random.default_rng(0)
    for length in (12, 13, 23, 47, 48):
        x = rng.normal(size=(3, length)).astype(np.float32)
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        want = m(torch.from_numpy(x))[0].detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_patched_model_with_covariates_exports_with_parity(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each segment carries its steps' covariate channels too: past, future and calendar, checked against
    PyTorch at the contract's probe lengths and batch sizes (export.validate)."""
    from training.export import export_onnx, validate

    torch.manual_seed(0)
    config = ForecasterConfig(
        cell="lstm",
        hidden_size=8,
        input_window=48,
        min_window=12,
        horizon=6,
        patch_len=12,
        past_covariates=["load"],
        future_covariates=["plan"],
        calendar=["hour_of_day"],
    )
    m = Forecaster(config).eval()
    assert m.rnn.input_size == 12 * (1 + 1 + 1 + 2)
    export_onnx(m, tmp_path / "m.onnx")
    assert validate(m, tmp_path / "m.onnx") > 0
