"""The two small models the server tests serve, committed under tests/fixtures/models so those tests need no
torch and no training at session start. Rebuild them after a change to what the pipeline exports:

    .venv/bin/python -m tests.build_fixtures

tests/test_export.py rebuilds them and fails when the committed card no longer matches what the pipeline writes.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "models"
TINY = FIXTURES / "tiny" / "1" / "model.onnx"
TINYCOV = FIXTURES / "tinycov" / "1" / "model.onnx"


def build(root: Path = FIXTURES) -> dict[str, Path]:
    """tiny: a GRU trained for two epochs on a synthetic daily-seasonal series; tinycov: the same with a past
    covariate `load`, a future covariate `plan` and the hour and weekday."""
    from tests.synthetic import covariate_config, covariate_dataset, seasonal_dataset, tiny_config
    from training.pipeline import build_artifact

    paths = {"tiny": root / "tiny" / "1" / "model.onnx", "tinycov": root / "tinycov" / "1" / "model.onnx"}
    build_artifact(tiny_config(), seasonal_dataset(), paths["tiny"])
    build_artifact(covariate_config(), covariate_dataset(), paths["tinycov"])
    return paths


if __name__ == "__main__":
    for name, path in build().items():
        print(f"{name}: {path} ({path.stat().st_size:,} bytes)")
