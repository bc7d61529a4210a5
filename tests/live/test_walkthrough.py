"""The "Train your own model" lines of docs/models.md, run as they are written: in a fresh project folder holding the
committed models, from data with weekends absent and lost readings, to a server that answers for the new model
beside the committed ones, which are left untouched."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from harness.live import free_port, wait_ready

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def readme_lines() -> list[str]:
    text = (ROOT / "docs" / "models.md").read_text()
    block = re.search(r"<!-- own-model:.*?-->\n```bash\n(.*?)```\n<!-- end own-model -->", text, re.S)
    assert block, "the own-model block of docs/models.md is missing"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def digests(models: Path) -> dict[str, str]:
    return {str(p.relative_to(models)): hashlib.sha256(p.read_bytes()).hexdigest() for p in models.rglob("*.onnx")}


def test_the_readme_walkthrough_trains_and_serves_a_model_beside_the_committed_ones(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "models", tmp_path / "models")
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)  # the README's `.venv/bin/...`
    committed = digests(tmp_path / "models")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECAST_")}
    *steps, serve = readme_lines()
    assert serve.split("#")[0].strip() == ".venv/bin/gatecast serve"
    printed = {}
    for line in steps:
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        printed[line.split("#")[0].strip()] = done.stdout + done.stderr
    # Not a terminal here: a plain line per epoch (with what is left), then the run's summary.
    said = printed[".venv/bin/gatecast pipeline my-sensor.toml"]
    assert re.search(r"my-sensor\[0\] epoch 1/\d+: train [\d.]+ val [\d.]+, best epoch 1 \(.*s left\)", said), said
    summary = said[said.index("my-sensor: done in") :]
    for part in ("test MASE", "seasonal naive", "verdict: ", "80% intervals held", "report: ", "model:  ", "curl -s"):
        assert part in summary, summary
    assert re.search(r"patience stopped it|the epoch cap \(\d+\) stopped it|it ran all", summary), summary
    request = re.search(r"-d @(\S+)", summary)
    assert request, summary

    data = pd.read_csv(tmp_path / "readings.csv", parse_dates=["ds"])
    assert (data["ds"].dt.dayofweek < 5).all()  # a calendar without weekends, and gaps: the case to handle
    config = (tmp_path / "my-sensor.toml").read_text()
    assert 'freq = "h"' in config and "season = 24" in config
    report = (tmp_path / "reports" / "my-sensor" / "report.md").read_text()
    assert "| seasonal_naive |" in report and "| AutoETS |" in report

    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        ["bash", "-c", f"exec {serve}"],
        cwd=tmp_path,
        # Free ports for both protocols: the README's defaults (8000, 8001) may be taken on a shared machine.
        env={**env, "GATECAST_PORT": str(port), "GATECAST_GRPC_PORT": str(free_port())},
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server)
        loaded = httpx.get(f"{url}/models").json()
        names = {m["name"] for m in loaded["models"]}
        assert {"my-sensor", "etth1-lstm", "vix-gru", "m4-hourly-gru"} <= names, loaded
        recent = data["y"].tail(168).tolist()
        r = httpx.post(
            f"{url}/forecast", json={"model": "my-sensor", "level": [80], "series": [{"id": "p", "values": recent}]}
        )
        assert r.status_code == 200, r.text
        assert len(r.json()["forecasts"][0]["mean"]) == 24
        r = httpx.post(f"{url}/forecast", json={"model": "etth1-lstm", "series": [{"id": "p", "values": recent}]})
        assert r.status_code == 200, r.text
        # The summary's request, as its curl sends it.
        body = (tmp_path / request.group(1)).read_bytes()
        r = httpx.post(f"{url}/forecast", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        assert len(r.json()["forecasts"][0]["mean"]) == 24
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    after = digests(tmp_path / "models")
    assert {k: v for k, v in after.items() if k in committed} == committed  # untouched
    assert set(after) - set(committed) == {"my-sensor/1/model.onnx"}
