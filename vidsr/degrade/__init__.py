"""Synthetic degradations: Real-ESRGAN's high-order model plus real video-codec damage.

Typical use in a trainer::

    from vidsr.degrade import HighOrderDegradation, load_config, usm_sharpen

    degrade = HighOrderDegradation(load_config("realesrgan_video"), seed=0)
    lr, params = degrade(hr, scale=4)   # hr [N, 3, H, W] float in [0, 1]
    gt_for_losses = usm_sharpen(hr)

    # Or in two steps, e.g. for a batch that mixes stills and clips. Draw the whole batch
    # in one call: with the shipped configs (draw: per_batch), one sample() call is one
    # batch, and n calls of sample(1) would be n batches of one, degraded one by one.
    params = degrade.sample(n, still=[True, False, ...])   # one flag per sample
    lr = degrade.apply(hr, params, scale=4)                 # or on subsets of the batch

The operations (:mod:`vidsr.degrade.ops`), kernels (:mod:`vidsr.degrade.kernels`), the
device JPEG (:mod:`vidsr.degrade.torch_jpeg`) and the codec stage (:mod:`vidsr.degrade.codec`,
run in worker processes by :class:`vidsr.degrade.codec_pool.CodecPool`) are pure functions
usable on their own.
"""
from __future__ import annotations

from vidsr.degrade.codec import (CodecParams, MotionParams, available_codecs, compress_clip, compress_clips,
                                 synthesize_motion, synthesize_motions)
from vidsr.degrade.degradation_config import DegradationConfig, config_path, load_config
from vidsr.degrade.high_order import HighOrderDegradation, SampleParams
from vidsr.degrade.kernels import KernelParams, make_kernel, make_kernels, random_kernel
from vidsr.degrade.ops import (add_gaussian_noise, add_poisson_noise, blur, jpeg, jpeg_many, quantize, resize,
                               usm_sharpen)
from vidsr.degrade.torch_jpeg import jpeg_torch

__all__ = [
    "CodecParams",
    "DegradationConfig",
    "HighOrderDegradation",
    "KernelParams",
    "MotionParams",
    "SampleParams",
    "add_gaussian_noise",
    "add_poisson_noise",
    "available_codecs",
    "blur",
    "compress_clip",
    "compress_clips",
    "config_path",
    "jpeg",
    "jpeg_many",
    "jpeg_torch",
    "load_config",
    "make_kernel",
    "make_kernels",
    "quantize",
    "random_kernel",
    "resize",
    "synthesize_motion",
    "synthesize_motions",
    "usm_sharpen",
]
