"""Small real networks for tests where the pixels are not the point (faults, damage, timing).

Both are SRVGGNetCompact (the animevideov3 architecture) at x2, built by vidsr's own class:
`tiny` with seeded random weights, `nearest` with its last convolution zeroed, which makes the
network exactly a nearest-neighbour x2 upscaler (its output is the upsampled input plus a
residual that is then zero), so colours can be checked exactly.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

from vidsr.models import ModelDescriptor, SRVGGNetCompact, save_safetensors


def _net(zero_residual: bool) -> SRVGGNetCompact:
    torch.manual_seed(0)
    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2).eval()
    if zero_residual:
        last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
    return net


def tiny_model(*, nearest: bool = False) -> ModelDescriptor:
    net = _net(nearest)
    return ModelDescriptor(name="nearest" if nearest else "tiny", architecture="SRVGGNetCompact", module=net,
                           scale=2, num_params=sum(p.numel() for p in net.parameters()), source="test")


def tiny_model_file(folder: Path, *, nearest: bool = False) -> Path:
    """The same network as a .safetensors file, for `vidsr upscale --model PATH`."""
    return save_safetensors(_net(nearest), folder / ("nearest_x2.safetensors" if nearest else "tiny_x2.safetensors"))


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny frames gain nothing from torch's intra-op threads, and on a busy 2-core machine their
    spin-waits make each small op 10x slower: run a test module's networks on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
