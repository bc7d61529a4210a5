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

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, description="uvicorn worker processes")
    model_repository: Path = Path("models")
    default_model: str | None = Field(None, description="name or name@version; the first model by name if unset")
    provider: Literal["auto", "cpu", "cuda"] = "auto"
    intra_op_threads: int = Field(0, ge=0, description="onnxruntime threads per session; 0: cores / workers")

    # Dynamic batching, per model version and worker process.
    # 64: on CPU the cost per series is flat from batch 8 to 256 (bench/memory_cost.py prints it), while
    # onnxruntime's memory arena keeps what the largest run needed. Raise it for a GPU.
    max_batch_series: int = Field(64, ge=1, description="most series in one onnxruntime call")
    max_queue_delay_us: int = Field(0, ge=0, description="wait this long for more series before a run")
    max_queue_series: int = Field(8192, ge=1, description="series waiting beyond this answer 503")

    # Request limits (413 beyond them) and time limit (503).
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    max_series_per_request: int = Field(10_000, ge=1)
    max_points_per_series: int = Field(100_000, ge=1)
    request_timeout_s: float = Field(30.0, gt=0)
    memory_budget_mb: int = Field(
        0, ge=0, description="request memory a worker admits (503 beyond); 0: derived from the memory limit"
    )

    # HTTP limits, enforced by app.httpguard before a request reaches the app.
    max_header_bytes: int = Field(16 * 1024, ge=1024, description="request line and headers; 431 beyond")
    max_header_count: int = Field(100, ge=8, description="headers per request; 431 beyond")
    header_timeout_s: float = Field(10.0, gt=0, description="time to send a request's headers; 408 and close")
    keep_alive_s: int = Field(5, ge=1, description="an idle keep-alive connection is closed after this")
    max_idle_connections: int = Field(1000, ge=1, description="idle connections per worker; the oldest is closed")

    model_control: bool = Field(False, description="allow POST /v2/repository/models/{name}/load|unload")
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, description="comma-separated; empty: open")
    admin_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, description="keys for model control")
    metrics_need_key: bool = Field(False, description="require an API key on /metrics too")
    repository_poll_s: float = Field(
        10.0, ge=0, description="follow the model folder every N s (load new and changed, unload deleted); 0: off"
    )
    max_model_bytes: int = Field(512 * 1024 * 1024, ge=1024, description="larger model files are refused")
    log_level: str = "info"

    @field_validator("api_keys", "admin_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

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
