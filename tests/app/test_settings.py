from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from app.errors import ModelLoadError
from app.runtime import CPU, CUDA, choose_providers
from app.settings import Settings, available_cpus


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATECAST_MAX_BATCH_SERIES", "64")
    monkeypatch.setenv("GATECAST_PROVIDER", "cpu")
    s = Settings()
    assert s.max_batch_series == 64 and s.provider == "cpu"


def test_bad_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATECAST_PROVIDER", "tpu")
    with pytest.raises(ValueError, match="provider"):
        Settings()


@pytest.mark.parametrize(("content", "expected"), [("150000 100000", 2), ("50000 100000", 1), ("max 100000", None)])
def test_cpu_quota_caps_the_thread_count(tmp_path: Path, content: str, expected: int | None) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(content + "\n")
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus(cpu_max) == (min(expected, affinity) if expected else affinity)


def test_threads_split_between_workers() -> None:
    assert Settings(workers=1, intra_op_threads=3).ort_threads() == 3
    assert Settings(workers=64).ort_threads() == 1


def test_provider_choice() -> None:
    assert choose_providers("auto", [CPU]) == [CPU]
    assert choose_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers("cpu", [CUDA, CPU]) == [CPU]
    with pytest.raises(ModelLoadError, match="onnxruntime-gpu"):
        choose_providers("cuda", [CPU])


def test_the_tests_do_not_see_the_callers_gatecast_settings() -> None:
    """tests/conftest.py removes them: a developer's GATECAST_MODEL_REPOSITORY or keys cannot steer a test. It sets
    two itself: no gRPC server in the apps built in the test process, and streams in a folder of the run."""
    left = {n: v for n, v in os.environ.items() if n.startswith("GATECAST_") and n != "GATECAST_DATA_DIR"}
    assert set(left) == {"GATECAST_GRPC_PORT", "GATECAST_STATE_DIR"} and left["GATECAST_GRPC_PORT"] == "0"
    assert Path(left["GATECAST_STATE_DIR"]).resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())


def test_one_worker_per_usable_cpu_by_default_each_with_one_onnxruntime_thread() -> None:
    s = Settings()
    assert s.workers == available_cpus()
    assert s.ort_threads() == 1
    assert Settings(workers=3).workers == 3
