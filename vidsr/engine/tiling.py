"""Running a network on pieces of a frame, for frames that do not fit in memory.

Each tile is run with `pad` pixels of real context on every side that has a
neighbour, and only its centre is kept, so seams fall where the network saw the
same surroundings as it would on the whole frame.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def padded_size(h: int, w: int, multiple: int, minimum: int = 0, square: bool = False) -> tuple[int, int]:
    """The smallest (H, W) >= (h, w) that is a multiple of `multiple`, at least `minimum`, and square if asked."""
    ph, pw = (-(-max(n, minimum) // multiple) * multiple for n in (h, w))
    return (max(ph, pw),) * 2 if square else (ph, pw)  # type: ignore[return-value]


def forward_padded(module: nn.Module, x: torch.Tensor, scale: int, multiple: int, *, minimum: int = 0,
                   square: bool = False) -> torch.Tensor:
    """module(x), padding H and W up to what the network needs (see padded_size) and cropping the result back.

    The padding mirrors the picture; beyond what a mirror can reach (a frame smaller than
    the padding) the edge repeats. This is the padding spandrel's own call applies.
    """
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, w, multiple, minimum, square)
    if (ph, pw) == (h, w):
        return module(x)
    reflect_h, reflect_w = min(ph - h, h - 1), min(pw - w, w - 1)
    x = F.pad(x, (0, reflect_w, 0, reflect_h), mode="reflect")
    if (reflect_h, reflect_w) != (ph - h, pw - w):
        x = F.pad(x, (0, pw - w - reflect_w, 0, ph - h - reflect_h), mode="replicate")
    return module(x)[..., : h * scale, : w * scale]


def forward_tiled(module: nn.Module, x: torch.Tensor, scale: int, multiple: int, *, tile: int,
                  pad: int, minimum: int = 0, square: bool = False) -> torch.Tensor:
    """The same result as forward_padded (up to the network's receptive field beyond `pad`)."""
    n, _, h, w = x.shape
    out: torch.Tensor | None = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - pad, 0), max(left - pad, 0)
            t1, l1 = min(bottom + pad, h), min(right + pad, w)
            y = forward_padded(module, x[..., t0:t1, l0:l1], scale, multiple, minimum=minimum, square=square)
            if out is None:
                out = y.new_empty((n, y.shape[1], h * scale, w * scale))
            out[..., top * scale:bottom * scale, left * scale:right * scale] = \
                y[..., (top - t0) * scale:(bottom - t0) * scale, (left - l0) * scale:(right - l0) * scale]
    assert out is not None
    return out
