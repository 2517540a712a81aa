"""U-Net discriminator with spectral normalisation (the GAN stage's critic).

It judges every output pixel rather than the whole image: an encoder of three stride-2
convolutions, a decoder that upsamples back with additive skip connections, and a
one-channel logit map at the input's resolution. Spectral normalisation on the inner
convolutions keeps the critic Lipschitz-bounded, which steadies the adversarial game.

Parameter names follow Real-ESRGAN's ``UNetDiscriminatorSN`` (``conv0`` ... ``conv9``,
with ``weight_orig``/``weight_u``/``weight_v`` of :func:`torch.nn.utils.spectral_norm`),
so its released ``net_d`` checkpoints load with ``strict=True``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

_SLOPE = 0.2


def _sn_conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, 1, bias=False))


class UNetDiscriminatorSN(nn.Module):
    """``[N, C, H, W]`` images -> ``[N, 1, H, W]`` real/fake logits; H and W multiples of 8."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        f = num_feat
        self.skip_connection = skip_connection
        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        # encoder: halve the size, double the channels
        self.conv1 = _sn_conv(f, f * 2, 4, 2)
        self.conv2 = _sn_conv(f * 2, f * 4, 4, 2)
        self.conv3 = _sn_conv(f * 4, f * 8, 4, 2)
        # decoder: back up, joined to the encoder's features of the same size
        self.conv4 = _sn_conv(f * 8, f * 4, 3, 1)
        self.conv5 = _sn_conv(f * 4, f * 2, 3, 1)
        self.conv6 = _sn_conv(f * 2, f, 3, 1)
        # head
        self.conv7 = _sn_conv(f, f, 3, 1)
        self.conv8 = _sn_conv(f, f, 3, 1)
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"the U-Net discriminator needs H and W multiples of 8, got {tuple(x.shape[-2:])}")
        x0 = F.leaky_relu(self.conv0(x), _SLOPE)
        x1 = F.leaky_relu(self.conv1(x0), _SLOPE)
        x2 = F.leaky_relu(self.conv2(x1), _SLOPE)
        x3 = F.leaky_relu(self.conv3(x2), _SLOPE)

        y = x3
        for conv, skip in ((self.conv4, x2), (self.conv5, x1), (self.conv6, x0)):
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            y = F.leaky_relu(conv(y), _SLOPE)
            if self.skip_connection:
                y = y + skip

        y = F.leaky_relu(self.conv7(y), _SLOPE)
        y = F.leaky_relu(self.conv8(y), _SLOPE)
        return self.conv9(y)
