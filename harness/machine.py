"""The machine a benchmark ran on, as its pages name it: serving and training figures depend on the CPU model
and its vector instructions (onnxruntime's kernels differ between AVX2 and AVX-512 hosts), so every benchmark
JSON records them and every page says where it was measured."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from app.settings import available_cpus

# Widest first: the vector instruction set a host offers, as onnxruntime's kernels choose between them.
INSTRUCTION_SETS = (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"))


def _cpuinfo(key: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def instruction_set() -> str:
    """The widest vector instruction set the CPU reports (AVX-512, AVX2, ...), or the architecture."""
    flags = set((_cpuinfo("flags") or "").split())
    return next((name for flag, name in INSTRUCTION_SETS if flag in flags), platform.machine())


def describe() -> dict[str, Any]:
    """What a benchmark JSON records of its machine."""
    machine: dict[str, Any] = {
        "cpus": available_cpus(),
        "cpu": cpu_model(),
        "isa": instruction_set(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import onnxruntime

        machine["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover - every benchmark environment has it
        pass
    return machine


def named(machine: dict[str, Any] | str | None) -> str:
    """'AMD EPYC (AVX-512), 2 CPUs' for a page; what an older JSON recorded when it lacks the CPU."""
    if not machine:
        return "a machine it did not record"
    if isinstance(machine, str):
        return f"{machine} (the CPU model was not recorded)"
    cpus = machine.get("cpus")
    cores = f", {cpus} CPUs" if cpus else ""
    if "cpu" not in machine:
        return f"a machine whose CPU it did not record (measured before the benchmarks named it){cores}"
    isa = f" ({machine['isa']})" if machine.get("isa") else ""
    return f"{machine['cpu']}{isa}{cores}"
