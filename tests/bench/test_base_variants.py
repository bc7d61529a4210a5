"""bench.base_variants: base-model variants scored on validation without training (the mean of members'
quantiles, a longer context), built from the committed tinyq fixture's checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from bench.base_variants import QuantileMean, load, main
from tests.build_fixtures import TINYQ
from training.patch_model import PatchConfig, PatchForecaster

CHECKPOINT = TINYQ.parent / "checkpoint.pt"


def run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["quantiles"], {"values": x})[0]


def card(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_the_mean_of_members_averages_their_quantiles_level_by_level_and_stays_monotone() -> None:
    first = load(CHECKPOINT)
    torch.manual_seed(3)
    second = PatchForecaster(first.config).eval()  # untrained: answers differently
    x = torch.randn(5, 80).cumsum(1) + 50
    x[1, :30] = float("nan")
    with torch.no_grad():
        forecast, scale, q = QuantileMean([first, second])(x)
        a, b = first(x), second(x)
    assert torch.allclose(q, (a[2] + b[2]) / 2, atol=1e-6)
    assert torch.allclose(forecast, (a[0] + b[0]) / 2, atol=1e-6)
    assert torch.equal(scale, a[1])
    assert bool((q.diff(dim=-1) >= -1e-5).all())


def test_members_that_answer_different_horizons_are_refused() -> None:
    first = load(CHECKPOINT)
    other = PatchForecaster(PatchConfig(**{**first.config.to_dict(), "horizon": 24}))
    with pytest.raises(ValueError, match="must share"):
        QuantileMean([first, other])


def test_a_mean_of_one_checkpoint_twice_answers_as_the_exported_model_with_its_card(tmp_path: Path) -> None:
    out = tmp_path / "mean.onnx"
    main(["mean", str(out), "--card", str(TINYQ), str(CHECKPOINT), str(CHECKPOINT)])
    x = (np.random.default_rng(0).normal(size=(3, 96)).cumsum(1) + 20).astype(np.float32)
    assert np.allclose(run(out, x), run(TINYQ, x), atol=1e-4)
    assert card(out) == card(TINYQ)


def test_a_longer_context_variant_reads_further_back_and_its_card_says_so(tmp_path: Path) -> None:
    out = tmp_path / "long.onnx"
    main(["context", str(out), "--card", str(TINYQ), str(CHECKPOINT), "--max-context", "192"])
    assert json.loads(card(out)["gatecast.input_window"])["trained"] == 192
    x = (np.random.default_rng(1).normal(size=(2, 192)).cumsum(1) + 20).astype(np.float32)
    changed = x.copy()
    changed[:, :96] += 50.0  # only values the fixture (96) never reads
    assert np.allclose(run(TINYQ, x), run(TINYQ, changed), atol=1e-5)
    assert not np.allclose(run(out, x), run(out, changed), atol=1e-3)


def test_context_needs_one_checkpoint_and_a_length() -> None:
    with pytest.raises(SystemExit):
        main(["context", "out.onnx", "--card", str(TINYQ), str(CHECKPOINT)])
