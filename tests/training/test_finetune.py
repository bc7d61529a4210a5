"""training.finetune's pieces: how much of the network each depth trains, the held-out tail, the checkpoints the
committed models keep, and a fine-tuning that cannot end with a higher held-out loss than the model it started
from."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.synthetic import seasonal_series

ROOT = Path(__file__).resolve().parents[2]
torch = pytest.importorskip("torch")


def test_depth_trains_groups_from_the_output_inwards() -> None:
    from training.finetune import freeze_to_depth, trainable_groups
    from training.model import Forecaster, ForecasterConfig

    model = Forecaster(ForecasterConfig(cell="gru", hidden_size=8, num_layers=2, input_window=48, horizon=12))
    groups = trainable_groups(model)
    assert len(groups) == 3  # the head, layer 1, layer 0
    head = sum(p.numel() for p in model.head.parameters())
    assert freeze_to_depth(model, 1) == head
    assert all(not p.requires_grad for p in model.rnn.parameters())
    assert freeze_to_depth(model, 3) == head + sum(p.numel() for n, p in model.rnn.named_parameters() if "_l1" in n)
    assert freeze_to_depth(model, 5) == sum(p.numel() for p in model.parameters())


def test_training_windows_end_before_the_held_out_tail() -> None:
    from training.finetune import holdout_windows

    values = np.arange(200, dtype=np.float64)
    train, tail, index = holdout_windows([values], window=48, horizon=12)
    assert len(tail) == round(0.2 * (200 - 12 - 48 + 1)) and set(index) == {0}
    first_held_origin = tail.x[0, -1] + 1  # the values are their positions
    assert np.all(train.y[:, -1] < first_held_origin)  # no training target reaches into the tail


def test_every_committed_model_keeps_the_checkpoint_it_was_exported_from() -> None:
    from training.export import weights_sha256
    from training.finetune import checkpoint_for
    from training.finetune_base import load_base
    from training.train import load_checkpoint

    for model_file in sorted((ROOT / "models").glob("*/*/model.onnx")):
        props = {p.key: p.value for p in onnx.load(str(model_file), load_external_data=False).metadata_props}
        if "gatecast.schema" not in props:
            continue
        checkpoint = checkpoint_for(model_file.parent, ROOT / "runs")
        if props.get("gatecast.quantile_levels", "[]") != "[]":  # a quantile head (training.patch_model)
            model = load_base(checkpoint)
        else:
            model, _ = load_checkpoint(checkpoint)
        assert weights_sha256(model) == props["gatecast.sha256"], model_file


def test_a_fine_tuning_never_ends_with_a_higher_held_out_loss_than_its_base(tmp_path: Path) -> None:
    from training.finetune import FinetuneSpec, finetune, read_card

    repo = tmp_path / "models"
    shutil.copytree(ROOT / "models" / "etth1-gru", repo / "etth1-gru")
    rng = np.random.default_rng(3)
    series = [200 + 40 * seasonal_series(600, seed=3) + rng.normal(0, 30, 600).cumsum()]  # unlike ETTh1
    spec = FinetuneSpec(repo / "etth1-gru" / "1", "tuned", series, steps=30, depth=5, loss="default")
    made = finetune(spec, repo, runs_dir=ROOT / "runs")
    assert made["heldout_loss_after"] <= made["heldout_loss_before"]  # the kept weights; step 0 is the base's
    assert made["best_step"] % 10 == 0 and 0 <= made["best_step"] <= 30
    card = read_card(repo / "tuned" / "1" / "model.onnx")
    assert card.extra["finetune.base_model"] == "etth1-gru" and card.metrics["finetune"]["steps"] == 30
    assert (repo / "tuned" / "1" / "checkpoint.pt").exists() and not (repo / ".staging" / "tuned").exists()


def test_the_base_model_fine_tunes_its_quantile_head_and_never_ends_worse_on_its_tail(tmp_path: Path) -> None:
    from tests.build_fixtures import TINYQ
    from training.finetune import FinetuneError, FinetuneSpec, finetune, read_card

    repo = tmp_path / "models"
    shutil.copytree(TINYQ.parent.parent, repo / "tinyq")  # its checkpoint lies beside the model file
    rng = np.random.default_rng(5)
    series = [300 + 25 * seasonal_series(400, season=7, seed=5) + rng.normal(0, 5, 400).cumsum()]
    spec = FinetuneSpec(repo / "tinyq" / "1", "tuned-q", series, steps=20, depth=3, loss="default")
    made = finetune(spec, repo)
    assert made["heldout_loss_after"] <= made["heldout_loss_before"] and made["loss"] == "pinball"
    card = read_card(repo / "tuned-q" / "1" / "model.onnx")
    assert card.quantile_levels and card.extra["finetune.base_model"] == "tinyq"
    assert (repo / "tuned-q" / "1" / "checkpoint.pt").exists()
    with pytest.raises(FinetuneError, match="pinball"):
        finetune(FinetuneSpec(repo / "tinyq" / "1", "mae-q", series, steps=5, depth=1, loss="mae"), repo)


def test_a_spread_given_with_the_fine_tuning_is_inside_the_exported_graph(tmp_path: Path) -> None:
    import onnxruntime as ort

    from tests.build_fixtures import TINYQ
    from training.finetune import FinetuneSpec, finetune, read_card

    repo = tmp_path / "models"
    shutil.copytree(TINYQ.parent.parent, repo / "tinyq")
    series = [300 + 25 * seasonal_series(400, season=7, seed=6)]
    levels = read_card(TINYQ).quantile_levels
    factors = np.full((read_card(TINYQ).horizon, len(levels)), 2.0)
    factors[:, levels.index(0.5)] = 1.0
    for name, spread in (("plain", None), ("wide", factors)):  # no steps: both answer with the base's weights
        finetune(FinetuneSpec(repo / "tinyq" / "1", name, series, 0, 5, "default", spread=spread), repo)
    x = series[0][-96:].astype(np.float32)[None]
    plain, wide = (
        ort.InferenceSession(str(repo / n / "1" / "model.onnx")).run(["forecast", "quantiles"], {"values": x})
        for n in ("plain", "wide")
    )
    np.testing.assert_allclose(wide[0], plain[0], rtol=1e-6)  # the median is the model's
    median = plain[0][..., None]
    np.testing.assert_allclose(wide[1] - median, 2 * (plain[1] - median), rtol=1e-4, atol=1e-4)
    card = read_card(repo / "wide" / "1" / "model.onnx")
    assert (
        "quantile_spread" in card.extra
        and "quantile_spread" not in read_card(repo / "plain" / "1" / "model.onnx").extra
    )


def test_a_fine_tuning_scored_on_its_first_steps_has_no_targets_beyond_them() -> None:
    from training.finetune_base import batch
    from training.patch_model import PatchConfig

    cfg = PatchConfig(patch_len=4, max_context=32, min_context=8, horizon=12)
    series = [np.arange(100, dtype=np.float64)]
    picks = [(0, 40, 100), (0, 95, 100)]  # the second window's target runs past the end of the series
    _, whole = batch(series, picks, cfg)
    x, first = batch(series, picks, cfg, scored=3)
    assert np.isfinite(whole[0]).all() and np.isnan(whole[1, 5:]).all()
    np.testing.assert_array_equal(first[:, :3].numpy(), whole[:, :3].numpy())
    assert np.isnan(first[:, 3:]).all() and x[0, -1] == 39
