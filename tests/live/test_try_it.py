"""The README's "Try it" lines, run as they are written against `gatecast serve` on the committed models: every
command answers a forecast, none an error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.live import running_server

pytestmark = pytest.mark.slow  # live servers, or a network service

ROOT = Path(__file__).resolve().parents[2]


def try_it_block() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- try-it:.*?-->\n```bash\n(.*?)```\n<!-- end try-it -->", text, re.S)
    assert block, "the README's try-it block is missing"
    return block.group(1)


def test_the_readme_try_it_commands_answer_forecasts(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)  # the README's `.venv/bin/...`
    (tmp_path / "models").symlink_to(ROOT / "models")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECAST_")}
    with running_server(tmp_path / "models") as (url, _):
        script = try_it_block().replace("http://localhost:8000", url).replace("localhost:8000", url)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert '"error"' not in out, out
    assert out.count('"forecasts"') == 2, out  # the JSON examples
    assert '"backtest_mase"' in out, out  # "auto" says what each candidate scored
    assert out.count("unique_id,ds,forecast") == 2, out  # the two CSV examples, the covariate model's included
    assert "vix,2024-05-14," in out, out  # its forecast starts the business day after the last row (2024-05-13)
