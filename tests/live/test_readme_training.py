"""The README's "Train through the service" examples, run as they are written: the nixtla client's fine-tuning and
a training job against a live server with training on, `gatecast tune`, and the same search on a Ray head started
as the README says (on another port)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.live import free_port, running_server
from tests.markers import needs_training

pytestmark = [pytest.mark.slow, needs_training]  # trainers run on Ray with the train extra
ROOT = Path(__file__).resolve().parents[2]


def block(name: str, language: str) -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- {name}:.*?-->\n```{language}\n(.*?)```\n<!-- end {name} -->", text, re.S)
    assert found, f"the README's {name} block is missing"
    return found.group(1)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out as the checkout: .venv, and copies of the committed model the examples fine-tune and of its
    run (the examples write models, runs and reports beside them, never into the checkout)."""
    folder = tmp_path_factory.mktemp("readme-training")
    (folder / ".venv").symlink_to(Path(sys.executable).parent.parent)
    shutil.copytree(ROOT / "models" / "etth1-gru", folder / "models" / "etth1-gru")
    shutil.copytree(ROOT / "runs" / "etth1-gru", folder / "runs" / "etth1-gru")
    return folder


def run(script: str, cwd: Path, shell: bool = True, timeout: float = 900, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GATECAST_", "RAY_"))} | env
    command = ["bash", "-euo", "pipefail", "-c", script] if shell else [sys.executable, "-c", script]
    done = subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_the_finetune_and_jobs_examples_work_as_written(checkout: Path) -> None:
    with running_server(checkout / "models", GATECAST_TRAINING="auto") as (url, _):
        out = run(block("finetune-example", "python").replace("http://localhost:8000", url), checkout, shell=False)
        assert "t2-gru" in out and "TimeGPT" in out and "etth1-gru" in out
        assert not (checkout / "models" / "t2-gru").exists()  # deleted at the end of the example
        out = run(block("jobs-example", "bash").replace("localhost:8000", url), checkout)
    assert '"state":"succeeded"' in out and '"model":"press"' in out, out
    assert "unique_id,ds,forecast" in out, out
    assert (checkout / "models" / "press" / "1" / "model.onnx").exists()


def test_the_tune_example_reports_and_exports(checkout: Path) -> None:
    if not (checkout / "press.toml").exists():
        pytest.skip("needs the jobs example's press.toml and press.csv (the test above)")
    run(block("tune-example", "bash"), checkout)
    assert (checkout / "reports" / "press.tune" / "tune.md").exists()
    assert (checkout / "models" / "press" / "1" / "model.onnx").exists()


def test_the_ray_example_tunes_on_a_head_started_as_written(checkout: Path) -> None:
    if not (checkout / "press.toml").exists():
        pytest.skip("needs the jobs example's press.toml and press.csv")
    port = str(free_port())
    script = block("ray-example", "bash").replace("6379", port)
    try:
        out = run(script, checkout)
    finally:
        ray = Path(sys.executable).parent / "ray"
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, timeout=120)
    assert "2 trials" in out, out
