"""What the registry needs to know about one network architecture."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vidsr.models._ncnn_format import NcnnLayer

StateDict = Mapping[str, torch.Tensor]
NetKwargs = dict[str, int | str]


@dataclass(frozen=True)
class Architecture:
    """How to recognise one architecture and build it with the right sizes.

    ``detect`` and ``detect_ncnn`` return the constructor keyword arguments, or None when
    the weights are not of this architecture. They only look at names and shapes; loading
    with ``strict=True`` afterwards is what proves the guess.
    """

    name: str
    net_class: Callable[..., nn.Module]
    detect: Callable[[StateDict], NetKwargs | None]
    detect_ncnn: Callable[[Sequence[NcnnLayer]], NetKwargs | None]
    scale: Callable[[NetKwargs], int]
    size_multiple: Callable[[NetKwargs], int]
    #: The name a training config gives it (``network.arch``), and how that config's fields and a
    #: net scale become constructor arguments; None where vidsr does not train the architecture.
    train_name: str | None = None
    train_kwargs: Callable[[Any, int], NetKwargs] | None = None

    def build(self, kwargs: NetKwargs) -> nn.Module:
        return self.net_class(**kwargs)
