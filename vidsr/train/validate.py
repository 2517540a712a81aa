"""Validation on fixed held-out degraded pairs: PSNR and SSIM on Y, and sample images.

The pairs are cut from held-out files (``data.holdout``; from the training files when
none is held out), degraded once with a fixed seed and saved with the run, so every
validation of every stage, and of a resumed run, scores the same pairs.

Metrics follow BasicSR's ``calculate_psnr``/``calculate_ssim`` with ``test_y_channel``:
outputs rounded to 8 bits, BT.601 luma on the 16..235 scale, ``scale`` pixels cropped
from every border, SSIM with an 11x11 Gaussian window (sigma 1.5).
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidsr.degrade import DegradationConfig, HighOrderDegradation
from vidsr.io.image import write_image
from vidsr.train.data import PatchSampler
from vidsr.train.degrade_feed import degrade_patches
from vidsr.train.train_config import ValidationConfig

log = logging.getLogger(__name__)

_Y_WEIGHTS = (65.481, 128.553, 24.966)  # BT.601, RGB in [0, 1] -> Y in 16..235
_MIN_STD = 4.0  # crops flatter than this (std on 0..255) score nothing useful: drawn again


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` RGB in [0, 1] -> ``[N, 1, H, W]`` luma on the 0..255 scale (16..235), float64."""
    w = torch.tensor(_Y_WEIGHTS, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    return (x.double() * w).sum(dim=1, keepdim=True) + 16.0


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border:-border, border:-border] if border > 0 else x


def psnr_y(sr: torch.Tensor, gt: torch.Tensor, crop_border: int = 0) -> torch.Tensor:
    """PSNR in dB on Y, per image (``[N]``); inputs ``[N, 3, H, W]`` in [0, 1]."""
    a, b = _crop(rgb_to_y(sr), crop_border), _crop(rgb_to_y(gt), crop_border)
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / mse.clamp(min=1e-10))


def _gaussian_window(device: torch.device) -> torch.Tensor:
    ax = torch.arange(11, dtype=torch.float64, device=device) - 5
    g = torch.exp(-(ax**2) / (2 * 1.5**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_y(sr: torch.Tensor, gt: torch.Tensor, crop_border: int = 0) -> torch.Tensor:
    """SSIM on Y, per image (``[N]``); inputs ``[N, 3, H, W]`` in [0, 1]."""
    a, b = _crop(rgb_to_y(sr), crop_border), _crop(rgb_to_y(gt), crop_border)
    win = _gaussian_window(a.device)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = F.conv2d(a, win), F.conv2d(b, win)
    var_a = F.conv2d(a * a, win) - mu_a**2
    var_b = F.conv2d(b * b, win) - mu_b**2
    cov = F.conv2d(a * b, win) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.flatten(1).mean(1)


@dataclass(frozen=True)
class ValPairs:
    gt: torch.Tensor  #: [N, 3, S, S] uint8
    lr: torch.Tensor  #: [N, 3, S/scale, S/scale] uint8
    sources: tuple[str, ...]

    def save(self, path: Path) -> None:
        torch.save({"gt": self.gt.cpu(), "lr": self.lr.cpu(), "sources": list(self.sources)}, path)

    @classmethod
    def load(cls, path: Path) -> ValPairs:
        d = torch.load(path, map_location="cpu", weights_only=True)
        return cls(gt=d["gt"], lr=d["lr"], sources=tuple(d["sources"]))


def make_val_pairs(sampler: PatchSampler, degradation: DegradationConfig, cfg: ValidationConfig, *,
                   scale: int, device: torch.device) -> ValPairs:
    """``cfg.pairs`` degraded crops of ``cfg.gt_size``, drawn with ``cfg.seed`` (flat crops are redrawn)."""
    patches = []
    attempt = 0
    while len(patches) < cfg.pairs:
        p = sampler.sample((cfg.seed, 7, len(patches), attempt), size=cfg.gt_size)
        attempt += 1
        if p.frames[p.ref].float().std().item() < _MIN_STD and attempt < 20:
            continue
        patches.append(p)
        attempt = 0
    if getattr(degradation, "draw", "per_sample") != "per_sample":
        # Every pair its own draw: a per-batch draw would give all pairs one resize and noise kind.
        degradation = dataclasses.replace(degradation, draw="per_sample")
    with HighOrderDegradation(degradation, seed=cfg.seed) as deg:
        gt, lr = degrade_patches(deg, patches, scale=scale, device=device)
    return ValPairs(gt=gt.cpu(), lr=lr.cpu(), sources=tuple(Path(p.source).name for p in patches))


@torch.no_grad()
def run_net(net: Callable[[torch.Tensor], torch.Tensor] | nn.Module, lr: torch.Tensor, *, device: torch.device,
            batch: int = 8) -> torch.Tensor:
    """``net`` on uint8 LR batches, in fp32; outputs rounded to 8 bits (uint8, on the CPU)."""
    outs = []
    for i in range(0, lr.shape[0], batch):
        x = lr[i:i + batch].to(device).float() / 255
        outs.append((net(x).clamp(0, 1) * 255).round().to(torch.uint8).cpu())
    return torch.cat(outs)


def bicubic(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upscaling of uint8 LR (the baseline), rounded to uint8."""
    x = F.interpolate(lr.float() / 255, scale_factor=scale, mode="bicubic", align_corners=False)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def score(out: torch.Tensor, gt: torch.Tensor, *, crop_border: int) -> dict[str, float]:
    """Mean PSNR/SSIM on Y of uint8 outputs against uint8 ground truth."""
    a, b = out.float() / 255, gt.float() / 255
    return {"psnr_y": float(psnr_y(a, b, crop_border).mean()), "ssim_y": float(ssim_y(a, b, crop_border).mean())}


def write_samples(path: Path, pairs: ValPairs, out: torch.Tensor, *, scale: int, count: int) -> Path | None:
    """A PNG with one row per pair: bicubic | network | ground truth."""
    if count <= 0:
        return None
    n = min(count, pairs.gt.shape[0])
    rows = [torch.cat([bicubic(pairs.lr[i:i + 1], scale)[0], out[i], pairs.gt[i]], dim=2) for i in range(n)]
    grid = torch.cat(rows, dim=1)
    write_image(path, grid.permute(1, 2, 0).contiguous().numpy(), format_path=path)
    return path

