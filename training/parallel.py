"""`gatecast pipeline A.toml B.toml ...`: every config a Ray task with its share of the cores (or of the cluster's,
with GATECAST_RAY_ADDRESS), each trained, evaluated and exported as `gatecast pipeline` does one."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from training.config import RunConfig

log = logging.getLogger("gatecast.parallel")


def _one(config: RunConfig, root: str, force: bool, threads: int) -> str:
    """In a Ray task: one config's run and its summary."""
    import torch

    from training import pipeline

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pipeline.run_all(config, Path(root), progress=True, force=force)
    return pipeline.run_summary(config, Path(root))


def run_many(configs: list[RunConfig], root: Path, force: bool = False) -> list[tuple[RunConfig, str, bool]]:
    """(config, its summary or why it failed, whether it succeeded), in the order given."""
    import ray

    from training.tune import _absolute_dataset

    address = os.environ.get("GATECAST_RAY_ADDRESS") or "local"
    env = {k: v for k, v in os.environ.items() if k == "GATECAST_DATA_DIR"}
    ray.init(
        address=address,
        include_dashboard=False if address == "local" else None,
        runtime_env={"env_vars": env} if env else None,
    )
    try:
        cpus = ray.cluster_resources().get("CPU", 1.0)
        share = max(1, math.floor(cpus / len(configs)))
        log.info("%d configs on %g CPUs: %d each", len(configs), cpus, share)
        task = ray.remote(_one).options(num_cpus=share, max_retries=0)
        refs = [task.remote(_absolute_dataset(c), str(root.resolve()), force, share) for c in configs]
        out = []
        for config, ref in zip(configs, refs, strict=True):
            try:
                out.append((config, ray.get(ref), True))
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if exc.cause is not None else exc
                out.append((config, f"{config.name}: {cause}", False))
        return out
    finally:
        ray.shutdown()
