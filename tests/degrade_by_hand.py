"""A test oracle: one sample degraded from its recorded parameters, one single-image operation at a time."""
from __future__ import annotations

import torch

from vidsr.degrade import SampleParams, ops
from vidsr.degrade.high_order import OrderParams
from vidsr.degrade.kernels import make_kernel


def order_by_hand(x: torch.Tensor, o: OrderParams | None, base: tuple[int, int] | None) -> torch.Tensor:
    if o is None:
        return x
    if o.kernel is not None:
        x = ops.blur(x, make_kernel(o.kernel, pad_to=None)).clamp(0, 1)
    h, w = base if base is not None else x.shape[-2:]
    x = ops.resize(x, (max(1, int(h * o.resize.factor)), max(1, int(w * o.resize.factor))), o.resize.mode).clamp(0, 1)
    g = torch.Generator().manual_seed(o.noise.seed)
    if o.noise.kind == "gaussian":
        x = ops.add_gaussian_noise(x, o.noise.level, o.noise.gray, generator=g)
    else:
        x = ops.add_poisson_noise(x, o.noise.level, o.noise.gray, generator=g)
    return ops.jpeg(x, o.jpeg_quality) if o.jpeg_quality is not None else x


def degrade_by_hand(hr: torch.Tensor, p: SampleParams, lr_size: tuple[int, int]) -> torch.Tensor:
    """hr [1,3,H,W] -> float LR [1,3,*lr_size], not yet quantised; the codec stage is not covered."""
    x = ops.usm_sharpen(hr)
    x = order_by_hand(x, p.first, None)
    x = order_by_hand(x, p.second, lr_size)

    def resize_sinc(y: torch.Tensor) -> torch.Tensor:
        y = ops.resize(y, lr_size, p.final.mode).clamp(0, 1)
        return y if p.final.sinc.kind == "pulse" else ops.blur(y, make_kernel(p.final.sinc, None)).clamp(0, 1)

    assert p.final.jpeg_quality is not None
    if p.final.resize_first:
        return ops.jpeg(resize_sinc(x), p.final.jpeg_quality)
    return resize_sinc(ops.jpeg(x, p.final.jpeg_quality))
