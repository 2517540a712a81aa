"""The one list of architectures vidsr can load, and detection over it."""
from __future__ import annotations

from collections.abc import Sequence

from vidsr.errors import UnknownArchitectureError
from vidsr.models import compact, rrdb
from vidsr.models._architecture import Architecture, NetKwargs, StateDict
from vidsr.models._ncnn_format import NcnnLayer

# Order matters only if two detectors could accept the same weights; they cannot today.
ARCHITECTURES: tuple[Architecture, ...] = (
    compact.ARCHITECTURE,
    rrdb.ARCHITECTURE,
)


def _names() -> str:
    return ", ".join(arch.name for arch in ARCHITECTURES)


def _summary(keys: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def detect_state_dict(state_dict: StateDict, source: str) -> tuple[Architecture, NetKwargs]:
    """Find the architecture whose parameter names and shapes fit ``state_dict``."""
    for arch in ARCHITECTURES:
        kwargs = arch.detect(state_dict)
        if kwargs is not None:
            return arch, kwargs
    raise UnknownArchitectureError(
        f"{source}: weights match no known architecture ({_names()}); "
        f"saw keys {_summary(list(state_dict)) or '(none)'}"
    )


def detect_ncnn(layers: Sequence[NcnnLayer], source: str) -> tuple[Architecture, NetKwargs]:
    """Find the architecture whose ncnn graph fits ``layers``."""
    for arch in ARCHITECTURES:
        kwargs = arch.detect_ncnn(layers)
        if kwargs is not None:
            return arch, kwargs
    types = sorted({layer.type for layer in layers})
    raise UnknownArchitectureError(
        f"{source}: ncnn graph matches no known architecture ({_names()}); "
        f"saw layer types {', '.join(types) or '(none)'}"
    )
