"""What a degradation draws: the parameter dataclasses, and the draws of both modes.

``per_sample`` (:func:`sample_params`): each sample draws everything, one scalar at a
time. ``per_batch`` (:func:`sample_batch`): as Real-ESRGAN's ``feed_data``, one draw for
the batch of what fixes tensor shapes or the order of operations (whether an order runs,
its resize direction, factor and mode, its noise kind, the final stage's order and
mode), and per-sample values for the rest (kernels, whether the second order blurs,
noise levels, gray noise, noise seeds, JPEG qualities, the final sinc filter, the codec
stage), drawn as tensors. Both record every choice in each sample's
:class:`SampleParams`, so one sample can be inspected or replayed on its own.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from vidsr.degrade import _random
from vidsr.degrade.codec import CodecParams, MotionParams, random_codec_params, random_motion_params
from vidsr.degrade.degradation_config import DegradationConfig, FinalConfig, OrderConfig
from vidsr.degrade.kernels import (PAD_TO, KernelParams, random_kernel_params, random_kernel_params_batch,
                                   random_sinc_params)
from vidsr.yaml_config import build_dataclass, to_plain


@dataclass(frozen=True)
class ResizeParams:
    direction: Literal["up", "down", "keep"]
    factor: float  #: first order: of the current size; second order: of the target (LR) size
    mode: Literal["area", "bilinear", "bicubic"]


@dataclass(frozen=True)
class NoiseParams:
    kind: Literal["gaussian", "poisson"]
    level: float  #: Gaussian: sigma on the 0..255 scale; Poisson: scale
    gray: bool
    seed: int  #: seed of the per-pixel noise generator on the tensor's device


@dataclass(frozen=True)
class OrderParams:
    kernel: KernelParams | None  #: None: no blur
    resize: ResizeParams
    noise: NoiseParams
    jpeg_quality: int | None  #: None: no JPEG


@dataclass(frozen=True)
class FinalParams:
    resize_first: bool  #: (resize + sinc) then compression, else compression then (resize + sinc)
    mode: Literal["area", "bilinear", "bicubic"]
    sinc: KernelParams  #: kind "pulse" when no sinc filter was drawn
    jpeg_quality: int | None  #: None when the codec takes the JPEG's place


@dataclass(frozen=True)
class SampleParams:
    """Everything drawn for one sample."""

    first: OrderParams | None
    second: OrderParams | None
    final: FinalParams
    codec: CodecParams | None = None
    codec_place: Literal["final", "end"] | None = None
    motion: MotionParams | None = None  #: set when a still image was turned into a clip

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SampleParams:
        return build_dataclass(cls, data, "params")


# --- per sample ---

def _sample_order(g: torch.Generator, cfg: OrderConfig) -> OrderParams | None:
    if not _random.bernoulli(g, cfg.prob):
        return None
    kernel = random_kernel_params(g, cfg.blur) if _random.bernoulli(g, cfg.blur.prob) else None
    direction = _random.weighted_choice(g, cfg.resize.probs)
    lo, hi = cfg.resize.range
    factor = {"up": lambda: _random.uniform(g, 1.0, hi), "down": lambda: _random.uniform(g, lo, 1.0),
              "keep": lambda: 1.0}[direction]()
    mode = _random.choice(g, cfg.resize.modes)
    gaussian = _random.bernoulli(g, cfg.noise.gaussian_prob)
    level = _random.uniform(g, *(cfg.noise.gaussian_sigma if gaussian else cfg.noise.poisson_scale))
    gray = _random.bernoulli(g, cfg.noise.gray_prob)
    noise = NoiseParams(kind="gaussian" if gaussian else "poisson", level=level, gray=gray, seed=_random.seed(g))
    quality = _random.randint(g, *cfg.jpeg_quality) if cfg.jpeg_quality is not None else None
    return OrderParams(kernel=kernel, resize=ResizeParams(direction=direction, factor=factor, mode=mode),  # type: ignore[arg-type]
                       noise=noise, jpeg_quality=quality)


def _sample_final(g: torch.Generator, cfg: FinalConfig, jpeg: bool) -> FinalParams:
    resize_first = _random.bernoulli(g, cfg.resize_first_prob)
    mode = _random.choice(g, cfg.modes)
    if _random.bernoulli(g, cfg.sinc_prob):
        sinc = random_sinc_params(g, _random.odd_size(g, cfg.sinc_sizes), cfg.sinc_omega)
    else:
        sinc = KernelParams(kind="pulse", size=PAD_TO)
    quality = _random.randint(g, *cfg.jpeg_quality) if jpeg else None
    return FinalParams(resize_first=resize_first, mode=mode, sinc=sinc, jpeg_quality=quality)


def sample_params(g: torch.Generator, cfg: DegradationConfig, *, still: bool) -> SampleParams:
    """Draw one sample's parameters; ``still``: the input is an image (motion is synthesised)."""
    first = _sample_order(g, cfg.first_order)
    second = _sample_order(g, cfg.second_order)
    use_codec = _random.bernoulli(g, cfg.codec.prob)
    codec = random_codec_params(g, cfg.codec) if use_codec else None
    motion = random_motion_params(g, cfg.codec) if use_codec and still else None
    final = _sample_final(g, cfg.final, jpeg=not (use_codec and cfg.codec.place == "final"))
    return SampleParams(first=first, second=second, final=final, codec=codec,
                        codec_place=cfg.codec.place if use_codec else None, motion=motion)


# --- per batch ---

def _uniform(g: torch.Generator, n: int, low: float, high: float) -> list[float]:
    return (low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)).tolist()


def _below(g: torch.Generator, n: int, p: float) -> list[bool]:
    """``n`` Bernoulli draws; as _random.bernoulli, drawn whatever ``p``."""
    return (torch.rand(n, generator=g, dtype=torch.float64) < p).tolist()


def _randint(g: torch.Generator, n: int, low: int, high: int) -> list[int]:
    """``n`` integers in [low, high], both included."""
    return torch.randint(low, high + 1, (n,), generator=g).tolist()


def _batch_order(g: torch.Generator, cfg: OrderConfig, n: int) -> list[OrderParams | None]:
    if not _random.bernoulli(g, cfg.prob):  # per batch: skipping changes the batch's size
        return [None] * n
    direction = _random.weighted_choice(g, cfg.resize.probs)
    lo, hi = cfg.resize.range
    factor = {"up": lambda: _random.uniform(g, 1.0, hi), "down": lambda: _random.uniform(g, lo, 1.0),
              "keep": lambda: 1.0}[direction]()
    mode = _random.choice(g, cfg.resize.modes)
    resize = ResizeParams(direction=direction, factor=factor, mode=mode)  # type: ignore[arg-type]
    kind: Literal["gaussian", "poisson"] = "gaussian" if _random.bernoulli(g, cfg.noise.gaussian_prob) else "poisson"
    # Per sample from here. Whether to blur too: Real-ESRGAN decides its second blur per
    # batch, but a per-sample decision costs nothing batched (the blur runs on the blurred
    # samples only) and keeps the configured share of blurred samples in every batch.
    blurred = _below(g, n, cfg.blur.prob)
    kernels = random_kernel_params_batch(g, cfg.blur, n)
    levels = _uniform(g, n, *(cfg.noise.gaussian_sigma if kind == "gaussian" else cfg.noise.poisson_scale))
    gray = _below(g, n, cfg.noise.gray_prob)
    seeds = torch.randint(0, 2**62, (n,), generator=g).tolist()
    quality: list[int | None] = (_randint(g, n, *cfg.jpeg_quality) if cfg.jpeg_quality is not None
                                 else [None] * n)
    return [OrderParams(kernel=k if b else None, resize=resize, noise=NoiseParams(kind=kind, level=lv, gray=gr, seed=s),
                        jpeg_quality=q)
            for b, k, lv, gr, s, q in zip(blurred, kernels, levels, gray, seeds, quality)]


def _batch_final(g: torch.Generator, cfg: FinalConfig, jpeg: Sequence[bool]) -> list[FinalParams]:
    n = len(jpeg)
    resize_first = _random.bernoulli(g, cfg.resize_first_prob)
    mode = _random.choice(g, cfg.modes)
    sinc = _below(g, n, cfg.sinc_prob)
    lo, hi = cfg.sinc_sizes
    sizes = [lo + 2 * k for k in _randint(g, n, 0, (hi - lo) // 2)]
    omegas = [math.pi * w for w in _uniform(g, n, *cfg.sinc_omega)]
    quality = _randint(g, n, *cfg.jpeg_quality)
    pulse = KernelParams(kind="pulse", size=PAD_TO)
    return [FinalParams(resize_first=resize_first, mode=mode,  # type: ignore[arg-type]
                        sinc=KernelParams(kind="sinc", size=k, omega=w) if s else pulse,
                        jpeg_quality=q if j else None)
            for s, k, w, q, j in zip(sinc, sizes, omegas, quality, jpeg)]


def sample_batch(g: torch.Generator, cfg: DegradationConfig, still: Sequence[bool]) -> list[SampleParams]:
    """Draw a batch's parameters, shared where Real-ESRGAN shares them; ``still[i]``: sample i is an image."""
    n = len(still)
    if n == 0:
        return []
    first = _batch_order(g, cfg.first_order, n)
    second = _batch_order(g, cfg.second_order, n)
    use_codec = _below(g, n, cfg.codec.prob)
    # The codec's own draws stay scalar: few samples take them, and each costs an encoder run.
    codec = [random_codec_params(g, cfg.codec) if u else None for u in use_codec]
    motion = [random_motion_params(g, cfg.codec) if u and s else None for u, s in zip(use_codec, still)]
    final = _batch_final(g, cfg.final, [not (u and cfg.codec.place == "final") for u in use_codec])
    return [SampleParams(first=f, second=s, final=fi, codec=c, codec_place=cfg.codec.place if c is not None else None,
                         motion=m)
            for f, s, fi, c, m in zip(first, second, final, codec, motion)]
