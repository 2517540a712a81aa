"""Choosing the device and precision, from one place."""
from __future__ import annotations

import logging

import torch

from vidsr.errors import OptionError

log = logging.getLogger(__name__)


def pick_device(spec: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a usable torch.device."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise OptionError(f"--device {spec}: no CUDA device is available (use --device cpu)")
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise OptionError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise OptionError(f"--device must be auto, cpu, cuda or cuda:N, not {spec!r}")


def pick_dtype(device: torch.device, half: bool | None, supports_half: bool = True) -> torch.dtype:
    """fp16 on CUDA by default; fp32 on CPU, where half precision is slow and inexact."""
    if half is None:
        half = device.type == "cuda" and supports_half
    if half and device.type != "cuda":
        log.warning("--half is only used on CUDA; running in fp32 on %s", device)
        return torch.float32
    return torch.float16 if half else torch.float32
