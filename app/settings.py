"""All server settings in one class, read from the environment (prefix GATECAST_). The README lists them."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATECAST_", extra="ignore")

    host: str = Field("127.0.0.1", description="listen address")
    port: int = Field(8000, ge=1, le=65535, description="listen port")
    grpc_port: int = Field(
        8001,
        ge=0,
        le=65535,
        description="Open Inference Protocol v2 over gRPC (tritonclient.grpc, KServe) on this port, same address; "
        "0: off",
    )
    workers: int = Field(
        0,
        ge=0,
        description="worker processes, sharing one listening socket (metrics are merged across them); "
        "0: one per usable CPU (affinity and cgroup quota)",
    )
    model_repository: Path = Field(
        Path("models"), description="folder of `<name>/<version>/model.onnx`; the highest version is the default"
    )
    default_model: str | None = Field(
        None,
        description="model used when a request names none (`name` or `name@version`); unset: gatecast-base when "
        "served, else the first by name",
    )
    provider: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="`auto` (CUDA when onnxruntime-gpu sees a GPU, else CPU), `cpu`, `cuda`"
    )
    intra_op_threads: int = Field(
        0, ge=0, description="onnxruntime threads per session; 0: usable CPUs (affinity and cgroup quota) / workers"
    )

    # Dynamic batching, per model version and worker process.
    max_batch_series: int = Field(
        64,
        ge=1,
        description="most series in one onnxruntime run. onnxruntime keeps the memory its largest run needed and "
        "on CPU larger batches buy little (docs/benchmarks/memory.md): raise it for a GPU",
    )
    max_queue_delay_us: int = Field(
        0, ge=0, description="wait this long for more requests before a run; 0: run as soon as the previous ends"
    )
    gather_wait_us: int = Field(
        300,
        ge=0,
        description="before a run, wait at most this long for the connections answered in the last 20 ms that have "
        "not sent their next request yet (closed-loop clients); a lone client never waits; 0: off",
    )
    inline_max_series: int = Field(
        64,
        ge=0,
        description="batches up to this many series run on the event loop instead of a thread (CPU sessions with "
        "one thread, i.e. one worker per core): saves the thread hand-off, and holds the loop for one run; "
        "0: always a thread",
    )
    max_queue_series: int = Field(
        49152,
        ge=1,
        description="windows that may run, per model, before a new request's last one under fair sharing (the "
        "others' windows, each up to the new request's count, and its own); beyond it, 503 + `Retry-After`. A "
        "small request is admitted behind any backlog",
    )

    # Request limits (413 beyond them) and time limit (503).
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="larger bodies get 413")
    max_series_per_request: int = Field(10_000, ge=1, description="more series get 413")
    max_windows_per_request: int = Field(
        10_000,
        ge=1,
        description="model windows one request may run (its series' forecasts, each cross-validation, anomaly or "
        "calibration origin); more get 413",
    )
    max_points_per_series: int = Field(100_000, ge=1, description="longer series get 413")
    request_timeout_s: float = Field(30.0, gt=0, description="requests running longer get 503")
    memory_budget_mb: int = Field(
        0,
        ge=0,
        description="request memory a worker admits: beyond it 503 + `Retry-After`, and 413 for a request bigger "
        "than all of it. 0: half the worker's share of the memory limit (the cgroup's, else the machine's) less "
        "what it holds after loading its models",
    )

    # HTTP limits, enforced by app.httpguard before a request reaches the app.
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="request line and headers; larger get 431 and the connection is closed"
    )
    max_header_count: int = Field(100, ge=8, description="headers per request; more get 431")
    header_timeout_s: float = Field(
        10.0, gt=0, description="time to send a complete request head; 408 and close (silent connections just close)"
    )
    keep_alive_s: int = Field(5, ge=1, description="idle keep-alive connections close after this")
    max_idle_connections: int = Field(
        1000, ge=1, description="idle connections per worker; beyond it the one idle longest is closed"
    )

    # Live feeds (app.streams).
    stream_store: str = Field(
        "",
        description="where streams live: empty for an SQLite file in `state_dir` (one host; survives restarts), "
        "`sqlite:///path`, or `redis://host:6379/0` so every replica serves every stream",
    )
    state_dir: Path = Field(Path("state"), description="folder of the embedded stream store")
    max_streams: int = Field(100_000, ge=1, description="streams the store holds; creating more gets 409")
    stream_idle_ttl_s: float = Field(
        7 * 24 * 3600.0, gt=0, description="streams without a write for this long are removed"
    )
    stream_max_append: int = Field(
        1000, ge=1, description="readings in one append; more get 413 (the model runs once per reading)"
    )

    model_control: bool = Field(False, description="enables POST /v2/repository/models/{name}/load and /unload")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated keys; when set, every route but `/v2/health/*`, `/metrics` and the docs needs "
        "`Authorization: Bearer <key>` or `X-API-Key`",
    )
    admin_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="keys for load and unload (required for them whenever any keys are set)"
    )
    metrics_need_key: bool = Field(False, description="require a key on `/metrics` too")
    repository_poll_s: float = Field(
        10.0,
        ge=0,
        description="every worker follows the model folder every N seconds: new and changed files load, deleted "
        "ones unload; 0: only at start and on SIGHUP",
    )
    max_model_bytes: int = Field(
        512 * 1024 * 1024, ge=1024, description="larger model files are refused without being read"
    )
    # Training and fine-tuning jobs (app.trainer_client), run on Ray by trainer processes with the train extra.
    training: Literal["auto", "off"] = Field(
        "auto",
        description="auto: training jobs (/jobs) and fine-tuning (the TimeGPT API's finetune) where the train extra "
        "is installed, else they answer 503 naming it; off: they always answer 503",
    )
    ray_address: str = Field(
        "",
        description="the Ray cluster that runs jobs (`host:6379`, `ray://host:10001`); empty: `gatecast serve` starts "
        "a local Ray for its workers",
    )
    training_cpus: int = Field(0, ge=0, description="CPUs of the local Ray; 0: every usable CPU")
    training_cpus_per_job: float = Field(
        1.0, gt=0, description="CPUs Ray reserves for one job: jobs beyond the cluster's CPUs wait in its queue"
    )
    max_training_jobs: int = Field(
        8, ge=1, description="jobs queued or running at once, on the whole repository; more get 503 + `Retry-After`"
    )
    ray_connect_timeout_s: float = Field(
        60.0, gt=0, description="how long the first job waits for Ray to start or answer; then 503"
    )
    finetune_max_steps: int = Field(
        1000, ge=1, description="most finetune_steps one fine-tuning may ask for; more get 422"
    )
    finetune_history_models: int = Field(
        20,
        ge=1,
        description="models forecast(finetune_steps=N) keeps, one per history fine-tuned on; the oldest beyond it are "
        "deleted (every worker loads them all)",
    )
    finetune_timeout_s: float = Field(
        600.0,
        gt=0,
        description="how long a finetune call (or a forecast with finetune_steps) waits for its job; then 503 naming "
        "the job, which goes on",
    )
    opentelemetry: bool = Field(
        False, description="FastAPI's OpenTelemetry spans, metrics and logs, for an OTel SDK you configure"
    )
    log_level: str = Field("info", description="log level of the server")

    @field_validator("api_keys", "admin_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("stream_store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        from app.streams.store import check_url

        return check_url(value)

    @field_validator("workers")
    @classmethod
    def _one_per_cpu(cls, value: int) -> int:
        # One single-threaded process per core: Python's request handling is single-threaded, so fewer
        # workers leave cores to onnxruntime's threads alone (docs/benchmarks/serving.md).
        return value or available_cpus()

    def ort_threads(self) -> int:
        if self.intra_op_threads:
            return self.intra_op_threads
        return max(1, available_cpus() // self.workers)


def available_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 quota (a container's CPU limit).

    os.cpu_count() reports the host's cores, which oversubscribes a pod limited to one or two CPUs.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


@lru_cache
def get_settings() -> Settings:
    return Settings()
