"""Frames in, larger frames out: the network plus everything around it on the device."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from vidsr.io.encode import needs_even_size
from vidsr.models import ModelDescriptor


def output_size(width: int, height: int, scale: float, pix_fmt: str | None = None) -> tuple[int, int]:
    """round(scale x size); moved to the nearest even number only where `pix_fmt` subsamples chroma."""
    even_w, even_h = needs_even_size(pix_fmt) if pix_fmt else (False, False)

    def one(n: int, even: bool) -> int:
        exact = n * scale
        return max(2, 2 * math.floor(exact / 2 + 0.5)) if even else max(1, math.floor(exact + 0.5))

    return one(width, even_w), one(height, even_h)


class FrameUpscaler:
    """Runs a model on uint8 RGB batches and returns uint8 RGB batches of the output size.

    All float work (normalisation, padding, the network, the resize to the requested
    scale, clamping and rounding) happens on the model's device, so the host only
    moves bytes.
    """

    def __init__(self, model: ModelDescriptor, *, device: torch.device, dtype: torch.dtype,
                 out_size: tuple[int, int]) -> None:
        self.model = model
        self.device = device
        self.dtype = dtype
        self.out_w, self.out_h = out_size
        self.module = model.module.to(device=device, dtype=dtype).eval()

    @torch.inference_mode()
    def upscale_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """float NCHW in [0,1] on the device -> float NCHW in [0,1] at the output size."""
        h, w = x.shape[-2:]
        m = self.model.size_multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        y = self.module(x)
        s = self.model.scale
        y = y[..., : h * s, : w * s]
        if (y.shape[-1], y.shape[-2]) != (self.out_w, self.out_h):
            # Antialiased so downscaling the x4 output (e.g. for -s 2) does not alias.
            y = F.interpolate(y, size=(self.out_h, self.out_w), mode="bicubic", align_corners=False,
                              antialias=True)
        return y.clamp_(0, 1)

    @torch.inference_mode()
    def __call__(self, rgb: np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 [N,H,W,3] (host) -> uint8 [N,OH,OW,3] (host numpy)."""
        t = torch.from_numpy(rgb) if isinstance(rgb, np.ndarray) else rgb
        if self.device.type == "cuda" and not t.is_pinned():
            t = t.pin_memory()
        t = t.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        x = t.to(self.dtype).div_(255)
        y = self.upscale_tensor(x)
        out = y.mul_(255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        return out.cpu().numpy()
