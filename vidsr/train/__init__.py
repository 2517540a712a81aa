"""Training Real-ESRGAN-family networks on your own video and images.

Two stages as Real-ESRGAN trains: L1 (RealESRNet), then L1 + perceptual + GAN against a
U-Net discriminator, on pairs made on the fly by :mod:`vidsr.degrade`::

    from vidsr.train import load_train_config, train, with_overrides

    cfg = with_overrides(load_train_config("compact_x4"), data=["clips/", "stills/"])
    result = train(cfg, "runs/compact_x4")
    result.exports   # (runs/compact_x4/compact_x4.safetensors, .../compact_x4.pth)

    # fine-tuning the official network instead (both stages, the same degradations):
    cfg = dataclasses.replace(cfg, network=with_pretrained(cfg.network, "animevideov3"))

The exports load with ``vidsr upscale --model PATH``. Under ``torchrun`` the same call
trains on every GPU with DDP. :class:`Trainer` runs one stage and exposes single steps.
"""
from __future__ import annotations

from vidsr.train.discriminator import UNetDiscriminatorSN
from vidsr.train.export import export_generator
from vidsr.train.generator import with_pretrained
from vidsr.train.losses import PerceptualLoss, load_vgg19_state_dict
from vidsr.train.results import StageResult, TrainResult
from vidsr.train.run_stages import replace_stage, train
from vidsr.train.train_config import (DataConfig, DiscriminatorConfig, FeedConfig, LossConfig, NetworkConfig,
                                      StageConfig, TrainConfig, ValidationConfig, load_train_config,
                                      with_overrides)
from vidsr.train.trainer import Trainer
from vidsr.train.validate import psnr_y, ssim_y

__all__ = [
    "DataConfig",
    "DiscriminatorConfig",
    "FeedConfig",
    "LossConfig",
    "NetworkConfig",
    "PerceptualLoss",
    "StageConfig",
    "StageResult",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "UNetDiscriminatorSN",
    "ValidationConfig",
    "export_generator",
    "load_train_config",
    "load_vgg19_state_dict",
    "psnr_y",
    "replace_stage",
    "ssim_y",
    "train",
    "with_overrides",
    "with_pretrained",
]
