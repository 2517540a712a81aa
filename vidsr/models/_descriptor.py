"""What the engine is told about a loaded model, and what `vidsr models` lists."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass(frozen=True, eq=False)
class ModelDescriptor:
    """A loaded model and the contract for running it.

    ``module`` takes float32 NCHW RGB in [0, 1], with H and W multiples of
    ``size_multiple``, and returns NCHW RGB ``scale`` times larger. The output is not
    clamped: callers clamp after any blending they do. The module is in eval mode, on
    CPU, in float32 with gradients off; the caller moves and casts it.
    ``supports_half`` says float16/bfloat16 inference gives usable results.
    """

    name: str
    architecture: str
    module: nn.Module = field(repr=False)
    scale: int
    num_params: int
    source: str
    size_multiple: int = 1
    supports_half: bool = True


@dataclass(frozen=True)
class ModelInfo:
    """One named model, as listed by ``list_models()`` without loading its weights."""

    name: str
    aliases: tuple[str, ...]
    architecture: str
    scale: int
    num_params: int
    source: str
