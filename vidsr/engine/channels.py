"""Frames as the engine holds them (RGB, plus alpha where the input has it) to a network of any channel count.

The engine works in RGB. A network that takes another channel count is run so that the
picture keeps its colour and a gray picture gets exactly the network's own output:

* 1 channel (gray models): each colour plane goes through the network on its own, folded
  into the batch. Gray frames, whose three planes are equal, give the network's gray
  output in all three; colour frames keep their colour. It costs three network calls.
* 4 channels (RGBA models): RGB plus the frame's alpha where the frames bring it (video
  with alpha), else an opaque plane (still images hand the network their colour only, with
  transparent pixels filled: see image.py). The network's own alpha output is dropped:
  alpha is resized by the engine, as for every model, because a filter keeps mask edges clean.
* Output channels: 3 as they are; 4 lose alpha; 1 (a gray result) is repeated into RGB.
"""
from __future__ import annotations

import torch
from torch import nn

from vidsr.errors import ModelError
from vidsr.models import ModelDescriptor

_INPUTS = (1, 3, 4)
_OUTPUTS = (1, 3, 4)


class RGBNetwork(nn.Module):
    """``net`` with RGB(A) [N, 3|4, H, W] in and RGB [N, 3, H', W'] out."""

    def __init__(self, net: nn.Module, input_channels: int, output_channels: int) -> None:
        super().__init__()
        self.net = net
        self.input_channels = input_channels
        self.output_channels = output_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.input_channels == 1:
            y = self.net(x[:, :3].reshape(n * 3, 1, h, w))
            return y.reshape(n, 3, *y.shape[-2:])
        if self.input_channels == 4:
            x = x if x.shape[1] == 4 else torch.cat([x, x.new_ones((n, 1, h, w))], dim=1)
        else:
            x = x[:, :3]
        y = self.net(x)
        return y.repeat(1, 3, 1, 1) if self.output_channels == 1 else y[:, :3]


def rgb_network(model: ModelDescriptor) -> nn.Module:
    """The model's module, taking and giving RGB frames; the module itself for an RGB -> RGB model."""
    cin, cout = model.input_channels, model.output_channels
    if cin not in _INPUTS or cout not in _OUTPUTS or (cin == 1 and cout != 1):
        raise ModelError(f"{model.name}: {model.architecture} maps {cin} to {cout} channel(s); vidsr runs "
                         "models that take 1 (gray), 3 (RGB) or 4 (RGBA) channels and give as many, or RGB")
    if (cin, cout) == (3, 3):
        return model.module
    return RGBNetwork(model.module, cin, cout)
