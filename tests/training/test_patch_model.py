"""The base model's network (training.patch_model): monotone quantiles, missing values and constant series, the
seasonal copy at its lags, and an export that agrees with PyTorch at every length, shorter than a lag included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.patch_model import PatchConfig, PatchForecaster
from training.pretrain import (
    MEAN_STEP_FLOOR,
    NAIVE_ERROR_FLOOR,
    best_copy_error,
    export,
    loss_of,
    mean_step,
    naive_error_by_step,
    validate_export,
)

SMALL = {
    "patch_len": 8,
    "max_context": 96,
    "min_context": 8,
    "embed_size": 16,
    "hidden_size": 24,
    "num_layers": 1,
    "horizon": 48,
}


def test_quantiles_ascend_and_a_constant_or_gappy_series_stays_finite() -> None:
    torch.manual_seed(0)
    model = PatchForecaster(PatchConfig(**SMALL, lags=[1, 24])).eval()
    x = torch.randn(4, 60).cumsum(1) * 100 + 5000
    x[1, :20] = float("nan")
    x[2] = 7.5
    with torch.no_grad():
        median, scale, q = model(x)
    assert torch.isfinite(q).all() and (q.diff(dim=-1) >= 0).all()
    assert torch.allclose(median, q[..., model.config.median_index])
    assert torch.allclose(q[2], torch.full_like(q[2], 7.5), atol=0.05)  # a constant is forecast as itself


def test_the_gate_copies_the_season_it_picks() -> None:
    model = PatchForecaster(PatchConfig(**SMALL, lags=[1, 24])).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.lag_gate.bias.copy_(torch.tensor([-50.0, 50.0, -50.0]))  # all weight on lag 24
    day = torch.sin(torch.arange(96) * 2 * torch.pi / 24) * 3 + 10
    with torch.no_grad():
        median, _, _ = model(day[None])
    expected = day[-24:].repeat(2)
    # the median is the copy plus the head's zero residual, in the series' units
    assert torch.allclose(median[0], expected, atol=1e-4)


def test_near_and_far_steps_copy_what_their_group_of_the_gate_picks() -> None:
    model = PatchForecaster(PatchConfig(**SMALL, lags=[1, 24], gate_edges=[6])).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        # steps 0-5 put all weight on lag 1 (the last value), from step 6 on, on lag 24
        model.lag_gate.bias.copy_(torch.tensor([50.0, -50.0, -50.0, -50.0, 50.0, -50.0]))
    day = torch.sin(torch.arange(96) * 2 * torch.pi / 24) * 3 + 10
    with torch.no_grad():
        median, _, _ = model(day[None])
    seasonal = day[-24:].repeat(2)
    assert torch.allclose(median[0, :6], day[-1].expand(6), atol=1e-4)
    assert torch.allclose(median[0, 6:], seasonal[6:], atol=1e-4)


def test_gate_edges_must_ascend_inside_the_horizon() -> None:
    for edges in ([6, 6], [12, 6], [0], [48]):
        with pytest.raises(ValueError, match="gate_edges"):
            PatchConfig(**SMALL, lags=[1, 24], gate_edges=edges)
    with pytest.raises(ValueError, match="gate_edges"):
        PatchConfig(**SMALL, gate_edges=[6])  # no lags: no gate to group


def test_the_folded_candidate_is_the_last_level_plus_the_mean_seasonal_shape() -> None:
    model = PatchForecaster(PatchConfig(**SMALL, lags=[1, 24], folds=3)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.lag_gate.bias.copy_(torch.tensor([-50.0, -50.0, 50.0, -50.0]))  # all weight on the folded lag 24
    rng = np.random.default_rng(0)
    shape = np.sin(np.arange(24) * 2 * np.pi / 24) * 3
    seasons = [shape + level + rng.normal(scale=0.5, size=24) for level in (0.0, 1.0, 2.0, 5.0)]  # levels shift
    series = np.concatenate(seasons).astype(np.float32)
    series[-30] = np.nan  # a missing value counts in no mean
    folds = [series[-72:-48], series[-48:-24], series[-24:]]  # the last three seasons
    level = np.nanmean(folds[-1])
    deviation = np.nanmean([season - np.nanmean(season) for season in folds], axis=0)
    expected = np.tile(level + deviation, 2)
    with torch.no_grad():
        median, _, _ = model(torch.from_numpy(series)[None])
    np.testing.assert_allclose(median[0].numpy(), expected, atol=1e-3)


def test_a_folded_lag_needs_two_whole_seasons() -> None:
    model = PatchForecaster(PatchConfig(**SMALL, lags=[1, 24], folds=3)).eval()
    z = torch.randn(2, 40)
    _, valid = model.folded(z, torch.ones_like(z))
    assert valid.tolist() == [[0.0], [0.0]]
    z = torch.randn(1, 48)
    _, valid = model.folded(z, torch.ones_like(z))
    assert valid.tolist() == [[1.0]]


def test_the_folds_read_history_beyond_the_encoders_window() -> None:
    torch.manual_seed(2)
    config = PatchConfig(**SMALL, lags=[1, 96], folds=3, fold_context=288)  # the encoder reads 96, the folds 288
    model = PatchForecaster(config).eval()
    with torch.no_grad():
        model.lag_gate.weight.zero_()
        model.lag_gate.bias.copy_(torch.tensor([-50.0, -50.0, 50.0, -50.0]))  # all weight on the folded lag 96
    x = torch.randn(1, 288).cumsum(1)
    with torch.no_grad():
        full = model(x)[0]
        older = x.clone()
        older[:, :48] += 5.0  # half of the third season back (its shape): only the folds see it
        moved = model(older)[0]
        short = model(x[:, -96:])[0]  # one season: the folded lag is invalid, the gate falls back
    assert not torch.allclose(full, moved)
    assert torch.isfinite(short).all()
    assert model.config.input_length == 288


def test_the_copy_features_tell_an_exact_season_from_a_near_one_and_need_two_seasons() -> None:
    model = PatchForecaster(PatchConfig(**SMALL, lags=[1, 12, 24], copy_features=True)).eval()
    rng = np.random.default_rng(3)
    season = np.tile(rng.normal(size=12), 8)  # 96 values repeating every 12 steps
    series = np.stack([season, season + rng.normal(scale=0.3, size=96), season]).astype(np.float32)
    series[2, :66] = np.nan  # 30 values: 18 pairs at lag 12 (counted), 6 at lag 24 (fewer than 24: not)
    x = torch.from_numpy(series)
    z, observed, _, _ = model.normalize(x)
    features = model.copy_errors(z, observed)  # log error per lag 1, 12, 24, then counted per lag
    assert features[0, 1] == pytest.approx(np.log(1e-3)) and features[0, 2] == pytest.approx(np.log(1e-3))
    assert features[1, 1] > np.log(0.05)  # a near copy is told apart from an exact one
    assert features[2, 3:].tolist() == [1.0, 1.0, 0.0] and features[2, 2] == 0.0
    assert features[2, 1] == pytest.approx(np.log(1e-3))
    with torch.no_grad():
        plain = PatchForecaster(PatchConfig(**SMALL, lags=[1, 12, 24])).eval()
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("copy_in")})
        model.copy_in.weight.zero_()
        model.copy_in.bias.zero_()
        assert torch.allclose(model(x)[2], plain(x)[2])  # the features enter only through copy_in
        model.copy_in.weight.fill_(0.1)
        assert not torch.allclose(model(x)[2], plain(x)[2])


def test_copy_features_need_lags() -> None:
    with pytest.raises(ValueError, match="copy_features"):
        PatchConfig(**SMALL, copy_features=True)


def test_the_export_agrees_with_pytorch_at_lengths_shorter_than_its_lags(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = PatchForecaster(
        PatchConfig(**SMALL, lags=[1, 12, 24, 96], folds=3, fold_context=240, gate_edges=[5, 20], copy_features=True)
    ).eval()
    path = tmp_path / "m.onnx"
    export(model, path)
    assert validate_export(model, path) > 20  # lengths 8 ... 136, with missing values, several batch sizes
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(2, 10)).cumsum(1).astype(np.float32)  # shorter than lags 12 ... 96
    got = session.run(["forecast"], {"values": x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_the_balanced_loss_divides_each_step_by_the_last_values_error_there() -> None:
    model = PatchForecaster(PatchConfig(**SMALL, lags=[1, 24]))
    rng = np.random.default_rng(0)
    walk = rng.normal(size=(8, 60 + 48)).cumsum(1).astype(np.float32)
    x, y = torch.from_numpy(walk[:, :60].copy()), torch.from_numpy(walk[:, 60:].copy())
    x[0, -5:] = float("nan")  # its last observed value is 5 steps back
    y[1, 10:] = float("nan")  # a short target counts only where it has values
    _, _, loc, scale = model.normalize(x)
    target = (y - loc) / scale
    per_step = naive_error_by_step(x, target, loc, scale)[0].numpy()
    last = np.array([walk[0, 54]] + list(walk[1:, 59]))[:, None]
    z_last = (last - loc.numpy()) / scale.numpy()
    errors = np.abs(target.numpy() - z_last)
    expected = np.nanmean(errors, axis=0)
    assert np.allclose(per_step, np.maximum(expected, NAIVE_ERROR_FLOOR), atol=1e-5)
    # a constant continued exactly (0 on the normalised scale): every step gets the floor, not a division by 0
    flat = naive_error_by_step(
        torch.full((2, 60), 3.0), torch.zeros((2, 48)), torch.full((2, 1), 3.0), torch.ones((2, 1))
    )
    assert torch.equal(flat[0], torch.full((48,), NAIVE_ERROR_FLOOR))
    levels = torch.tensor(model.config.quantile_levels)
    assert torch.isfinite(loss_of(model, x, y, levels, balance=True))


def test_the_naive_scaled_loss_divides_each_series_by_its_mean_step() -> None:
    x = torch.tensor([[0.0, 1.0, float("nan"), 3.0, 5.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    loc, scale = torch.tensor([[1.0], [2.0]]), torch.tensor([[2.0], [1.0]])
    # the first: steps 1 and 2 between observed pairs, halved by its scale; the second is flat: the floor
    assert torch.allclose(mean_step(x, loc, scale), torch.tensor([[0.75], [MEAN_STEP_FLOOR]]))
    model = PatchForecaster(PatchConfig(**SMALL, lags=[1, 24]))
    rng = np.random.default_rng(1)
    smooth = np.sin(np.arange(108) / 6.0)[None] + rng.normal(scale=0.01, size=(1, 108))
    rough = rng.normal(size=(1, 108))
    series = torch.from_numpy(np.concatenate([smooth, rough]).astype(np.float32))
    levels = torch.tensor(model.config.quantile_levels)
    x, y = series[:, :60], series[:, 60:]
    with torch.no_grad():
        each = torch.tensor([float(loss_of(model, x[i : i + 1], y[i : i + 1], levels)) for i in range(2)])
        _, _, loc, scale = model.normalize(x)
        steps = mean_step(x, loc, scale)[:, 0]
        scaled = float(loss_of(model, x, y, levels, naive_scaled=True))
    assert steps[0] < steps[1] / 4  # the smooth series' steps are small: its loss weighs more
    assert scaled == pytest.approx(float((each / steps).sum() / (1 / steps).sum()), rel=1e-5)


def test_the_best_copy_scale_is_the_error_of_the_closest_seasonal_copy_with_two_whole_seasons() -> None:
    t = np.arange(96)
    rng = np.random.default_rng(2)
    daily = np.tile(rng.normal(size=12), 8) + rng.normal(scale=0.01, size=96)  # repeats every 12 steps
    walk = np.cumsum(rng.normal(size=96))
    x = torch.tensor(np.stack([daily, walk, np.sin(2 * np.pi * t / 24)]), dtype=torch.float32)
    x[2, :60] = float("nan")  # 36 values: lag 24, exact here, has 12 pairs, fewer than 24, and does not count
    loc = torch.nanmean(x, dim=1, keepdim=True)
    scale = torch.tensor([[1.0], [10.0], [0.2]])
    steps = mean_step(x, loc, scale)
    best = best_copy_error(x, loc, scale, [12, 24, 48])
    assert float(best[0]) == pytest.approx(MEAN_STEP_FLOOR)  # the copy 12 steps back is all but exact: the floor
    assert float(steps[0]) > 5 * MEAN_STEP_FLOOR
    assert float(best[1]) == pytest.approx(float(steps[1]))  # a walk repeats no season: its last value is best
    assert float(best[2]) == pytest.approx(float(steps[2]))
    x[2, 36:60] = torch.from_numpy(np.sin(2 * np.pi * t[36:60] / 24)).float()  # now 60 values: lag 24 counts
    assert float(best_copy_error(x, loc, scale, [12, 24, 48])[2]) == pytest.approx(MEAN_STEP_FLOOR)
    assert torch.all(best <= steps)


def test_fold_lags_pick_which_lags_are_folded_and_must_be_lags_of_two_or_longer() -> None:
    assert PatchConfig(**SMALL, lags=[1, 7, 24], folds=3).folded_lags == [7, 24]
    config = PatchConfig(**SMALL, lags=[1, 7, 24], folds=3, fold_lags=[24])
    assert config.folded_lags == [24]
    model = PatchForecaster(config).eval()
    assert model.candidates == len(config.lags) + 1 + 1  # each lag, one folded lag, "copy nothing"
    for bad in ({"fold_lags": [1]}, {"fold_lags": [12]}, {"fold_lags": [24], "folds": 0}):
        with pytest.raises(ValueError, match="fold_lags"):
            PatchConfig(**SMALL, **{"lags": [1, 7, 24], "folds": 3, **bad})
