"""The compiled network: when compiling pays, how it is compiled, and where its artefacts are kept.

Compiling costs tens of seconds the first time a model meets a frame size (far less once
the artefacts are on disk), and buys about 2x on CUDA (docs/benchmarks.md). So by default
vidsr compiles on CUDA for runs long enough to earn that back, and runs eager otherwise:
on CPU the gain is small and the compile costs minutes on few cores.

Shapes are fixed for a whole run (the pipeline pads the last batch and crops the result),
so one compilation serves every batch and nothing recompiles mid-run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from vidsr.engine.device import is_oom
from vidsr.errors import OptionError
from vidsr.io.decode import Window
from vidsr.io.probe import VideoInfo

if TYPE_CHECKING:  # upscaler.py imports this module
    from vidsr.engine.upscaler import SpeedOptions

log = logging.getLogger(__name__)

# A run this long pays for a cold compile of a compact net (about 30 s on an H100) at least
# twice over at the measured 205 -> 428 fps; with the disk cache warm it pays much sooner.
COMPILE_MIN_FRAMES = 500
# Below this many pixels per network call, kernel launches (not arithmetic) bound a compact
# net, which CUDA graphs remove; above it each launch runs long enough that graphs only add
# their memory pools and the copy of every input into a static buffer.
GRAPH_MAX_PIXELS = 960 * 540 * 2
TRT_EXTRA = "pip install 'vidsr[trt]'"
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def cache_dir() -> Path:
    """Where compiled artefacts live across runs: $VIDSR_CACHE_DIR, else $XDG_CACHE_HOME/vidsr (~/.cache/vidsr)."""
    root = os.environ.get("VIDSR_CACHE_DIR")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vidsr"
    return Path(root) / "compile"


def wants_compile(asked: bool | None, device: torch.device, frames: int | None) -> bool:
    """--compile / --no-compile decide; unset (auto): compile on CUDA when the run has enough frames.

    A run of unknown length (no frame count in the header, no window) is assumed long: the
    compile is a bounded cost, an eager long run is not.
    """
    if asked is not None:
        return asked
    return device.type == "cuda" and (frames is None or frames >= COMPILE_MIN_FRAMES)


def expected_frames(info: VideoInfo, window: Window) -> int | None:
    """About how many frames a run will upscale, from the header and the window; None if unknown."""
    rate = float(info.rate) if info.rate else None
    total = info.frames
    if total is not None and window.start and rate:
        total = max(0, total - math.floor(window.start * rate))
    limits = [n for n in (total, window.frames) if n is not None]
    if window.duration is not None and rate:
        limits.append(math.ceil(window.duration * rate))
    return min(limits) if limits else None


def settle_compile(speed: SpeedOptions, device: torch.device, frames: int | None) -> SpeedOptions:
    """`speed` with compile decided (True/False) for a run of `frames` on `device`."""
    return dataclasses.replace(speed, compile=wants_compile(speed.compile, device, frames))


def tensorrt_available() -> bool:
    return importlib.util.find_spec("torch_tensorrt") is not None


def wants_tensorrt(asked: bool | None, device: torch.device, compiled: bool) -> bool:
    """--trt: TensorRT or a one-line refusal; unset: TensorRT when installed and the run compiles on CUDA."""
    if asked is False or not compiled:
        return False
    if asked:
        if device.type != "cuda":
            raise OptionError(f"--trt needs a CUDA device, not {device}")
        if not tensorrt_available():
            raise OptionError(f"--trt needs torch-tensorrt, which is not installed ({TRT_EXTRA})")
        return True
    return device.type == "cuda" and tensorrt_available()


def compile_mode(device: torch.device, x: torch.Tensor) -> str:
    """torch.compile's mode for inputs like `x`: CUDA graphs ("reduce-overhead") only where launches bound."""
    if device.type == "cuda" and x.shape[0] * x.shape[-2] * x.shape[-1] <= GRAPH_MAX_PIXELS:
        return "reduce-overhead"
    return "default"


@contextlib.contextmanager
def cache_scope(folder: Path) -> Iterator[None]:
    """Point inductor's and Triton's on-disk caches (FX graphs, kernels, autotuning) at `folder`
    while compiling, and put the environment back after.

    Inductor reads its cache location only from the environment, at each look-up; setting it
    here, around calls, rather than at import keeps vidsr from changing where other users of
    torch in the same process keep theirs.
    """
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {"TORCHINDUCTOR_CACHE_DIR": str(folder), "TRITON_CACHE_DIR": str(folder / "triton")}
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class CompiledNetwork:
    """A network compiled on its first call, for the shape of that call, with its artefacts cached on disk.

    Unless asked for, the mode is chosen from the first input (see compile_mode), which is why
    compilation waits for it. A failed TensorRT build falls back to inductor with a warning rather than
    losing the run.
    """

    def __init__(self, module: torch.nn.Module, device: torch.device, *, tensorrt: bool = False,
                 mode: str | None = None, cache: Path | None = None) -> None:
        self.module = module
        self.device = device
        self.tensorrt = tensorrt
        self.cache = cache or cache_dir()
        self.asked_mode = mode       # None: chosen from the first input
        self.mode: str | None = None
        self._compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._seen: set[tuple] = set()  # input shapes already compiled for

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # The environment is changed only for calls that compile (a shape not seen yet): setenv
        # while decoder threads may call getenv is not thread-safe in C, so not once per batch.
        key = (tuple(x.shape), x.dtype)
        with cache_scope(self.cache) if key not in self._seen else contextlib.nullcontext():
            y = self._call(x)
        self._seen.add(key)
        return y

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        if self._compiled is None:
            self._compiled = self._compile(x)
        if self.mode == "reduce-overhead":
            # Each call is a new step: the previous call's outputs are consumed by now.
            torch.compiler.cudagraph_mark_step_begin()
        try:
            return self._compiled(x)
        except Exception as exc:
            if self.mode != "tensorrt" or is_oom(exc):
                raise
            log.warning("TensorRT could not build this network (%s): using torch.compile instead",
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self.tensorrt = False
            self._compiled = self._compile(x)
            return self._compiled(x)

    def _compile(self, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.tensorrt:
            import torch_tensorrt  # noqa: F401  (registers the backend)

            self.mode = "tensorrt"
            log.info("compiling with TensorRT for %s (engines cached in %s)", tuple(x.shape), self.cache / "trt")
            return torch.compile(self.module, backend="torch_tensorrt", dynamic=False, options={
                "enabled_precisions": {x.dtype}, "cache_built_engines": True, "reuse_cached_engines": True,
                "engine_cache_dir": str(self.cache / "trt")})
        self.mode = self.asked_mode or compile_mode(self.device, x)
        log.info("torch.compile (mode %s) for %s, cache %s", self.mode, tuple(x.shape), self.cache)
        return torch.compile(self.module, mode=self.mode, dynamic=False)
