"""What the engine is told about a loaded model, and what `vidsr models` lists."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass(frozen=True, eq=False)
class ModelDescriptor:
    """A loaded model and the contract for running it.

    ``module`` takes float NCHW images in [0, 1] with ``input_channels`` channels (3: RGB,
    1: gray, 4: RGBA) and returns NCHW images with ``output_channels`` channels, ``scale``
    times larger. H and W must be multiples of ``size_multiple`` and at least
    ``min_size`` (and equal, where ``square``): the engine pads to that and crops the result.
    The output is not clamped: callers clamp after any blending they do. The module is in
    eval mode, on CPU, in float32 with gradients off; the caller moves and casts it.
    ``supports_half`` says float16 inference gives usable results, ``supports_bf16`` the
    same for bfloat16. ``loader`` names the code that built the module: ``"vidsr"`` for
    this package's own networks (the official weights, ncnn imports, training) or
    ``"spandrel"`` for the community architectures that library detects.
    """

    name: str
    architecture: str
    module: nn.Module = field(repr=False)
    scale: int
    num_params: int
    source: str
    size_multiple: int = 1
    supports_half: bool = True
    supports_bf16: bool = True
    input_channels: int = 3
    output_channels: int = 3
    min_size: int = 0
    square: bool = False
    loader: str = "vidsr"
    tags: tuple[str, ...] = ()

    @property
    def precisions(self) -> tuple[str, ...]:
        """The --precision values this model runs in with usable results."""
        return ("fp32",) + (("fp16",) if self.supports_half else ()) + (("bf16",) if self.supports_bf16 else ())


@dataclass(frozen=True)
class ModelInfo:
    """One named model, as listed by ``list_models()`` without loading its weights."""

    name: str
    aliases: tuple[str, ...]
    architecture: str
    scale: int
    num_params: int
    source: str
