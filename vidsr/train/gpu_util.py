"""GPU utilisation, sampled in the background, read as a mean per logging interval.

``torch.cuda.utilization`` (through NVML: the ``nvidia-ml-py`` package) where it works,
else ``nvidia-smi``; on a CPU, or where neither answers, there is no figure (None), never
a made-up one. NVML's figure is the share of the last sample period (1/6 s to 1 s) in
which a kernel ran, so one reading says little; a background thread reads it every
``period`` seconds and :meth:`UtilizationSampler.interval` gives the mean since the last
call.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import threading

import torch

log = logging.getLogger(__name__)


class UtilizationSampler:
    """Samples the utilisation (%) of a CUDA device every ``period`` seconds, in a daemon thread."""

    def __init__(self, device: torch.device, period: float = 0.5) -> None:
        self.device = device
        self.period = period
        self.source: str | None = None  #: torch.cuda.utilization or nvidia-smi once a reading worked
        self._samples: list[float] = []
        self._all: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if device.type == "cuda":
            self._thread = threading.Thread(target=self._loop, name="vidsr-gpu-util", daemon=True)
            self._thread.start()

    def _index(self) -> int:
        return self.device.index if self.device.index is not None else torch.cuda.current_device()

    def read(self) -> float | None:
        """One reading now, or None where there is none to be had."""
        if self.device.type != "cuda":
            return None
        if self.source in (None, "torch.cuda.utilization"):
            try:
                value = float(torch.cuda.utilization(self.device))
                self.source = "torch.cuda.utilization"
                return value
            except Exception:  # pynvml missing or NVML unusable: torch raises several types
                pass
        if self.source in (None, "nvidia-smi") and shutil.which("nvidia-smi"):
            try:
                out = subprocess.run(["nvidia-smi", f"--id={self._index()}", "--query-gpu=utilization.gpu",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
                value = float(out.stdout.strip().splitlines()[0])
                self.source = "nvidia-smi"
                return value
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                pass
        return None

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            value = self.read()
            if value is None:
                log.info("GPU utilisation is not available here (no NVML through torch, no nvidia-smi)")
                return
            with self._lock:
                self._samples.append(value)
                self._all.append(value)

    def interval(self) -> float | None:
        """Mean utilisation (%) since the previous call; None without readings."""
        with self._lock:
            samples, self._samples = self._samples, []
        return sum(samples) / len(samples) if samples else None

    def overall(self) -> dict[str, float | int | str | None]:
        """Mean, median and count of every reading so far, and where they came from."""
        with self._lock:
            s = sorted(self._all)
        return {"source": self.source, "samples": len(s), "mean": sum(s) / len(s) if s else None,
                "median": s[len(s) // 2] if s else None}

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
