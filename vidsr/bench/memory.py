"""Peak memory of one benchmark phase: host RSS (Linux) and CUDA allocations."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class Peak:
    host_mib: float | None = None
    gpu_mib: float | None = None


def _host_peak_kib() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@contextlib.contextmanager
def measure_peak(device: torch.device) -> Iterator[Peak]:
    """Peak resident host memory and peak CUDA memory allocated inside the block."""
    peak = Peak()
    with contextlib.suppress(OSError):
        _CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    try:
        yield peak
    finally:
        kib = _host_peak_kib()
        peak.host_mib = kib / 1024 if kib is not None else None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            peak.gpu_mib = torch.cuda.max_memory_allocated(device) / 2**20
