"""Real-ESRGAN's high-order degradation model, with a video-codec stage.

``HighOrderDegradation(config, seed=...)`` turns clean HR images ``[N, 3, H, W]`` (or
clips ``[N, T, 3, H, W]``), float in [0, 1], into the LR images a network is trained on:

1. optional USM sharpening of the input (Real-ESRGAN degrades the sharpened ground truth);
2. first order: blur, random resize, Gaussian or Poisson noise, JPEG;
3. second order: blur (with a probability), resize relative to the target size, noise;
4. final: 50/50 either (resize to ``H/scale`` + sinc filter) then JPEG, or JPEG then
   (resize + sinc);
5. the codec stage: with its own probability, a real video encoder either takes the
   final JPEG's place (``place: final``) or runs after the whole final stage
   (``place: end``), on a clip, so inter-frame damage is real;
6. rounding to 8 bits.

The config's ``draw`` says what is drawn how often:

* ``per_batch`` (the shipped configs, for training): as Real-ESRGAN's ``feed_data``, one
  draw per batch of whether each order runs, its resize (direction, factor, mode) and
  noise kind, and the final stage's order and resize mode; blur kernels, whether the
  second order blurs, noise levels and seeds, gray noise, JPEG qualities, the final sinc
  filter and the codec stage per sample. The batch is then degraded with a few large
  tensor operations (:mod:`vidsr.degrade._batched`).
* ``per_sample``: every sample draws everything and is degraded on its own, at a cost
  of a few milliseconds of per-sample work each.

A still image that gets the codec stage is first turned into a clip of ``codec.frames``
frames with random camera motion, degraded frame by frame with the same parameters
(fresh noise per frame), compressed, and the frame that was not moved is returned, so
the LR stays aligned with the ground truth. A clip input keeps all its frames, which
share their parameters.

The drawn parameters are plain frozen dataclasses (:class:`SampleParams`; per-batch
draws are recorded in every sample's), returned as dicts by ``__call__`` and accepted
back by :meth:`HighOrderDegradation.apply`, which reproduces the output exactly,
per-pixel noise included (each sample records the seed of its noise), with the same
``draw`` mode.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from vidsr.degrade import ops
from vidsr.degrade._batched import degrade_batch
from vidsr.degrade._params import (FinalParams, NoiseParams, OrderParams, ResizeParams, SampleParams, sample_batch,
                                   sample_params)
from vidsr.degrade.codec import check_codecs, compress_clips, synthesize_motion
from vidsr.degrade.codec_pool import CodecPool
from vidsr.degrade.degradation_config import DegradationConfig
from vidsr.degrade.kernels import KernelParams, make_kernel
from vidsr.errors import InputError, OptionError

__all__ = ["FinalParams", "HighOrderDegradation", "NoiseParams", "OrderParams", "ResizeParams", "SampleParams",
           "sample_batch", "sample_params"]


def _noise(x: torch.Tensor, p: NoiseParams) -> torch.Tensor:
    gen = torch.Generator(device=x.device)
    gen.manual_seed(p.seed)
    if p.kind == "gaussian":
        return ops.add_gaussian_noise(x, p.level, p.gray, generator=gen)
    return ops.add_poisson_noise(x, p.level, p.gray, generator=gen)


def _blur(x: torch.Tensor, kernel: KernelParams) -> torch.Tensor:
    if kernel.kind == "pulse":
        return x
    # Unpadded kernel: the same result as Real-ESRGAN's zero-padded 21x21 one, for fewer taps.
    return ops.blur(x, make_kernel(kernel, pad_to=None)).clamp(0, 1)


def _scaled(size: tuple[int, int], factor: float) -> tuple[int, int]:
    return max(1, int(size[0] * factor)), max(1, int(size[1] * factor))


Clips = list[torch.Tensor]


def _map(clips: Clips, selected: Sequence[bool], fn: Callable[[int, torch.Tensor], torch.Tensor]) -> Clips:
    return [fn(i, c) if sel else c for i, (c, sel) in enumerate(zip(clips, selected))]


def _jpeg(clips: Clips, qualities: Sequence[int | None], codec: ops.JpegCodec) -> Clips:
    idx = [i for i, q in enumerate(qualities) if q is not None]
    if not idx:
        return clips
    done = ops.jpeg_many([clips[i] for i in idx], [int(qualities[i]) for i in idx],  # type: ignore[arg-type]
                         codec=codec)
    out = list(clips)
    for i, c in zip(idx, done):
        out[i] = c
    return out


class HighOrderDegradation:
    """Seeded high-order degradation of HR batches into LR batches (see the module doc).

    Not thread-safe: each call advances one generator. With a ``codec_pool``
    (:class:`vidsr.degrade.codec_pool.CodecPool`, which may be shared with other
    degradations in other threads) the video encoders run in its worker processes.
    Else ``codec_workers`` threads run them and, with the ``libjpeg`` JPEG in the
    batched mode, the JPEG round trips of a batch (default: up to 8, one per CPU core;
    1: everything in the calling thread); both release the GIL for most of their work.
    """

    def __init__(self, config: DegradationConfig, *, seed: int | None = None,
                 generator: torch.Generator | None = None, codec_workers: int | None = None,
                 codec_pool: CodecPool | None = None) -> None:
        if seed is not None and generator is not None:
            raise OptionError("give a seed or a generator, not both")
        self.config = config
        if generator is None:
            generator = torch.Generator()
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)
        if generator.device.type != "cpu":
            raise OptionError("the parameter generator must be a CPU torch.Generator")
        self.generator = generator
        if config.codec.prob > 0:
            check_codecs([c for c, p in config.codec.codec_probs.items() if p > 0])
        self._codec_workers = codec_workers if codec_workers is not None else min(8, os.cpu_count() or 1)
        self._executor: ThreadPoolExecutor | None = None
        self.codec_pool = codec_pool

    def close(self) -> None:
        """Stop the encoder threads (they are started again when needed)."""
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def __enter__(self) -> HighOrderDegradation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sample(self, n: int, *, still: bool | Sequence[bool] = True) -> list[SampleParams]:
        """Draw parameters for a batch of ``n`` samples.

        ``still``: whether the samples will be images (a still that gets the codec stage
        has camera motion drawn) rather than clips; one flag for all, or one per sample.
        In ``per_batch`` mode the call is the batch: draw a batch's parameters in one
        call, not sample by sample.
        """
        flags = [still] * n if isinstance(still, bool) else [bool(s) for s in still]
        if len(flags) != n:
            raise OptionError(f"got {len(flags)} still flags for {n} samples")
        if self.config.draw == "per_batch":
            return sample_batch(self.generator, self.config, flags)
        return [sample_params(self.generator, self.config, still=s) for s in flags]

    def __call__(self, hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Degrade ``hr`` and return ``(lr, params)``; see :meth:`apply` for shapes."""
        params = self.sample(hr.shape[0], still=hr.dim() == 4)
        return self.apply(hr, params, scale=scale), [p.to_dict() for p in params]

    def apply(self, hr: torch.Tensor, params: Sequence[SampleParams | Mapping[str, Any]], *,
              scale: int) -> torch.Tensor:
        """Apply given parameters (deterministic).

        hr: ``[N, 3, H, W]`` images or ``[N, T, 3, H, W]`` clips, float in [0, 1], H and W
        multiples of ``scale``. Returns ``[N, 3, H/scale, W/scale]`` (resp. with T) on
        ``hr``'s device and dtype, every value a multiple of 1/255.

        In ``per_batch`` mode, samples that share their resizes and final order are
        degraded together, whatever mode drew their parameters.
        """
        plist = [p if isinstance(p, SampleParams) else SampleParams.from_dict(p) for p in params]
        still = self._check(hr, plist, scale)
        h, w = hr.shape[-2:]
        lr_size = (h // scale, w // scale)
        if self.config.draw == "per_batch":
            src = hr
            if self.config.sharpen_input:
                src = ops.usm_sharpen(hr.reshape(-1, 3, h, w)).reshape(hr.shape)
            # Threads only for what needs them: the encoders without a pool, libjpeg round trips.
            libjpeg = self.config.jpeg == "libjpeg" or (self.config.jpeg == "auto" and hr.device.type == "cpu")
            needs_threads = self.codec_pool is None or libjpeg
            return degrade_batch(src, plist, lr_size, self._get_executor() if needs_threads else None,
                                 jpeg_codec=self.config.jpeg, pool=self.codec_pool)
        clips = self._split(hr, still)
        if self.config.sharpen_input:
            # One batched call before the batch splits into clips of different sizes.
            sharp = ops.usm_sharpen(hr.reshape(-1, 3, h, w)).reshape(hr.shape)
            clips = self._split(sharp, still)
        clips = [synthesize_motion(c[0], p.motion) if p.motion is not None else c for c, p in zip(clips, plist)]

        clips = self._order(clips, [p.first for p in plist], reference=None)
        clips = self._order(clips, [p.second for p in plist], reference=lr_size)

        def resize_sinc(i: int, c: torch.Tensor) -> torch.Tensor:
            f = plist[i].final
            return _blur(ops.resize(c, lr_size, f.mode).clamp(0, 1), f.sinc)

        first_half = [p.final.resize_first for p in plist]
        clips = _map(clips, first_half, resize_sinc)
        clips = _jpeg(clips, [p.final.jpeg_quality for p in plist], self.config.jpeg)
        clips = self._codec(clips, plist, "final")
        clips = _map(clips, [not s for s in first_half], resize_sinc)
        clips = self._codec(clips, plist, "end")
        clips = [ops.quantize(c) for c in clips]

        if still:
            refs = [p.motion.ref if p.motion is not None else 0 for p in plist]
            return torch.stack([c[r] for c, r in zip(clips, refs)])
        return torch.stack(clips)

    def _check(self, hr: torch.Tensor, plist: Sequence[SampleParams], scale: int) -> bool:
        """Check the input against the parameters; True for images, False for clips."""
        if hr.dim() not in (4, 5) or hr.shape[-3] != 3 or not hr.is_floating_point():
            raise InputError(f"expected float images [N, 3, H, W] or clips [N, T, 3, H, W], "
                             f"got {tuple(hr.shape)} {hr.dtype}")
        if scale < 1:
            raise OptionError(f"scale must be a positive integer, got {scale}")
        h, w = hr.shape[-2:]
        if h % scale or w % scale:
            raise InputError(f"HR size {w}x{h} is not a multiple of the scale {scale}")
        if len(plist) != hr.shape[0]:
            raise OptionError(f"got parameters for {len(plist)} samples, the batch has {hr.shape[0]}")
        still = hr.dim() == 4
        if not still and any(p.motion is not None for p in plist):
            raise OptionError("motion parameters are for still images; this batch is clips")
        return still

    @staticmethod
    def _split(hr: torch.Tensor, still: bool) -> Clips:
        return [hr[i:i + 1] if still else hr[i] for i in range(hr.shape[0])]

    def _get_executor(self) -> ThreadPoolExecutor | None:
        if self._executor is None and self._codec_workers > 1:
            self._executor = ThreadPoolExecutor(self._codec_workers, thread_name_prefix="vidsr-codec")
        return self._executor

    def _order(self, clips: Clips, orders: Sequence[OrderParams | None],
               reference: tuple[int, int] | None) -> Clips:
        """One degradation order; resize relative to each clip's size, or to ``reference``."""

        def blur_resize_noise(i: int, c: torch.Tensor) -> torch.Tensor:
            o = orders[i]
            assert o is not None
            if o.kernel is not None:
                c = _blur(c, o.kernel)
            base = reference if reference is not None else (c.shape[-2], c.shape[-1])
            c = ops.resize(c, _scaled(base, o.resize.factor), o.resize.mode).clamp(0, 1)
            return _noise(c, o.noise)

        clips = _map(clips, [o is not None for o in orders], blur_resize_noise)
        return _jpeg(clips, [o.jpeg_quality if o is not None else None for o in orders], self.config.jpeg)

    def _codec(self, clips: Clips, plist: Sequence[SampleParams], place: str) -> Clips:
        idx = [i for i, p in enumerate(plist) if p.codec is not None and p.codec_place == place]
        if not idx:
            return clips
        done = compress_clips([clips[i] for i in idx], [plist[i].codec for i in idx],  # type: ignore[misc]
                              self._get_executor(), pool=self.codec_pool)
        out = list(clips)
        for i, c in zip(idx, done):
            out[i] = c
        return out
