"""SRVGGNetCompact: the small VGG-style network behind realesr-animevideov3 / general-x4v3."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

ActType = Literal["relu", "prelu", "leakyrelu"]
ACT_TYPES: tuple[ActType, ...] = ("relu", "prelu", "leakyrelu")


def _activation(act_type: ActType, num_feat: int) -> nn.Module:
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    return nn.LeakyReLU(negative_slope=0.1, inplace=True)


class SRVGGNetCompact(nn.Module):
    """Plain conv stack at input resolution, pixel shuffle, plus a nearest-upsampled skip.

    Parameter names match Real-ESRGAN (``body.0.weight`` ... ``body.{2*num_conv+2}.bias``)
    so official checkpoints load with ``strict=True``.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: ActType = "prelu",
    ) -> None:
        super().__init__()
        if act_type not in ACT_TYPES:
            raise ValueError(f"act_type must be one of {ACT_TYPES}, got {act_type!r}")
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.num_feat = num_feat
        self.num_conv = num_conv
        self.upscale = upscale
        self.act_type = act_type

        # Activations sit in the same ModuleList as the convs: that is what gives the
        # official checkpoints their odd body indices, so the layout must stay this way.
        self.body = nn.ModuleList([nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)])
        self.body.append(_activation(act_type, num_feat))
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(_activation(act_type, num_feat))
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        # The network only learns the residual over a nearest-neighbour upscale.
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
