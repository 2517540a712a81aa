"""Exponential moving average of the generator's weights (what gets exported)."""
from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn


class ModelEMA:
    """``ema = decay * ema + (1 - decay) * net`` after every optimiser step (BasicSR's ``model_ema``)."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in net.parameters()]
        weight = 1.0 - self.decay
        if hasattr(torch, "_foreach_lerp_"):
            torch._foreach_lerp_(ema_params, params, weight)
        else:  # pragma: no cover - very old torch
            for e, p in zip(ema_params, params):
                e.lerp_(p, weight)
        for e, b in zip(self.module.buffers(), net.buffers()):
            e.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state_dict, strict=True)
