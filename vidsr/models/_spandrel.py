"""Community architectures through spandrel: SPAN, RealCUGAN, RCAN, PLKSR, DAT, SwinIR, HAT, OmniSR...

spandrel detects some forty architectures from their state dicts and builds each with its
scale, channels, size requirements and half-precision safety. It is imported here only, and
only for files vidsr's own networks do not recognise, so the official weights do not pay
its import time (a second or two).
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import torch
from torch import nn

from vidsr.errors import ModelError, UnknownArchitectureError
from vidsr.models._checkpoint import Checkpoint
from vidsr.models._descriptor import ModelDescriptor

log = logging.getLogger(__name__)


class SpandrelNet(nn.Module):
    """A network spandrel built, called the way its descriptor calls it, on a copy of the input.

    The copy: some of these nets scale their input in place (RCAN: ``x *= rgb_range``), and the
    engine's frames must survive a call, because tiles overlap and an out-of-memory retry runs
    the same frames again. It costs one copy of the input, next to a whole network.
    Nets whose descriptor runs them through a function of its own (adding a noise-level map,
    picking one of several outputs) get a batch one image at a time, since those functions
    build their extras for one image.
    """

    def __init__(self, net: nn.Module, call: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None) -> None:
        super().__init__()
        self.net = net
        self.call = call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        if self.call is None:
            return self.net(x)
        return torch.cat([self.call(self.net, x[i:i + 1]) for i in range(x.shape[0])])


def _module(descriptor: object) -> SpandrelNet:
    net: nn.Module = descriptor.model  # type: ignore[attr-defined]
    call = getattr(descriptor, "_call_fn", None)
    # spandrel's default is `lambda model, image: model(image)`, defined in ImageModelDescriptor.__init__.
    if call is not None and getattr(call, "__qualname__", "").startswith("ImageModelDescriptor.__init__"):
        call = None
    return SpandrelNet(net, call)


def load_with_spandrel(checkpoint: Checkpoint, *, name: str, source: str) -> ModelDescriptor:
    """Build the model spandrel detects in ``checkpoint``; UnknownArchitectureError if none fits."""
    try:
        import spandrel
    except ImportError as exc:
        raise UnknownArchitectureError(
            f"{source}: not a Real-ESRGAN compact/RRDB net ({checkpoint.summary()}), and spandrel, which "
            "knows some forty other architectures, is not installed: pip install 'spandrel>=0.4.1,<0.5'"
        ) from exc
    state_dict = spandrel.canonicalize_state_dict(dict(checkpoint.state_dict))
    support = next((s for s in spandrel.MAIN_REGISTRY.architectures("detection") if s.detect(state_dict)), None)
    if support is None:
        raise UnknownArchitectureError(
            f"{source}: matches no architecture vidsr or spandrel {spandrel.__version__} knows; "
            f"found {checkpoint.summary()}")
    arch = support.architecture
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch init/meshgrid deprecation chatter from model constructors
            descriptor = arch.load(state_dict)
    except Exception as exc:  # shapes or hyperparameters spandrel's detector did not foresee
        raise ModelError(f"{source}: looks like {arch.name} (spandrel) but does not load: "
                         f"{' '.join(str(exc).split())[:300]}") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ModelError(f"{source}: {arch.name} is an {descriptor.purpose.lower()} model (image plus mask); "
                         "vidsr runs image-to-image models only")
    if descriptor.purpose == "FaceSR":
        raise ModelError(f"{source}: {arch.name} restores aligned face crops, not whole frames; "
                         "vidsr runs super-resolution and restoration models only")
    module = _module(descriptor).float().eval().requires_grad_(False)
    req = descriptor.size_requirements
    log.debug("loaded %s as %s %s via spandrel from %s", name, arch.name, descriptor.tags, source)
    return ModelDescriptor(
        name=name,
        architecture=arch.name,
        module=module,
        scale=int(descriptor.scale),
        num_params=sum(p.numel() for p in descriptor.model.parameters()),
        source=source,
        size_multiple=int(req.multiple_of),
        supports_half=bool(descriptor.supports_half),
        supports_bf16=bool(descriptor.supports_bfloat16),
        input_channels=int(descriptor.input_channels),
        output_channels=int(descriptor.output_channels),
        min_size=int(req.minimum),
        square=bool(req.square),
        loader="spandrel",
        tags=tuple(descriptor.tags),
    )
