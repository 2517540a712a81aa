"""Running a network on pieces of a frame, for frames that do not fit in memory.

Each tile is run with `pad` pixels of real context on every side that has a
neighbour, and only its centre is kept, so seams fall where the network saw the
same surroundings as it would on the whole frame.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def forward_padded(module: nn.Module, x: torch.Tensor, scale: int, multiple: int) -> torch.Tensor:
    """module(x), reflect-padding H and W up to `multiple` and cropping the result back."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    y = module(x)
    return y[..., : h * scale, : w * scale] if (pad_h or pad_w) else y


def forward_tiled(module: nn.Module, x: torch.Tensor, scale: int, multiple: int, *, tile: int,
                  pad: int) -> torch.Tensor:
    """The same result as forward_padded (up to the network's receptive field beyond `pad`)."""
    n, _, h, w = x.shape
    out: torch.Tensor | None = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - pad, 0), max(left - pad, 0)
            t1, l1 = min(bottom + pad, h), min(right + pad, w)
            y = forward_padded(module, x[..., t0:t1, l0:l1], scale, multiple)
            if out is None:
                out = y.new_empty((n, y.shape[1], h * scale, w * scale))
            out[..., top * scale:bottom * scale, left * scale:right * scale] = \
                y[..., (top - t0) * scale:(bottom - t0) * scale, (left - l0) * scale:(right - l0) * scale]
    assert out is not None
    return out
