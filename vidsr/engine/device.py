"""Choosing the device and precision, from one place."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from vidsr.choices import PRECISIONS
from vidsr.errors import OptionError
from vidsr.models import ModelDescriptor

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# torch.OutOfMemoryError appeared in 2.5; older releases only have the CUDA one.
OutOfMemoryError: type[BaseException] = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


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
        try:
            dev = torch.device(spec)
        except RuntimeError as exc:
            raise OptionError(f"--device {spec}: not a device name") from exc
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise OptionError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise OptionError(f"--device must be auto, cpu, cuda or cuda:N, not {spec!r}")


def pick_dtype(device: torch.device, precision: str, supports_half: bool = True, *,
               model: ModelDescriptor | None = None) -> torch.dtype:
    """The dtype to run a model in: fp16 on CUDA by default, fp32 on CPU (where half is slow and inexact).

    A model whose descriptor says fp16 (or bf16) is unsafe runs in fp32 instead, with a warning,
    whether half precision was asked for or is the default. Given `model`, its descriptor's
    flags are used; else `supports_half` alone.
    """
    supports_bf16 = True
    if model is not None:
        supports_half, supports_bf16 = model.supports_half, model.supports_bf16
    if precision not in PRECISIONS:
        raise OptionError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    asked = precision != "auto"
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision in ("fp16", "bf16") and device.type != "cuda":
        if asked:
            log.warning("%s is only used on CUDA; running in fp32 on %s", precision, device)
        return torch.float32
    unsafe = (precision == "fp16" and not supports_half) or (precision == "bf16" and not supports_bf16)
    if unsafe:
        log.warning("%s (%s) is not safe in %s: running in fp32", model.name if model else "the model",
                    model.architecture if model else "unknown architecture", precision)
        return torch.float32
    return _DTYPES[precision]


# Allocation failures that do not arrive as OutOfMemoryError: cuDNN/cuBLAS (and cuFFT, cuSOLVER)
# failing to allocate their workspace, and "CUDA error: out of memory" from a kernel launch or a
# library handle, all raised as plain RuntimeError.
_OOM_MARKERS = ("out of memory", "CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED",
                "CUFFT_ALLOC_FAILED", "CUSOLVER_STATUS_ALLOC_FAILED")


def is_oom(exc: BaseException) -> bool:
    """True for a device memory shortage, which doing less at once can get around."""
    if isinstance(exc, OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(marker in str(exc) for marker in _OOM_MARKERS)


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool | None) -> Iterator[None]:
    """cuDNN's autotuner on or off for what runs inside, then back as it was: the flag is
    process-wide, so vidsr sets it only around its own network calls. None leaves it alone."""
    if enabled is None:
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous
