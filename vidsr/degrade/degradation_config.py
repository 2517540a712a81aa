"""Typed, frozen configuration of the degradation pipeline, loaded from YAML.

Every number the pipeline draws from lives in a YAML file under ``vidsr/configs/degrade/``;
the dataclasses here have no defaults on purpose, so that a file which forgets a key
fails loudly instead of silently falling back to a number hidden in code (the one
exception, ``draw``, came later; its default keeps older files meaning what they meant).
Unknown keys are rejected with the dotted path of the key, so typos cannot pass unnoticed.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from vidsr.errors import OptionError
from vidsr.yaml_config import CONFIGS_ROOT, find_config, load_yaml_config

KernelType = Literal["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
ResizeMode = Literal["area", "bilinear", "bicubic"]
ResizeDirection = Literal["up", "down", "keep"]
CodecName = Literal["libx264", "libx265", "mpeg4", "libvpx-vp9"]
CodecPlace = Literal["final", "end"]
DrawMode = Literal["per_batch", "per_sample"]
JpegCodec = Literal["auto", "torch", "libjpeg"]

KERNEL_TYPES: tuple[str, ...] = get_args(KernelType)
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)
RESIZE_DIRECTIONS: tuple[str, ...] = get_args(ResizeDirection)
CODEC_NAMES: tuple[str, ...] = get_args(CodecName)
DRAW_MODES: tuple[str, ...] = get_args(DrawMode)

# Folder of the shipped configurations: vidsr/configs/degrade/.
CONFIG_DIR = CONFIGS_ROOT / "degrade"


def _check_prob(value: float, where: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise OptionError(f"{where} must be a probability in [0, 1], got {value}")


def _check_range(rng: tuple[float, float], where: str, *, low: float = -math.inf, high: float = math.inf) -> None:
    lo, hi = rng
    if not low <= lo <= hi <= high:
        raise OptionError(f"{where} must be [low, high] with {low} <= low <= high <= {high}, got [{lo}, {hi}]")


def _check_distribution(probs: Mapping[str, float], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(probs) - set(allowed))
    if unknown:
        raise OptionError(f"{where} has unknown choice(s) {unknown}; allowed: {list(allowed)}")
    for name, p in probs.items():
        _check_prob(p, f"{where}.{name}")
    total = sum(probs.values())
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise OptionError(f"{where} probabilities must sum to 1, got {total:.6g}")


def _check_odd_sizes(sizes: tuple[int, int], where: str) -> None:
    lo, hi = sizes
    if lo % 2 == 0 or hi % 2 == 0 or not 1 <= lo <= hi:
        raise OptionError(f"{where} must be two odd sizes [low, high] with 1 <= low <= high, got [{lo}, {hi}]")


@dataclass(frozen=True)
class BlurConfig:
    """Random blur kernel of one degradation order (Real-ESRGAN's ``kernel_list`` etc.)."""

    prob: float  #: chance that this order blurs at all
    sizes: tuple[int, int]  #: kernel side drawn uniformly among the odd sizes in this inclusive range
    kernel_probs: Mapping[str, float]  #: kernel type -> probability, when not a sinc
    sigma: tuple[float, float]  #: standard deviation(s) in pixels; each axis drawn independently
    beta_gaussian: tuple[float, float]  #: shape of the generalized Gaussian
    beta_plateau: tuple[float, float]  #: shape of the plateau kernel
    sinc_prob: float  #: chance of a 2-D sinc (ringing) kernel instead of the above
    sinc_omega_small: tuple[float, float]  #: sinc cutoff in units of pi for kernel sides < 13
    sinc_omega_large: tuple[float, float]  #: sinc cutoff in units of pi for kernel sides >= 13

    def __post_init__(self) -> None:
        _check_prob(self.prob, "prob")
        _check_odd_sizes(self.sizes, "sizes")
        _check_distribution(self.kernel_probs, KERNEL_TYPES, "kernel_probs")
        _check_range(self.sigma, "sigma", low=1e-3)
        _check_range(self.beta_gaussian, "beta_gaussian", low=1e-3)
        _check_range(self.beta_plateau, "beta_plateau", low=1e-3)
        _check_prob(self.sinc_prob, "sinc_prob")
        _check_range(self.sinc_omega_small, "sinc_omega_small", low=1e-3, high=1.0)
        _check_range(self.sinc_omega_large, "sinc_omega_large", low=1e-3, high=1.0)


@dataclass(frozen=True)
class ResizeConfig:
    """Random rescale: direction, factor and interpolation."""

    probs: Mapping[str, float]  #: up / down / keep -> probability
    range: tuple[float, float]  #: factor drawn in [low, 1] for down and [1, high] for up
    modes: tuple[ResizeMode, ...]  #: drawn uniformly

    def __post_init__(self) -> None:
        _check_distribution(self.probs, RESIZE_DIRECTIONS, "probs")
        _check_range(self.range, "range", low=1e-3)
        if not self.range[0] <= 1.0 <= self.range[1]:
            raise OptionError(f"range must contain 1, got {list(self.range)}")
        if not self.modes:
            raise OptionError("modes must name at least one mode")


@dataclass(frozen=True)
class NoiseConfig:
    """Gaussian or Poisson noise, in colour or gray."""

    gaussian_prob: float  #: Gaussian with this chance, else Poisson
    gaussian_sigma: tuple[float, float]  #: standard deviation on the 0..255 scale
    poisson_scale: tuple[float, float]  #: multiplier of the shot noise
    gray_prob: float  #: chance that one noise field is shared by R, G and B

    def __post_init__(self) -> None:
        _check_prob(self.gaussian_prob, "gaussian_prob")
        _check_range(self.gaussian_sigma, "gaussian_sigma", low=0.0)
        _check_range(self.poisson_scale, "poisson_scale", low=0.0)
        _check_prob(self.gray_prob, "gray_prob")


@dataclass(frozen=True)
class OrderConfig:
    """One degradation order: blur, resize, noise and optionally JPEG."""

    prob: float  #: chance that the order runs at all (Real-ESRGAN: always)
    blur: BlurConfig
    resize: ResizeConfig
    noise: NoiseConfig
    jpeg_quality: tuple[int, int] | None  #: None: no JPEG in this order

    def __post_init__(self) -> None:
        _check_prob(self.prob, "prob")
        if self.jpeg_quality is not None:
            _check_range(self.jpeg_quality, "jpeg_quality", low=1, high=100)


@dataclass(frozen=True)
class FinalConfig:
    """Resize to the target size plus a sinc filter, and JPEG, in a random order."""

    resize_first_prob: float  #: chance of (resize + sinc) then JPEG; else JPEG then (resize + sinc)
    modes: tuple[ResizeMode, ...]
    sinc_prob: float  #: else an identity (pulse) kernel
    sinc_sizes: tuple[int, int]
    sinc_omega: tuple[float, float]  #: cutoff in units of pi
    jpeg_quality: tuple[int, int]

    def __post_init__(self) -> None:
        _check_prob(self.resize_first_prob, "resize_first_prob")
        if not self.modes:
            raise OptionError("modes must name at least one mode")
        _check_prob(self.sinc_prob, "sinc_prob")
        _check_odd_sizes(self.sinc_sizes, "sinc_sizes")
        _check_range(self.sinc_omega, "sinc_omega", low=1e-3, high=1.0)
        _check_range(self.jpeg_quality, "jpeg_quality", low=1, high=100)


@dataclass(frozen=True)
class MotionConfig:
    """Random camera motion that turns a still image into a clip for the codec."""

    pan: tuple[float, float]  #: speed in HR pixels per frame, direction uniform
    zoom: tuple[float, float]  #: relative size change per frame, e.g. [-0.01, 0.01]

    def __post_init__(self) -> None:
        _check_range(self.pan, "pan", low=0.0)
        _check_range(self.zoom, "zoom", low=-0.5, high=0.5)


@dataclass(frozen=True)
class CodecConfig:
    """Video compression of a clip at the low resolution, through PyAV."""

    prob: float  #: chance per sample
    place: CodecPlace  #: final: instead of the final JPEG; end: after the whole final stage
    frames: int  #: clip length synthesised from a still image
    codec_probs: Mapping[str, float]
    crf_prob: float  #: constant quality with this chance, else a target bitrate
    crf: Mapping[str, tuple[float, float]]  #: per codec; mpeg4 has no CRF: its fixed quantiser
    bitrate_bpp: tuple[float, float]  #: bits per pixel per frame (scales with the LR size)
    presets: tuple[str, ...]  #: x264/x265 presets, drawn uniformly
    gop: tuple[int, int]  #: keyframe interval
    bframes: tuple[int, int]
    fps: int
    motion: MotionConfig

    def __post_init__(self) -> None:
        _check_prob(self.prob, "prob")
        if self.frames < 1:
            raise OptionError(f"frames must be >= 1, got {self.frames}")
        _check_distribution(self.codec_probs, CODEC_NAMES, "codec_probs")
        _check_prob(self.crf_prob, "crf_prob")
        for name, p in self.codec_probs.items():
            if p > 0 and name not in self.crf:
                raise OptionError(f"crf has no range for {name}")
        for name, rng in self.crf.items():
            if name not in CODEC_NAMES:
                raise OptionError(f"crf has unknown codec {name!r}; allowed: {list(CODEC_NAMES)}")
            _check_range(rng, f"crf.{name}", low=0.0, high=63.0)
        _check_range(self.bitrate_bpp, "bitrate_bpp", low=1e-4)
        if not self.presets:
            raise OptionError("presets must name at least one preset")
        _check_range(self.gop, "gop", low=1)
        _check_range(self.bframes, "bframes", low=0, high=16)
        if self.fps < 1:
            raise OptionError(f"fps must be >= 1, got {self.fps}")


@dataclass(frozen=True)
class DegradationConfig:
    """The whole high-order pipeline (see :class:`vidsr.degrade.HighOrderDegradation`)."""

    sharpen_input: bool  #: Real-ESRGAN degrades the USM-sharpened ground truth
    first_order: OrderConfig
    second_order: OrderConfig
    final: FinalConfig
    codec: CodecConfig
    #: ``per_batch``: as Real-ESRGAN's training, one resize (direction, factor, mode), one
    #: noise kind, one run/skip of each order and one final order for the whole batch,
    #: which is then degraded with a few large tensor operations; kernels, noise levels,
    #: gray noise, JPEG qualities, the sinc filter and the codec stage stay per sample.
    #: ``per_sample``: every sample draws everything and is degraded on its own. The one
    #: key with a default: files written before the batched mode existed keep giving the
    #: same pairs for the same seed. The shipped (training) configs say ``per_batch``.
    draw: DrawMode = "per_sample"
    #: Which implementation applies the JPEG steps; all give libjpeg's baseline 4:2:0 JPEG,
    #: pixel for pixel: ``torch``, libjpeg's integer arithmetic in batched tensor operations
    #: on the degradation's device (:mod:`vidsr.degrade.torch_jpeg`); ``libjpeg``,
    #: libjpeg-turbo itself on the CPU (through torchvision), one image at a time in the
    #: encoder threads; ``auto``, ``torch`` on a GPU and ``libjpeg`` on the CPU, where its
    #: SIMD code is faster. A default because it came later, and the same pixels as before.
    jpeg: JpegCodec = "auto"


def config_path(name_or_path: str | Path) -> Path:
    """Resolve a shipped config name (``realesrgan_video``, ``anime_video``) or a YAML path."""
    return find_config(name_or_path, "degrade")


def load_config(name_or_path: str | Path) -> DegradationConfig:
    """Load a :class:`DegradationConfig` from a shipped name or a YAML file."""
    return load_yaml_config(DegradationConfig, config_path(name_or_path))
