"""Prometheus metrics. Correct with several worker processes through prometheus_client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by `gatecast serve` when workers > 1).

No label takes a per-series or per-request value: cardinality stays bounded by routes x models.
"""

from __future__ import annotations

import os
import re

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.openmetrics import exposition as openmetrics

from app.settings import get_settings

_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*_(\d+)\.db$")

# The client library's defaults start at 5 ms; a forecast takes well under one.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def batch_buckets(largest: int) -> tuple[int, ...]:
    """Powers of two up to the largest batch the server runs, and that batch itself."""
    powers = [2**i for i in range(0, max(1, largest).bit_length()) if 2**i < largest]
    return (*powers, largest)


# The histogram is made once per process, when this module is imported: with the settings of that process.
BATCH_BUCKETS = batch_buckets(get_settings().max_batch_series)

HTTP_DURATION = Histogram(
    "gatecast_http_request_duration_seconds",
    "HTTP request duration, by route template, method and status class.",
    ["route", "method", "status_class"],
    buckets=LATENCY_BUCKETS,
)
GRPC_DURATION = Histogram(
    "gatecast_grpc_request_duration_seconds",
    "gRPC call duration, by method and status code.",
    ["method", "code"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE_DURATION = Histogram(
    "gatecast_inference_duration_seconds",
    "Duration of one onnxruntime run (one batch).",
    ["model", "version"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "gatecast_queue_wait_seconds",
    "Time a request's series waited in the batch queue before their run started.",
    ["model", "version"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "gatecast_batch_size_series",
    "Series per onnxruntime run.",
    ["model", "version"],
    buckets=BATCH_BUCKETS,
)
SERIES_FORECAST = Counter("gatecast_series_forecast_total", "Series forecast.", ["model", "version"])
ERRORS = Counter("gatecast_errors_total", "Requests answered with an error, by reason.", ["reason"])
MODEL_LOADED = Gauge(
    "gatecast_model_loaded",
    "1 for each model version loaded, with the execution provider in use.",
    ["model", "version", "provider"],
    multiprocess_mode="liveall",
)
MODEL_LOAD_FAILURES = Counter("gatecast_model_load_failures_total", "Model files refused at load.", ["model"])
MEMORY_BUDGET = Gauge(
    "gatecast_memory_budget_bytes",
    "Request memory the worker processes admit (summed over workers); see app/admission.py.",
    multiprocess_mode="livesum",
)

# Live feeds (app.streams): forecast quality scored as the actual values arrive, per model and version (never
# per stream). Rolling MAE = rate(abs_error) / rate(scored); MASE = rate(scaled_error) / rate(scaled_scored);
# coverage at a level = rate(interval_hits{level}) / rate(scored) (deploy/grafana, deploy/prometheus/alerts.yml).
_MV = ["model", "version"]
STREAM_READINGS = Counter("gatecast_stream_readings_total", "Readings appended to streams.", _MV)
STREAM_ANOMALIES = Counter(
    "gatecast_stream_anomalies_total", "Readings outside the anomaly interval of the forecast made before them.", _MV
)
STREAM_SCORED = Counter(
    "gatecast_stream_scored_total",
    "(reading, forecast) pairs scored: each reading against every forecast step that predicted it.",
    _MV,
)
STREAM_ABS_ERROR = Counter("gatecast_stream_abs_error_total", "Sum of |actual - forecast| over scored pairs.", _MV)
STREAM_SCALED_SCORED = Counter(
    "gatecast_stream_scaled_scored_total", "Scored pairs whose history had a seasonal-naive error (MASE's).", _MV
)
STREAM_SCALED_ERROR = Counter(
    "gatecast_stream_scaled_error_total",
    "Sum of |actual - forecast| / the seasonal-naive MAE of the forecast's history, over those pairs.",
    _MV,
)
STREAM_INTERVAL_HITS = Counter(
    "gatecast_stream_interval_hits_total",
    "Scored pairs whose actual fell inside the forecast's interval at `level` (80, 95, 99).",
    [*_MV, "level"],
)
STREAM_CONFLICTS = Counter(
    "gatecast_stream_conflicts_total", "Stream writes redone because another request changed the stream first."
)
STREAMS = Gauge(
    "gatecast_streams", "Streams in the store (every worker reads the same store).", multiprocess_mode="max"
)


class ProcessValue:
    """A gauge that changes several times on every request, kept as a number in this process and written to
    Prometheus only when published. In multiprocess mode every write is a locked update of a memory-mapped
    file; these writes were a tenth of a request's CPU outside onnxruntime. A scrape publishes its own
    worker's values first; every worker publishes its own each PUBLISH_EVERY_S (app.main's lifespan)."""

    __slots__ = ("gauge", "value")

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self.value = 0

    def publish(self) -> None:
        self.gauge.set(self.value)


PUBLISH_EVERY_S = 1.0
IN_FLIGHT = ProcessValue(
    Gauge("gatecast_requests_in_flight", "HTTP requests and gRPC calls being handled.", multiprocess_mode="livesum")
)
MEMORY_ADMITTED = ProcessValue(
    Gauge(
        "gatecast_memory_admitted_bytes",
        "Estimated memory held by requests in flight (summed over workers).",
        multiprocess_mode="livesum",
    )
)


def publish() -> None:
    """Write this process's per-request values to their gauges."""
    IN_FLIGHT.publish()
    MEMORY_ADMITTED.publish()


def forget_dead_workers(directory: str) -> list[int]:
    """Drop the live gauges (in-flight, loaded models) of worker processes that died without cleaning up,
    e.g. killed by the OOM killer; uvicorn starts a replacement. Their counters stay: they counted real work."""
    dead = set()
    for name in os.listdir(directory):
        match = _LIVE_GAUGE_FILE.match(name)
        if match and not _alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    return sorted(dead)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def render(accept: str = "") -> tuple[bytes, str]:
    """The exposition for /metrics, merged across worker processes when there are several: OpenMetrics when
    the scraper asks for it (Prometheus does, by its Accept header), else the classic text format."""
    publish()
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        forget_dead_workers(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        from prometheus_client import REGISTRY as registry
    if "application/openmetrics-text" in accept:
        return openmetrics.generate_latest(registry), openmetrics.CONTENT_TYPE_LATEST  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
