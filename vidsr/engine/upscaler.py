"""Frames in, larger frames out: the network and everything around it on the device.

The host only moves bytes: uint8 frames go up (from pinned memory, on a copy stream),
and uint8 frames in the encoder's pixel format come down. Normalisation, the network,
the resize to the requested scale, clamping and the colour conversion all run here.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vidsr.engine.channels import rgb_network
from vidsr.engine.compiled import COMPILE_MODES, CompiledNetwork, wants_tensorrt
from vidsr.engine.device import cudnn_benchmark, is_oom
from vidsr.engine.device_formatter import DeviceFormatter
from vidsr.engine.tiling import forward_padded, forward_tiled
from vidsr.errors import OptionError
from vidsr.io.pixel_formats import subsampled_chroma
from vidsr.models import ModelDescriptor

log = logging.getLogger(__name__)
_MIN_TILE = 32


def output_size(width: int, height: int, scale: float, pix_fmt: str | None = None) -> tuple[int, int]:
    """round(scale x size); moved to the nearest even number only where `pix_fmt` subsamples chroma."""
    even_w, even_h = subsampled_chroma(pix_fmt) if pix_fmt else (False, False)

    def one(n: int, even: bool) -> int:
        exact = n * scale
        return max(2, 2 * math.floor(exact / 2 + 0.5)) if even else max(1, math.floor(exact + 0.5))

    return one(width, even_w), one(height, even_h)


@dataclass(frozen=True)
class SpeedOptions:
    """Knobs that change speed and memory, never the picture (beyond fp rounding)."""

    channels_last: bool = True
    # None (auto): the run decides (compiled.wants_compile); FrameUpscaler itself runs eager on None.
    compile: bool | None = None
    trt: bool | None = None     # TensorRT for the compiled network; None: when installed (compiled.wants_tensorrt)
    compile_mode: str | None = None  # torch.compile mode; None: from the batch's size (compiled.compile_mode)
    cudnn_benchmark: bool = True
    tile: int = 0          # 0: whole frames (tiles are still used if memory runs out)
    tile_pad: int = 16

    def validated(self) -> SpeedOptions:
        if self.tile < 0 or (0 < self.tile < _MIN_TILE):
            raise OptionError(f"--tile must be 0 (off) or at least {_MIN_TILE}, not {self.tile}")
        if self.tile_pad < 0:
            raise OptionError(f"--tile-pad must be >= 0, not {self.tile_pad}")
        if self.compile_mode not in (None, *COMPILE_MODES):
            raise OptionError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, not {self.compile_mode!r}")
        return self


class FrameUpscaler:
    """Runs one model at one output size; recovers from out-of-memory by shrinking its work."""

    def __init__(self, model: ModelDescriptor, *, device: torch.device, dtype: torch.dtype,
                 out_size: tuple[int, int], formatter: DeviceFormatter | None = None,
                 speed: SpeedOptions = SpeedOptions(), micro_batch: int = 64) -> None:
        self.model = model
        self.device = device
        self.dtype = dtype
        self.out_w, self.out_h = out_size
        self.formatter = formatter or DeviceFormatter("rgb24", self.out_w, self.out_h, None)
        self.speed = speed.validated()
        self.micro_batch = micro_batch
        self.tile = self.speed.tile
        self.is_cuda = device.type == "cuda"
        # Alpha reaches the network only where it takes RGBA; every model gets the engine's resized alpha.
        self.network_channels = 4 if model.input_channels == 4 else 3
        module = rgb_network(model).to(device=device, dtype=dtype).eval()
        if self.speed.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.eager_module = module
        self.module: Callable[[torch.Tensor], torch.Tensor] = module
        if self.speed.compile:
            self.module = CompiledNetwork(module, device, mode=self.speed.compile_mode,
                                          tensorrt=wants_tensorrt(self.speed.trt, device, compiled=True))
        # Separate streams each way: a download waits for its batch's compute, and an upload
        # queued behind it on a shared stream would make the next batch wait for that too.
        self.upload_stream = torch.cuda.Stream(device) if self.is_cuda else None
        self.download_stream = torch.cuda.Stream(device) if self.is_cuda else None

    # -- host <-> device -------------------------------------------------------------

    def upload(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8/uint16 [N,H,W,C] on the host -> the same samples as [N,C,H,W] on the device (C = 3, or 4
        with alpha). Conversion to float happens in process(), a micro-batch at a time.

        Once this returns, `frames` may be reused by the caller.
        """
        if not self.is_cuda:
            # Straight to float: the copy the caller needs (it reuses `frames`) is then the only one.
            top = 255 if frames.dtype == torch.uint8 else 65535
            return frames.permute(0, 3, 1, 2).to(self.dtype).div_(top)
        assert self.upload_stream is not None
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.upload_stream):
            dev = frames.to(self.device, non_blocking=True)
        done = self.upload_stream.record_event()
        done.synchronize()  # the host buffer is free again; the compute stream has not waited
        compute.wait_event(done)
        dev.record_stream(compute)  # allocated on the upload stream, used and freed on the compute stream
        # NHWC -> NCHW as a view is already channels_last: no copy.
        return dev.permute(0, 3, 1, 2)

    def receive(self, frames: torch.Tensor) -> torch.Tensor:
        """upload(), surviving out-of-memory: then the frames stay in (unpinned) host memory and
        process() moves them to the device a micro-batch at a time."""
        try:
            return self.upload(frames)
        except Exception as exc:
            if not is_oom(exc):
                raise
            self._free_cached_memory()
            log.warning("out of memory uploading %d frame(s): moving them to %s in smaller pieces",
                        frames.shape[0], self.device)
            return frames.permute(0, 3, 1, 2).clone()

    def to_float(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames from upload() (or a slice of them) -> float [N,C,H,W] in [0,1] on the device."""
        frames = frames.to(self.device)
        if frames.is_floating_point():
            return frames.to(self.dtype)
        top = 255 if frames.dtype == torch.uint8 else 65535
        return frames.to(self.dtype).div_(top)

    def download(self, frames: torch.Tensor, host: torch.Tensor) -> torch.cuda.Event | None:
        """Copy device frames into the host buffer; returns an event to wait on before reading it."""
        if not (self.is_cuda and frames.is_cuda):
            host.copy_(frames)
            return None
        assert self.download_stream is not None
        self.download_stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.download_stream):
            host.copy_(frames, non_blocking=True)
            frames.record_stream(self.download_stream)
        return self.download_stream.record_event()

    # -- the work ----------------------------------------------------------------------

    @torch.inference_mode()
    def process(self, x: torch.Tensor) -> torch.Tensor:
        """Frames [N,C,H,W] (from upload(), or float in [0,1]) -> uint8/uint16 frames at the output size,
        in the formatter's layout.

        Out-of-memory anywhere in here (the float copy, the network and its library workspaces,
        the resize and colour conversion) is recovered by doing less at once (see _shrink).
        """
        out: torch.Tensor | None = None
        i = 0
        while i < x.shape[0]:
            j = min(i + self.micro_batch, x.shape[0])
            try:
                chunk = self.to_float(x[i:j])
                y = self._finish(self._network(chunk[:, :self.network_channels]), chunk[:, 3:])
                del chunk
                if out is None:
                    out = self._output_buffer(y, x.shape[0])
            except Exception as exc:
                chunk = y = None  # let go of the failed attempt's memory before trying again
                if not (is_oom(exc) and self._shrink(j - i, x.shape[-2:])):
                    raise
                continue  # retry the same frames with less memory
            out[i:j] = y
            i = j
        assert out is not None
        return out

    @torch.inference_mode()
    def process_eager(self, x: torch.Tensor) -> torch.Tensor:
        """process() without compilation, e.g. for a memory trial that must not trigger it."""
        compiled, self.module = self.module, self.eager_module
        try:
            return self.process(x)
        finally:
            self.module = compiled

    @torch.inference_mode()
    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        """uint8/uint16 [N,H,W,C] host frames -> host frames in the formatter's layout (sequential)."""
        return self.process(self.upload(rgb)).cpu()

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        """RGB(A) [N, 3|4, H, W] -> RGB, scale times larger (alpha only reaches RGBA models)."""
        m = self.model
        with cudnn_benchmark(self.speed.cudnn_benchmark if self.is_cuda else None):
            if self.tile:
                return forward_tiled(self.eager_module, x, m.scale, m.size_multiple, tile=self.tile,
                                     pad=self.speed.tile_pad, minimum=m.min_size, square=m.square)
            return forward_padded(self.module, x, m.scale, m.size_multiple, minimum=m.min_size, square=m.square)

    def _finish(self, y: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        y = self._resize(y)
        if alpha.shape[1]:
            # Alpha is a smooth mask: a filter keeps its edges clean where the network would add halos.
            y = torch.cat([y, self._resize(alpha.to(y.dtype))], dim=1)
        return self.formatter(y.clamp_(0, 1))

    def _resize(self, y: torch.Tensor) -> torch.Tensor:
        if (y.shape[-1], y.shape[-2]) == (self.out_w, self.out_h):
            return y
        # Antialiased, so downscaling the x4 output (for -s 2) does not alias.
        return F.interpolate(y, size=(self.out_h, self.out_w), mode="bicubic", align_corners=False, antialias=True)

    def _output_buffer(self, like: torch.Tensor, frames: int) -> torch.Tensor:
        """Room for the whole batch's output: on the device, or in host memory if the device has none left."""
        try:
            return like.new_empty((frames, *like.shape[1:]))
        except Exception as exc:
            if not is_oom(exc):
                raise
            self._free_cached_memory()
            log.warning("out of memory: keeping this batch's output in host memory")
            return torch.empty((frames, *like.shape[1:]), dtype=like.dtype)

    def _free_cached_memory(self) -> None:
        if self.is_cuda:
            torch.cuda.empty_cache()

    def _shrink(self, failed_batch: int, frame_hw: torch.Size) -> bool:
        """After an out-of-memory error: halve the batch, then tile, then shrink tiles. False if out of options."""
        self._free_cached_memory()
        if failed_batch > 1:
            self.micro_batch = failed_batch // 2
            log.warning("out of memory: retrying with %d frame(s) per network call", self.micro_batch)
            return True
        if not self.tile:
            self.tile = max(_MIN_TILE, 1 << (max(frame_hw) - 1).bit_length() >> 1)
        elif self.tile > _MIN_TILE:
            self.tile = max(_MIN_TILE, self.tile // 2)
        else:
            return False
        log.warning("out of memory: retrying in %dx%d tiles", self.tile, self.tile)
        return True
