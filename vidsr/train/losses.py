"""Losses of the two stages: L1, perceptual (VGG19 features before ReLU) and vanilla GAN.

The perceptual loss follows Real-ESRGAN (BasicSR's ``PerceptualLoss``): ImageNet-normalised
inputs, VGG19 features taken *before* their ReLU at the configured layers, an L1 distance
per layer, weighted and summed. VGG19 weights come from torchvision's own loading (its
hub cache, downloading if it can) or from a file given with ``--vgg-weights``; without
them the loss cannot be built and :class:`vidsr.errors.ModelError` says what to do.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidsr.errors import InputNotFoundError, ModelError
from vidsr.models import canonical_state_dict, read_state_dict
from vidsr.train.train_config import VGG19_LAYERS

log = logging.getLogger(__name__)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_TORCHVISION_VGG19 = "vgg19-dcbb9e9d.pth"  # torchvision's VGG19_Weights.IMAGENET1K_V1


def _vgg19_features() -> nn.Sequential:
    """VGG19's ``features`` with the same module indices as torchvision, ReLUs not in place."""
    layers: list[nn.Module] = []
    cin = 3
    for name in VGG19_LAYERS:
        if name.startswith("conv"):
            cout = 64 * 2 ** min(int(name[4]) - 1, 3)
            layers.append(nn.Conv2d(cin, cout, 3, 1, 1))
            cin = cout
        elif name.startswith("relu"):
            # Not in place: the conv output before it is one of the features we keep.
            layers.append(nn.ReLU(inplace=False))
        else:
            layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


def _features_only(raw: Mapping[str, object], source: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in canonical_state_dict(raw, source).items():
        if key.startswith("classifier."):
            continue
        out[key.removeprefix("features.")] = value
    if not out:
        raise ModelError(f"{source}: no VGG19 feature weights (features.N.weight) found")
    return out


def _torchvision_state_dict() -> dict[str, torch.Tensor]:
    from torchvision.models import VGG19_Weights

    try:
        raw = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as exc:  # urllib/OS/hash errors all mean: not available here
        cached = Path(torch.hub.get_dir()) / "checkpoints" / _TORCHVISION_VGG19
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ModelError(
            f"the perceptual loss needs VGG19 ImageNet weights: {cached} is not in the torch hub cache and "
            f"downloading it failed ({reason}); pass --vgg-weights PATH (torchvision's {_TORCHVISION_VGG19}) "
            f"or set losses.perceptual to 0") from None
    return _features_only(raw, "torchvision VGG19_Weights.IMAGENET1K_V1")


def load_vgg19_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """VGG19 ``features`` weights from ``path`` (.pth or .safetensors) or torchvision's cache/download."""
    if path is None:
        return _torchvision_state_dict()
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"--vgg-weights {path}: no such file")
    try:
        raw = read_state_dict(path)
    except ModelError as exc:
        raise ModelError(f"cannot read VGG19 weights from {path}: {exc}") from None
    return _features_only(raw, str(path))


class VGGFeatures(nn.Module):
    """Frozen VGG19 up to the deepest requested layer; returns ``{layer: features}``."""

    def __init__(self, layers: tuple[str, ...], state_dict: Mapping[str, torch.Tensor]) -> None:
        super().__init__()
        last = max(VGG19_LAYERS.index(n) for n in layers)
        full = _vgg19_features()
        try:
            full.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"VGG19 weights do not fit torchvision's vgg19 features: "
                             f"{' '.join(str(exc).split())[:300]}") from None
        self.body = nn.Sequential(*list(full.children())[:last + 1])
        self.keep = {VGG19_LAYERS.index(n): n for n in layers}
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:  # always a frozen feature extractor
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (x - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in self.keep:
                out[self.keep[i]] = x
        return out


class PerceptualLoss(nn.Module):
    """Sum over layers of ``weight * L1(vgg(x)[layer], vgg(gt)[layer])``."""

    def __init__(self, layer_weights: Mapping[str, float], state_dict: Mapping[str, torch.Tensor]) -> None:
        super().__init__()
        self.layer_weights = {k: float(v) for k, v in layer_weights.items() if v != 0}
        self.vgg = VGGFeatures(tuple(self.layer_weights), state_dict)

    def forward(self, x: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        fx = self.vgg(x)
        with torch.no_grad():
            fgt = self.vgg(gt)
        loss = x.new_zeros((), dtype=torch.float32)
        for name, w in self.layer_weights.items():
            loss = loss + w * F.l1_loss(fx[name].float(), fgt[name].float())
        return loss


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Vanilla GAN loss: binary cross-entropy of the logits against all-real or all-fake."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())
