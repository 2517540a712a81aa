"""Fixed output resize that some ncnn exports append after the network."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResizedOutput(nn.Module):
    """Runs ``net`` then resizes its output bicubically by ``factor``.

    The animevideov3 x2/x3 ncnn exports are the x4 network followed by such a resize.
    PyTorch's bicubic (A=-0.75, half-pixel centres, clamped edges, no antialias) is the
    same filter as ncnn's Interp resize_type=3.
    """

    def __init__(self, net: nn.Module, factor: float) -> None:
        super().__init__()
        self.net = net
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            self.net(x), scale_factor=self.factor, mode="bicubic", align_corners=False, antialias=False
        )
