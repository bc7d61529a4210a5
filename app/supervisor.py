"""`gatecast serve`: the supervisor of N uvicorn workers, with Prometheus multiprocess mode when N > 1."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

from app.settings import Settings, available_cpus, get_settings

STARTUP_FAILURE_ENV = "GATECAST_STARTUP_FAILURE_FILE"
APP = "app.main:app_factory"


class Supervisor(Multiprocess):
    """uvicorn's supervisor of the workers, except for SIGHUP: passed on to every worker, which re-reads the model
    folder, instead of replacing them all (a retiring worker closes its keep-alive connections under their clients)."""

    def handle_hup(self) -> None:
        for process in self.processes:
            if process.pid is not None:  # None: not started yet
                with contextlib.suppress(ProcessLookupError):  # ended since
                    os.kill(process.pid, signal.SIGHUP)


def serve(
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    models: str | None = None,
    grpc_port: int | None = None,
) -> None:
    # Worker processes read their settings from the environment: pass the command line's choices through it.
    if grpc_port is not None:
        os.environ["GATECAST_GRPC_PORT"] = str(grpc_port)
    if models:
        os.environ["GATECAST_MODEL_REPOSITORY"] = str(Path(models).resolve())
    get_settings.cache_clear()
    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    os.environ["GATECAST_WORKERS"] = str(workers)  # each worker splits the cores with the others (ort_threads)
    get_settings.cache_clear()
    # Both ports checked before any worker starts or loads a model: a clash ends at once, saying what to change.
    _check_free(host, port, "HTTP", "--port N or GATECAST_PORT=N (make serve PORT=N)")
    if settings.grpc_port:
        _check_free(
            host,
            settings.grpc_port,
            "gRPC",
            "--grpc-port N or GATECAST_GRPC_PORT=N (make serve GRPC_PORT=N), 0 for no gRPC",
        )
    made_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        made_dir = tempfile.mkdtemp(prefix="gatecast-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made_dir
    local_ray = _start_local_ray(settings)
    failure = Path(tempfile.mkdtemp(prefix="gatecast-start-")) / "failure"
    os.environ[STARTUP_FAILURE_ENV] = str(failure)  # where a worker that cannot start writes why
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": 30,
        "access_log": False,
        "http": "app.httpguard:GuardedHttpToolsProtocol",  # head size, head time and idle limits
        "timeout_keep_alive": settings.keep_alive_s,
        # Nothing in gatecast reads the client's address (no access log): X-Forwarded-* would be parsed for nothing.
        "proxy_headers": False,
    }
    try:
        if workers > 1:
            config = uvicorn.Config(APP, **options)
            Supervisor(config, sockets=[config.bind_socket()]).run()
        else:
            uvicorn.run(APP, **options)
    finally:
        if local_ray:
            import ray

            ray.shutdown()
        if made_dir:
            shutil.rmtree(made_dir, ignore_errors=True)
        reason = failure.read_text() if failure.exists() else ""
        shutil.rmtree(failure.parent, ignore_errors=True)
    if reason:
        sys.exit(f"gatecast: {reason}")


def _start_local_ray(settings: Settings) -> bool:
    """The workers' jobs go to one local Ray, started here before them, when training is on, the train extra is
    installed and GATECAST_RAY_ADDRESS names no cluster (app.trainer_client)."""
    if settings.training == "off" or settings.ray_address:
        return False
    from app.trainer_client import missing_extra, start_local_ray  # light: the supervisor holds no model runtime

    if missing_extra():
        return False
    try:
        address = start_local_ray(settings.training_cpus or available_cpus())
    except Exception as exc:  # serving must not depend on training: each worker tries again on its first job
        print(f"gatecast: a local Ray for training jobs did not start ({exc}); serving goes on", file=sys.stderr)
        return False
    os.environ["GATECAST_RAY_ADDRESS"] = address  # the workers connect to it on their first job
    get_settings.cache_clear()
    return True


def _check_free(host: str, port: int, protocol: str, setting: str) -> None:
    """Bind the port once and stop, naming it and the setting, if anything holds it. For gRPC it is also the only
    check: the workers listen with SO_REUSEPORT, which would let them share the port with another server started
    by the same user in silence."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As every server binds: connections of a previous run still in TIME_WAIT do not hold the port, a
            # listening socket does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        sys.exit(
            f"gatecast: the {protocol} port {host}:{port} is not free ({exc.strerror}): another server is listening "
            f"there. Stop it, or choose another port: {setting}"
        )
