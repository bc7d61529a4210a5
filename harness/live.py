"""Start the real server (`gatecast serve`) as a separate process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready within {timeout}s")


@contextmanager
def running_server(
    repository: Path, workers: int = 1, cgroup_procs: Path | None = None, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`gatecast serve` on a free port; with `cgroup_procs`, the process joins that cgroup before it starts.
    gRPC and training are off unless the test gives GATECAST_GRPC_PORT or GATECAST_TRAINING; streams go to a new
    folder unless it gives GATECAST_STATE_DIR or GATECAST_STREAM_STORE. The server's output goes to
    `server-<port>.log` beside the model folder (tests read it), or in a temporary folder for the checkout's own
    models; its end is shown when the server fails to start."""
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GATECAST_")}  # only what the test says
    environ = {
        **inherited,
        "GATECAST_MODEL_REPOSITORY": str(repository),
        "GATECAST_GRPC_PORT": "0",
        "GATECAST_TRAINING": "off",  # no local Ray beside every test server; the training tests turn it on
        "GATECAST_STATE_DIR": tempfile.mkdtemp(prefix="gatecast-state-"),  # its own embedded stream store
        **env,
    }
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    folder = repository.parent
    if folder.resolve().is_relative_to(ROOT):  # never a log file in the checkout
        folder = Path(tempfile.mkdtemp(prefix="gatecast-server-"))
    log_path = folder / f"server-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    command = [
        sys.executable,
        "-m",
        "app.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if cgroup_procs is not None:  # join first, then exec: the server and its workers start inside the limit
        command = ["sh", "-c", f'echo $$ > "{cgroup_procs}" && exec "$@"', "sh", *command]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(url, proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}; its log: {log_path.read_text(errors='replace')[-2000:]}") from None
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
