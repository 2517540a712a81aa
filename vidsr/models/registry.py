"""The one list of vidsr's own architectures, and detection over it (spandrel knows the rest)."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from vidsr.errors import UnknownArchitectureError
from vidsr.models import compact, rrdb
from vidsr.models._architecture import Architecture, NetKwargs, StateDict
from vidsr.models._ncnn_format import NcnnLayer

# Order matters only if two detectors could accept the same weights; they cannot today.
ARCHITECTURES: tuple[Architecture, ...] = (
    compact.ARCHITECTURE,
    rrdb.ARCHITECTURE,
)


def trainable() -> dict[str, Architecture]:
    """The architectures vidsr trains, by the name a training config gives them (``network.arch``)."""
    return {arch.train_name: arch for arch in ARCHITECTURES if arch.train_name is not None}


def architecture_of(module: nn.Module) -> Architecture | None:
    """The registered architecture ``module`` is an instance of, or None."""
    return next((arch for arch in ARCHITECTURES if isinstance(module, arch.net_class)), None)


def names() -> str:
    return "/".join(arch.name for arch in ARCHITECTURES)


def find_state_dict_architecture(state_dict: StateDict) -> tuple[Architecture, NetKwargs] | None:
    """The architecture whose parameter names and shapes fit ``state_dict``, or None."""
    for arch in ARCHITECTURES:
        kwargs = arch.detect(state_dict)
        if kwargs is not None:
            return arch, kwargs
    return None


def detect_ncnn(layers: Sequence[NcnnLayer], source: str) -> tuple[Architecture, NetKwargs]:
    """Find the architecture whose ncnn graph fits ``layers``."""
    for arch in ARCHITECTURES:
        kwargs = arch.detect_ncnn(layers)
        if kwargs is not None:
            return arch, kwargs
    types = sorted({layer.type for layer in layers})
    raise UnknownArchitectureError(
        f"{source}: ncnn graph matches no known architecture ({names()}); "
        f"saw layer types {', '.join(types) or '(none)'}"
    )
