"""Typed, frozen configuration of the degradation pipeline, loaded from YAML.

Every number the pipeline draws from lives in a YAML file under ``configs/degrade/``;
the dataclasses here have no defaults on purpose, so that a file which forgets a key
fails loudly instead of silently falling back to a number hidden in code (the one
exception, ``draw``, came later; its default keeps older files meaning what they meant).
Unknown keys are rejected with the dotted path of the key, so typos cannot pass unnoticed.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from vidsr.errors import InputError, InputNotFoundError, OptionError

KernelType = Literal["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
ResizeMode = Literal["area", "bilinear", "bicubic"]
ResizeDirection = Literal["up", "down", "keep"]
CodecName = Literal["libx264", "libx265", "mpeg4", "libvpx-vp9"]
CodecPlace = Literal["final", "end"]
DrawMode = Literal["per_batch", "per_sample"]

KERNEL_TYPES: tuple[str, ...] = get_args(KernelType)
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)
RESIZE_DIRECTIONS: tuple[str, ...] = get_args(ResizeDirection)
CODEC_NAMES: tuple[str, ...] = get_args(CodecName)
DRAW_MODES: tuple[str, ...] = get_args(DrawMode)

# Folder of the shipped configurations: configs/degrade/ at the repository root.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "degrade"


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


T = TypeVar("T")


def _is_optional(tp: Any) -> tuple[bool, Any]:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and build it (dataclasses, tuples, mappings)."""
    optional, inner = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise OptionError(f"{where} must not be null")
    tp = inner
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise OptionError(f"{where} must be a mapping, got {type(value).__name__}")
        return build_dataclass(tp, value, where)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in get_args(tp):
            raise OptionError(f"{where} must be one of {list(get_args(tp))}, got {value!r}")
        return value
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise OptionError(f"{where} must be a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise OptionError(f"{where} must have {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (Mapping, dict, typing.Mapping):
        key_tp, val_tp = get_args(tp)
        if not isinstance(value, Mapping):
            raise OptionError(f"{where} must be a mapping, got {type(value).__name__}")
        # A read-only view keeps the frozen dataclass frozen all the way down.
        return types.MappingProxyType(
            {_convert(key_tp, k, f"{where} key"): _convert(val_tp, v, f"{where}.{k}") for k, v in value.items()})
    if tp is bool:
        if not isinstance(value, bool):
            raise OptionError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise OptionError(f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {where}")  # a bug in a dataclass here, not user input


@functools.cache
def _hints_and_fields(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    # get_type_hints evaluates every annotation string: by far the dearest step of a build.
    return get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def build_dataclass(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build the frozen dataclass ``cls`` from a mapping, rejecting unknown and missing keys."""
    hints, fields = _hints_and_fields(cls)
    prefix = f"{where}." if where else ""
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise OptionError(f"unknown key(s) {[prefix + str(k) for k in unknown]}; allowed: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in data:
            if field.default is not dataclasses.MISSING:
                continue
            raise OptionError(f"missing key {prefix + name!r}")
        kwargs[name] = _convert(hints[name], data[name], prefix + name)
    try:
        return cls(**kwargs)
    except OptionError as exc:
        raise OptionError(f"{where or cls.__name__}: {exc}") from None


@functools.cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple(f.name for f in dataclasses.fields(cls))


def to_plain(obj: Any) -> Any:
    """A dataclass (or mapping/tuple of them) as plain dicts, lists and scalars, e.g. for YAML or JSON."""
    if obj is None or isinstance(obj, (str, int, float)):
        return obj
    names = None if isinstance(obj, type) else _field_names(type(obj))
    if names is not None:
        # Field names cached per class: this runs for every sample of every training batch.
        return {name: to_plain(getattr(obj, name)) for name in names}
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def config_path(name_or_path: str | Path) -> Path:
    """Resolve a shipped config name (``realesrgan_video``, ``anime_video``) or a YAML path."""
    path = Path(name_or_path)
    if path.suffix.lower() in (".yml", ".yaml") or path.exists():
        if not path.is_file():
            raise InputNotFoundError(f"degradation config not found: {path}")
        return path
    shipped = CONFIG_DIR / f"{name_or_path}.yml"
    if not shipped.is_file():
        names = sorted(p.stem for p in CONFIG_DIR.glob("*.yml")) if CONFIG_DIR.is_dir() else []
        raise InputNotFoundError(f"no degradation config named {str(name_or_path)!r}; shipped: {names} "
                                 f"(or give a path to a .yml file)")
    return shipped


def load_config(name_or_path: str | Path) -> DegradationConfig:
    """Load a :class:`DegradationConfig` from a shipped name or a YAML file."""
    path = config_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise InputError(f"{path}: expected a mapping at the top level")
    try:
        return build_dataclass(DegradationConfig, data)
    except OptionError as exc:
        raise OptionError(f"{path}: {exc}") from None
