"""Exporting the trained (EMA) generator for ``vidsr upscale --model``."""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
from torch import nn

from vidsr.errors import ModelError
from vidsr.models import load_model, save_pth, save_safetensors

log = logging.getLogger(__name__)


def export_generator(net: nn.Module, stem: Path, *, check: bool = True) -> tuple[Path, Path]:
    """Write ``stem.safetensors`` and ``stem.pth`` (Real-ESRGAN's ``{'params_ema': ...}``).

    With ``check``, both files are loaded back through :func:`vidsr.models.load_model`
    (architecture detection included) and compared with ``net``'s weights.
    """
    stem.parent.mkdir(parents=True, exist_ok=True)
    module = copy.deepcopy(net).float().to("cpu").to(memory_format=torch.contiguous_format)
    paths = (save_safetensors(module, stem.with_suffix(".safetensors")), save_pth(module, stem.with_suffix(".pth")))
    if check:
        want = module.state_dict()
        for path in paths:
            got = load_model(path).module.state_dict()
            if got.keys() != want.keys() or any(not torch.equal(got[k], want[k]) for k in want):
                raise ModelError(f"{path} does not load back as the trained network")
    log.info("exported %s and %s", *paths)
    return paths
