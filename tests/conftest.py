from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.build_fixtures import TINY, TINYCOV

# Tests state their settings themselves: a developer's own GATECAST_* variables (a model folder, keys, limits)
# must not change what they check, in-process or in the servers they start. The data folder stays: data tests
# read it from there, and skip without it.
for _name in [n for n in os.environ if n.startswith("GATECAST_") and n != "GATECAST_DATA_DIR"]:
    del os.environ[_name]
# No gRPC server in the apps tests build in this process (tests/app/protocols/oip/test_grpc_server.py starts real
# servers for it): its generated messages would clash with tritonclient's, which tests import.
os.environ["GATECAST_GRPC_PORT"] = "0"
# Streams of in-process apps go to a folder of this run, never to the checkout's state/.
os.environ["GATECAST_STATE_DIR"] = tempfile.mkdtemp(prefix="gatecast-state-")

ROOT = Path(__file__).resolve().parent.parent
COMMITTED_MODELS = ROOT / "models"
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def _imports_training(path: Path) -> bool:
    return re.search(r"^(from|import) (training|torch|bench)\b", path.read_text(), re.MULTILINE) is not None


# A serving install (no train extra) runs the server tests; the modules that train or read with training's code are
# not collected, and the header says which.
collect_ignore = (
    [] if HAVE_TORCH else sorted(p.name for p in ROOT.joinpath("tests").glob("test_*.py") if _imports_training(p))
)


def pytest_report_header() -> str | None:
    if HAVE_TORCH:
        return None
    names = ", ".join(collect_ignore)
    return f"torch not installed (the train extra): {len(collect_ignore)} training test modules not collected: {names}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    try:
        from training.data import data_dir
    except ImportError as exc:  # a serving install: the data tests read the sets with training's loaders
        reason = f"the data tests need the train extra (pip install -e '.[train,dev]'): {exc}"
    else:
        have_data = (data_dir() / "ett" / "ETTh1.csv").exists()
        reason = "" if have_data else f"real datasets not found in {data_dir()} (GATECAST_DATA_DIR)"
    for item in items:
        if "data" in item.keywords and reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GRU trained for two epochs on a synthetic series (tests/build_fixtures.py), in a folder of its own:
    tiny/1/model.onnx."""
    path = tmp_path_factory.mktemp("tiny-repo") / "tiny" / "1" / "model.onnx"
    path.parent.mkdir(parents=True)
    shutil.copy(TINY, path)
    return path


@pytest.fixture(scope="session")
def covariate_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GRU with a past covariate `load`, a future covariate `plan` and the hour and weekday
    (tests/build_fixtures.py): tinycov/1/model.onnx."""
    path = tmp_path_factory.mktemp("tinycov-repo") / "tinycov" / "1" / "model.onnx"
    path.parent.mkdir(parents=True)
    shutil.copy(TINYCOV, path)
    return path


@pytest.fixture
def repository(tmp_path: Path, tiny_artifact: Path) -> Path:
    """A fresh model repository holding the tiny model (version 1)."""
    repo = tmp_path / "models"
    (repo / "tiny" / "1").mkdir(parents=True)
    shutil.copy(tiny_artifact, repo / "tiny" / "1" / "model.onnx")
    return repo
