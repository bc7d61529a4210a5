from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.synthetic import covariate_config, covariate_dataset, seasonal_dataset, tiny_config
from training.data import data_dir

# Tests state their settings themselves: a developer's own GATECAST_* variables (a model folder, keys, limits)
# must not change what they check, in-process or in the servers they start. The data folder stays: data tests
# read it from there, and skip without it.
for _name in [n for n in os.environ if n.startswith("GATECAST_") and n != "GATECAST_DATA_DIR"]:
    del os.environ[_name]
# No gRPC server in the apps tests build in this process (tests/test_grpc.py starts real servers for it): its
# generated messages would clash with tritonclient's, which tests import.
os.environ["GATECAST_GRPC_PORT"] = "0"
# Streams of in-process apps go to a folder of this run, never to the checkout's state/.
os.environ["GATECAST_STATE_DIR"] = tempfile.mkdtemp(prefix="gatecast-state-")

ROOT = Path(__file__).resolve().parent.parent
COMMITTED_MODELS = ROOT / "models"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    have_data = (data_dir() / "ett" / "ETTh1.csv").exists()
    for item in items:
        if "data" in item.keywords and not have_data:
            item.add_marker(pytest.mark.skip(reason=f"real datasets not found in {data_dir()} (GATECAST_DATA_DIR)"))


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GRU trained for two epochs on a synthetic series and exported: models/tiny/1/model.onnx."""
    from training.pipeline import build_artifact

    root = tmp_path_factory.mktemp("tiny-repo")
    path = root / "tiny" / "1" / "model.onnx"
    build_artifact(tiny_config(), seasonal_dataset(), path)
    return path


@pytest.fixture(scope="session")
def covariate_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GRU with a past covariate `load`, a future covariate `plan` and the hour and weekday:
    models/tinycov/1/model.onnx."""
    from training.pipeline import build_artifact

    root = tmp_path_factory.mktemp("tinycov-repo")
    path = root / "tinycov" / "1" / "model.onnx"
    build_artifact(covariate_config(), covariate_dataset(), path)
    return path


@pytest.fixture
def repository(tmp_path: Path, tiny_artifact: Path) -> Path:
    """A fresh model repository holding the tiny model (version 1)."""
    repo = tmp_path / "models"
    (repo / "tiny" / "1").mkdir(parents=True)
    shutil.copy(tiny_artifact, repo / "tiny" / "1" / "model.onnx")
    return repo
