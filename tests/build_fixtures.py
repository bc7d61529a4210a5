"""The two small models the server tests serve, committed under tests/fixtures/models so those tests need no
torch and no training at session start. Rebuild them after a change to what the pipeline exports:

    .venv/bin/python -m tests.build_fixtures

tests/training/test_export.py rebuilds them and fails when the committed card no longer matches what the pipeline
writes.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "models"
TINY = FIXTURES / "tiny" / "1" / "model.onnx"
TINYCOV = FIXTURES / "tinycov" / "1" / "model.onnx"
TINYQ = FIXTURES / "tinyq" / "1" / "model.onnx"


def build(root: Path = FIXTURES) -> dict[str, Path]:
    """tiny: a GRU trained for two epochs on a synthetic daily-seasonal series; tinycov: the same with a past
    covariate `load`, a future covariate `plan` and the hour and weekday; tinyq: a small base model (patches, a
    quantile head, any frequency) pretrained briefly on synthetic series."""
    from tests.synthetic import covariate_config, covariate_dataset, seasonal_dataset, tiny_config
    from training.pipeline import build_artifact

    paths = {
        "tiny": root / "tiny" / "1" / "model.onnx",
        "tinycov": root / "tinycov" / "1" / "model.onnx",
        "tinyq": root / "tinyq" / "1" / "model.onnx",
    }
    build_artifact(tiny_config(), seasonal_dataset(), paths["tiny"])
    build_artifact(covariate_config(), covariate_dataset(), paths["tinycov"])
    build_tinyq(paths["tinyq"])
    return paths


def tinyq_config():  # type: ignore[no-untyped-def]
    from training.patch_model import PatchConfig
    from training.pretrain import PretrainConfig

    model = PatchConfig(
        patch_len=8, max_context=96, min_context=16, embed_size=16, hidden_size=24, num_layers=1, horizon=48
    )
    return PretrainConfig(name="tinyq", steps=300, batch_size=32, warmup=30, eval_every=100, threads=1, model=model)


def build_tinyq(path: Path) -> None:
    from tests.synthetic import seasonal_series
    from training.finetune_base import save_base
    from training.pretrain import export_artifact, fit
    from training.synthetic import generate

    cfg = tinyq_config()
    series = [s.values for s in generate(120, seed=7)] + [
        seasonal_series(600, seed=i).astype("float32") for i in range(8)
    ]
    held_out = [seasonal_series(400, seed=100 + i).astype("float32") for i in range(6)]
    model, report = fit(cfg, series, [], held_out, say=lambda line: None)
    path.parent.mkdir(parents=True, exist_ok=True)
    export_artifact(model, cfg, report, held_out, path)
    save_base(model, path.parent / "checkpoint.pt")  # fine-tuning warm-starts from it (training.finetune)


if __name__ == "__main__":
    for name, path in build().items():
        print(f"{name}: {path} ({path.stat().st_size:,} bytes)")
