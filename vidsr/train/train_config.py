"""Typed, frozen configuration of a training run, loaded from YAML.

A run is one network trained through one or more stages, Real-ESRGAN style: an L1 stage
(RealESRNet) and a GAN stage that starts from the first stage's EMA weights. Everything
lives in one YAML file under ``vidsr/configs/train/``; unknown keys are rejected with their
dotted path (the loader is :func:`vidsr.yaml_config.build_dataclass`).
Command-line overrides (``--data``, ``--steps``) build a new config with
:func:`dataclasses.replace` before the run starts; nothing is changed while it runs.
"""
from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vidsr.errors import OptionError
from vidsr.models.registry import trainable
from vidsr.yaml_config import CONFIGS_ROOT, find_config, load_yaml_config, to_plain

ActType = Literal["prelu", "relu"]
AmpMode = Literal["bf16", "fp16", "off"]
CodecPoolKind = Literal["processes", "threads"]

# Folder of the shipped configurations: vidsr/configs/train/.
CONFIG_DIR = CONFIGS_ROOT / "train"

# VGG19 layer names, in the order of torchvision's ``vgg19().features``.
_VGG19_BLOCKS = (2, 2, 4, 4, 4)


def vgg19_layer_names() -> tuple[str, ...]:
    """``conv1_1, relu1_1, conv1_2, ..., pool5``: the modules of torchvision's VGG19 ``features``."""
    names: list[str] = []
    for block, convs in enumerate(_VGG19_BLOCKS, start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


VGG19_LAYERS = vgg19_layer_names()
REALESRGAN_PERCEPTUAL_LAYERS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}


def _positive(value: float, where: str) -> None:
    if not value > 0:
        raise OptionError(f"{where} must be > 0, got {value}")


@dataclass(frozen=True)
class NetworkConfig:
    """The generator: an SRVGGNetCompact (animevideov3-style) or an RRDBNet (x4plus-style)."""

    arch: str  #: an architecture's training name in the models registry: compact or rrdb
    scale: int
    num_feat: int
    num_conv: int | None = None  #: compact only
    act_type: ActType | None = None  #: compact only; leakyrelu is not offered: its weights read back as relu
    num_block: int | None = None  #: rrdb only
    num_grow_ch: int | None = None  #: rrdb only
    pretrained: str | None = None  #: a model name or weights file to fine-tune (loaded with strict=True)
    #: compact only: the network's own upscale when it differs from ``scale``, its output
    #: then resized bicubically to ``scale`` (the official animevideov3-x2 and -x3 are the
    #: x4 net so resized); None: the net upscales by ``scale`` itself
    net_scale: int | None = None

    def __post_init__(self) -> None:
        if self.arch not in trainable():
            raise OptionError(f"network.arch must be one of {list(trainable())}, got {self.arch!r}")
        _positive(self.num_feat, "num_feat")
        if self.net_scale is not None:
            if self.arch != "compact":
                raise OptionError("net_scale is a compact setting")
            if self.net_scale not in (1, 2, 3, 4) or self.net_scale < self.scale:
                raise OptionError(f"net_scale must be 1, 2, 3 or 4 and at least the scale ({self.scale}), "
                                  f"got {self.net_scale}")
        if self.arch == "compact":
            if self.scale not in (1, 2, 3, 4):
                raise OptionError(f"a compact net's scale must be 1, 2, 3 or 4, got {self.scale}")
            if self.num_conv is None or self.num_conv < 1:
                raise OptionError(f"a compact net needs num_conv >= 1, got {self.num_conv}")
            if self.num_block is not None or self.num_grow_ch is not None:
                raise OptionError("num_block and num_grow_ch are rrdb settings; a compact net has num_conv")
        else:
            if self.scale not in (1, 2, 4):
                raise OptionError(f"an rrdb net's scale must be 1, 2 or 4, got {self.scale}")
            if self.num_block is None or self.num_block < 1 or self.num_grow_ch is None or self.num_grow_ch < 1:
                raise OptionError("an rrdb net needs num_block >= 1 and num_grow_ch >= 1")
            if self.num_conv is not None or self.act_type is not None:
                raise OptionError("num_conv and act_type are compact settings; an rrdb net has num_block")


@dataclass(frozen=True)
class DiscriminatorConfig:
    """The U-Net discriminator with spectral normalisation of the GAN stage."""

    num_feat: int = 64
    skip_connection: bool = True
    pretrained: str | None = None  #: a Real-ESRGAN net_d .pth to fine-tune from

    def __post_init__(self) -> None:
        _positive(self.num_feat, "num_feat")


@dataclass(frozen=True)
class DataConfig:
    """Where HR patches come from and how they are cut."""

    paths: tuple[str, ...]  #: image/video files or folders (searched recursively); --data replaces them
    gt_size: int  #: side of the HR crops
    clip_frames: int = 5  #: consecutive video frames per sample (real motion for the codec stage)
    hflip: bool = True
    rot90: bool = False  #: also vertical flips and transposes (Real-ESRGAN's use_rot)
    cache_images: bool = True  #: keep decoded images in memory (decode each once)
    holdout: tuple[str, ...] = ()  #: file names (or stems) kept out of training, for validation
    load_threads: int = 4

    def __post_init__(self) -> None:
        if self.gt_size < 8:
            raise OptionError(f"gt_size must be >= 8, got {self.gt_size}")
        if self.clip_frames < 1:
            raise OptionError(f"clip_frames must be >= 1, got {self.clip_frames}")
        if self.load_threads < 1:
            raise OptionError(f"load_threads must be >= 1, got {self.load_threads}")


@dataclass(frozen=True)
class FeedConfig:
    """Degradation of HR patches into training pairs, and the shuffle pool."""

    degradation: str  #: a shipped degradation config name or a YAML path (relative: to this file)
    threads: int = 2  #: producer threads, each degrading whole batches on the training device
    #: video-encoder workers (processes, or threads), shared by the producers; None: one per
    #: CPU core, divided among the ranks of a machine under torchrun
    codec_workers: int | None = None
    codec_pool: CodecPoolKind = "processes"  #: processes (frames through shared memory) or threads
    prefetch: int = 4  #: batches degraded ahead of the trainer
    pool_size: int = 180  #: samples in the shuffle pool (a multiple of fresh_per_step)
    fresh_per_step: int | None = None  #: new samples entering the pool per step; None: the batch size

    def __post_init__(self) -> None:
        for name in ("threads", "prefetch", "pool_size"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.codec_workers is not None and self.codec_workers < 1:
            raise OptionError(f"codec_workers must be >= 1 or null, got {self.codec_workers}")
        if self.fresh_per_step is not None and self.fresh_per_step < 1:
            raise OptionError(f"fresh_per_step must be >= 1, got {self.fresh_per_step}")


@dataclass(frozen=True)
class ValidationConfig:
    """Fixed held-out degraded pairs, made once with a fixed seed and saved with the run."""

    pairs: int = 16
    gt_size: int = 256
    samples: int = 4  #: pairs drawn into the sample image at each validation
    seed: int = 1234

    def __post_init__(self) -> None:
        if self.pairs < 1 or self.gt_size < 8 or self.samples < 0:
            raise OptionError(f"validation needs pairs >= 1, gt_size >= 8, samples >= 0; "
                              f"got {self.pairs}, {self.gt_size}, {self.samples}")


@dataclass(frozen=True)
class LossConfig:
    """Weights of the generator's losses; 0 turns one off."""

    l1: float
    perceptual: float = 0.0
    gan: float = 0.0
    #: VGG19 layers (before their ReLU) and their weights; None: Real-ESRGAN's
    perceptual_layers: Mapping[str, float] | None = None
    l1_usm: bool = True  #: compare with the USM-sharpened ground truth, as Real-ESRGAN does
    perceptual_usm: bool = True
    gan_usm: bool = False

    def __post_init__(self) -> None:
        # A read-only view keeps the frozen dataclass frozen all the way down.
        layers = REALESRGAN_PERCEPTUAL_LAYERS if self.perceptual_layers is None else self.perceptual_layers
        object.__setattr__(self, "perceptual_layers", types.MappingProxyType(dict(layers)))
        for name in ("l1", "perceptual", "gan"):
            if getattr(self, name) < 0:
                raise OptionError(f"loss weight {name} must be >= 0, got {getattr(self, name)}")
        if self.l1 + self.perceptual + self.gan <= 0:
            raise OptionError("at least one loss weight must be > 0")
        unknown = sorted(set(self.perceptual_layers) - {n for n in VGG19_LAYERS if n.startswith("conv")})
        if unknown:
            raise OptionError(f"perceptual_layers has unknown VGG19 layer(s) {unknown}; "
                              f"allowed: conv1_1 ... conv5_4")
        if self.perceptual > 0 and not self.perceptual_layers:
            raise OptionError("perceptual_layers must name at least one layer when perceptual > 0")


@dataclass(frozen=True)
class StageConfig:
    """One stage: its losses, optimiser and schedule. Later stages start from the previous EMA."""

    name: str
    steps: int
    batch_size: int  #: per GPU
    lr_g: float
    losses: LossConfig
    lr_d: float | None = None  #: needed when losses.gan > 0
    ema_decay: float = 0.999
    betas: tuple[float, float] = (0.9, 0.99)
    lr_milestones: tuple[int, ...] = ()  #: steps where the learning rates are multiplied by lr_gamma
    lr_gamma: float = 0.5
    amp: AmpMode = "bf16"  #: autocast on CUDA (fp16 adds a gradient scaler); CPUs train in fp32
    checkpoint_every: int = 5000
    validate_every: int = 5000
    log_every: int = 100
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise OptionError(f"stage name must be a plain folder name, got {self.name!r}")
        for name in ("steps", "batch_size", "checkpoint_every", "validate_every", "log_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name} must be >= 1, got {getattr(self, name)}")
        _positive(self.lr_g, "lr_g")
        if self.losses.gan > 0:
            if self.lr_d is None:
                raise OptionError("lr_d is needed when losses.gan > 0")
            _positive(self.lr_d, "lr_d")
        if not 0.0 <= self.ema_decay < 1.0:
            raise OptionError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if list(self.lr_milestones) != sorted(self.lr_milestones):
            raise OptionError(f"lr_milestones must be increasing, got {list(self.lr_milestones)}")

    @property
    def uses_gan(self) -> bool:
        return self.losses.gan > 0


@dataclass(frozen=True)
class TrainConfig:
    """A whole run."""

    name: str
    seed: int
    network: NetworkConfig
    data: DataConfig
    feed: FeedConfig
    stages: tuple[StageConfig, ...]
    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    validation: ValidationConfig = ValidationConfig()
    channels_last: bool = True

    def __post_init__(self) -> None:
        if not self.stages:
            raise OptionError("stages must list at least one stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise OptionError(f"stage names must be unique, got {names}")
        scale = self.network.scale
        gan = any(s.uses_gan for s in self.stages)
        for where, size in (("data.gt_size", self.data.gt_size), ("validation.gt_size", self.validation.gt_size)):
            if size % scale:
                raise OptionError(f"{where} ({size}) must be a multiple of the scale {scale}")
            if gan and size % 8:
                raise OptionError(f"{where} ({size}) must be a multiple of 8 for the U-Net discriminator")
        pool, fresh = self.feed.pool_size, self.feed.fresh_per_step
        for s in self.stages:
            f = fresh or s.batch_size
            if f > s.batch_size:
                raise OptionError(f"feed.fresh_per_step ({f}) must not exceed stage {s.name!r}'s batch_size "
                                  f"({s.batch_size})")
            if pool % f or pool < s.batch_size:
                raise OptionError(f"feed.pool_size ({pool}) must be a multiple of fresh_per_step ({f}) and at "
                                  f"least stage {s.name!r}'s batch_size ({s.batch_size})")

    def stage(self, name: str) -> StageConfig:
        for s in self.stages:
            if s.name == name:
                return s
        raise OptionError(f"no stage named {name!r}; this config has {[s.name for s in self.stages]}")

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


def config_path(name_or_path: str | Path) -> Path:
    """Resolve a shipped config name (``compact_x4``) or a YAML path."""
    return find_config(name_or_path, "train")


def _resolve_degradation(value: str, base: Path) -> str:
    """A relative YAML path is taken relative to the training config's folder when it exists there."""
    p = Path(value)
    if p.suffix.lower() in (".yml", ".yaml") and not p.is_absolute() and (base / p).is_file():
        return str((base / p).resolve())
    return value


def load_train_config(name_or_path: str | Path) -> TrainConfig:
    """Load a :class:`TrainConfig` from a shipped name or a YAML file."""
    path = config_path(name_or_path)
    cfg = load_yaml_config(TrainConfig, path)
    feed = dataclasses.replace(cfg.feed, degradation=_resolve_degradation(cfg.feed.degradation, path.parent))
    return dataclasses.replace(cfg, feed=feed)


def with_overrides(cfg: TrainConfig, *, data: Sequence[str | Path] | None = None, steps: int | None = None,
                   holdout: Sequence[str] | None = None) -> TrainConfig:
    """A copy of ``cfg`` with command-line overrides: data paths, steps of every stage, held-out names."""
    if data is not None or holdout is not None:
        d = cfg.data
        d = dataclasses.replace(d, paths=tuple(str(p) for p in data) if data is not None else d.paths,
                                holdout=tuple(holdout) if holdout is not None else d.holdout)
        cfg = dataclasses.replace(cfg, data=d)
    if steps is not None:
        if steps < 1:
            raise OptionError(f"--steps must be >= 1, got {steps}")
        cfg = dataclasses.replace(cfg, stages=tuple(dataclasses.replace(s, steps=steps) for s in cfg.stages))
    return cfg

