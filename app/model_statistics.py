"""Per-version inference statistics, in the shape of Triton's statistics extension
(GET /v2/models[/{name}[/versions/{version}]]/stats, tritonclient's `get_inference_statistics`).

Counted in each worker process, since the last load of the version: requests that succeeded or failed and the
time they spent in the model service, the time their series waited in the batch queue, and every onnxruntime
run by batch size. Prometheus (/metrics) has the same events merged across workers.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9)

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class ModelStats:
    inference_count: int = 0  # series forecast (Triton counts inferences; a series is one)
    execution_count: int = 0  # onnxruntime runs
    last_inference_ms: int = 0
    success: Duration = field(default_factory=Duration)  # requests answered, time in the model service
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)  # per request: from submission to the start of its run
    compute_infer: Duration = field(default_factory=Duration)  # per run
    batches: dict[int, Duration] = field(default_factory=lambda: defaultdict(Duration))  # runs by batch size

    def run(self, batch: int, seconds: float) -> None:
        self.execution_count += 1
        self.inference_count += batch
        self.compute_infer.add(seconds)
        self.batches[batch].add(seconds)
        self.last_inference_ms = int(time.time() * 1000)

    def as_triton(self, name: str, version: str) -> dict[str, Any]:
        zero = Duration().as_dict()
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.as_dict(),
                "fail": self.fail.as_dict(),
                "queue": self.queue.as_dict(),
                "compute_input": zero,
                "compute_infer": self.compute_infer.as_dict(),
                "compute_output": zero,
                "cache_hit": zero,
                "cache_miss": zero,
            },
            "batch_stats": [
                {"batch_size": size, "compute_input": zero, "compute_infer": d.as_dict(), "compute_output": zero}
                for size, d in sorted(self.batches.items())
            ],
            "memory_usage": [],
        }
