"""Real video-codec damage: clips encoded and decoded in memory with PyAV.

A clip is ``[T, 3, H, W]`` float in [0, 1] on any device. It is rounded to 8 bits,
converted to YUV 4:2:0 (as nearly all distributed video is, so chroma is halved in both
directions), encoded with a real encoder, decoded again and returned with the input's
shape, dtype and device. Inter-frame artifacts (smeared motion, pulsing between key
frames, B-frame ghosts) therefore come from the codec itself, which is why a still image
is first turned into a short clip with random sub-pixel camera motion
(:func:`synthesize_motion`).

PyAV is imported lazily so that the rest of the package works without it.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from vidsr.degrade import _random, encoders
from vidsr.degrade.degradation_config import CODEC_NAMES, CodecConfig
from vidsr.degrade.encoders import DECODERS, CodecParams
from vidsr.errors import EncoderError, OptionError

if TYPE_CHECKING:
    from vidsr.degrade.codec_pool import CodecPool
# Codecs whose rate control reaches a target bitrate within a few frames; libvpx does not,
# so VP9 always runs at constant quality.
_BITRATE_CODECS = ("libx264", "libx265", "mpeg4")
_PRESET_CODECS = ("libx264", "libx265")


@dataclass(frozen=True)
class MotionParams:
    """Camera motion of a clip synthesised from a still image."""

    frames: int
    ref: int  #: index of the untouched frame (the one aligned with the ground truth)
    dx: float  #: pan in HR pixels per frame, along x
    dy: float  #: along y
    zoom: float  #: relative size change per frame (0.01: 1 % larger each frame)


@functools.cache
def available_codecs() -> tuple[str, ...]:
    """The encoders of :data:`CODEC_NAMES` that this PyAV build can both encode and decode."""
    import av

    found = []
    for name in CODEC_NAMES:
        try:
            av.codec.Codec(name, "w")
            av.codec.Codec(DECODERS[name], "r")
        except Exception:  # PyAV raises several types for a missing codec
            continue
        found.append(name)
    return tuple(found)


def check_codecs(names: Sequence[str]) -> None:
    """Raise :class:`OptionError` naming any encoder this PyAV build lacks."""
    missing = [n for n in names if n not in available_codecs()]
    if missing:
        raise OptionError(f"video encoder(s) {missing} not available in this PyAV/FFmpeg build; "
                          f"available: {list(available_codecs())}")


def random_codec_params(g: torch.Generator, cfg: CodecConfig) -> CodecParams:
    """Draw codec, rate control, preset, GOP and B-frames from ``cfg``."""
    codec = _random.weighted_choice(g, cfg.codec_probs)
    use_crf = _random.bernoulli(g, cfg.crf_prob) or codec not in _BITRATE_CODECS
    crf = bpp = None
    if use_crf:
        crf = _random.uniform(g, *cfg.crf[codec])
        if codec in ("mpeg4", "libvpx-vp9"):  # integer scales in these encoders
            crf = float(round(crf))
    else:
        # Log-uniform: damage grows with the ratio of bitrates, not their difference.
        lo, hi = cfg.bitrate_bpp
        bpp = math.exp(_random.uniform(g, math.log(lo), math.log(hi)))
    preset = _random.choice(g, cfg.presets)
    gop = _random.randint(g, *cfg.gop)
    bframes = _random.randint(g, *cfg.bframes)
    return CodecParams(codec=codec, rate_control="crf" if use_crf else "bitrate", crf=crf, bitrate_bpp=bpp,
                       preset=preset if codec in _PRESET_CODECS else None, gop=gop,
                       bframes=0 if codec == "libvpx-vp9" else bframes, fps=cfg.fps)


def random_motion_params(g: torch.Generator, cfg: CodecConfig, frames: int | None = None) -> MotionParams:
    """Draw a constant-velocity pan and zoom, and which frame stays untouched."""
    t = cfg.frames if frames is None else frames
    speed = _random.uniform(g, *cfg.motion.pan)
    angle = _random.uniform(g, -math.pi, math.pi)
    zoom = _random.uniform(g, *cfg.motion.zoom)
    ref = _random.randint(g, 0, t - 1)
    return MotionParams(frames=t, ref=ref, dx=speed * math.cos(angle), dy=speed * math.sin(angle), zoom=zoom)


def synthesize_motion(image: torch.Tensor, motion: MotionParams) -> torch.Tensor:
    """Turn a still ``[C, H, W]`` float image into a ``[T, C, H, W]`` clip with camera motion.

    Frame ``t`` is the image panned by ``(t - ref) * (dx, dy)`` pixels and scaled by
    ``(1 + zoom) ** (t - ref)`` about its centre, resampled bicubically with reflected
    borders; frame ``ref`` is the image itself, bit for bit, so it stays aligned with
    the ground truth. Motion is synthesised at the high resolution so that after the
    pipeline's downscaling it is sub-pixel motion, as a real camera makes.
    """
    if image.dim() != 3:
        raise OptionError(f"expected one image [C, H, W], got {tuple(image.shape)}")
    return synthesize_motions(image[None], [motion])[0]


def synthesize_motions(images: torch.Tensor, motions: Sequence[MotionParams]) -> list[torch.Tensor]:
    """:func:`synthesize_motion` for ``[M, C, H, W]`` images, with one resampling call for all moved frames."""
    if images.dim() != 4 or images.shape[0] != len(motions):
        raise OptionError(f"expected {len(motions)} images [M, C, H, W], got {tuple(images.shape)}")
    m, c, h, w = images.shape
    src: list[int] = []
    rows: list[tuple[float, float, float]] = []
    for i, motion in enumerate(motions):
        if not 0 <= motion.ref < motion.frames:
            raise OptionError(f"reference frame {motion.ref} outside a clip of {motion.frames}")
        for t in range(motion.frames):
            d = t - motion.ref
            if d != 0:
                src.append(i)
                # affine_grid maps output to input coordinates in [-1, 1]: a pixel is 2/W wide.
                rows.append((1.0 / (1.0 + motion.zoom) ** d, 2.0 * motion.dx * d / w, 2.0 * motion.dy * d / h))
    warped = None
    if src:
        theta = torch.zeros(len(src), 2, 3, dtype=torch.float64)
        r = torch.tensor(rows, dtype=torch.float64)
        theta[:, 0, 0] = r[:, 0]
        theta[:, 1, 1] = r[:, 0]
        theta[:, 0, 2] = r[:, 1]
        theta[:, 1, 2] = r[:, 2]
        theta = theta.to(device=images.device, dtype=images.dtype)
        grid = F.affine_grid(theta, [len(src), c, h, w], align_corners=False)
        index = torch.tensor(src, device=images.device)
        warped = F.grid_sample(images.index_select(0, index), grid, mode="bicubic", padding_mode="reflection",
                               align_corners=False).clamp(0, 1)
    clips = []
    j = 0
    for i, motion in enumerate(motions):
        frames = []
        for t in range(motion.frames):
            if t == motion.ref:
                frames.append(images[i])
            else:
                assert warped is not None
                frames.append(warped[j])
                j += 1
        clips.append(torch.stack(frames))
    return clips


def compress_frames(frames: np.ndarray, params: CodecParams) -> np.ndarray:
    """Encode and decode ``[T, H, W, 3]`` uint8 RGB frames; returns the same shape
    (:func:`vidsr.degrade.encoders.compress_frames`, with vidsr's errors)."""
    try:
        return encoders.compress_frames(frames, params)
    except encoders.EncodeFailed as exc:
        raise EncoderError(str(exc)) from exc
    except ValueError as exc:
        raise OptionError(str(exc)) from exc


def _to_frames_u8(clip: torch.Tensor) -> torch.Tensor:
    """``[T, 3, H, W]`` float -> ``[T, H, W, 3]`` uint8, on the clip's device."""
    return (clip.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def _clip_to_frames(clip: torch.Tensor) -> np.ndarray:
    return _to_frames_u8(clip).cpu().numpy()


def _frames_to_clip(frames: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    t = torch.from_numpy(frames).to(like.device).permute(0, 3, 1, 2)
    return t.to(like.dtype) / 255


def compress_clip(clip: torch.Tensor, params: CodecParams) -> torch.Tensor:
    """Encode and decode one ``[T, 3, H, W]`` float clip; same shape, dtype and device back."""
    if clip.dim() != 4 or clip.shape[1] != 3:
        raise OptionError(f"expected a clip [T, 3, H, W], got {tuple(clip.shape)}")
    return _frames_to_clip(compress_frames(_clip_to_frames(clip), params), clip)


def start_compress_clips(frames: torch.Tensor, counts: Sequence[int], params: Sequence[CodecParams],
                         executor: Executor | None = None, *,
                         pool: CodecPool | None = None) -> Callable[[], torch.Tensor]:
    """Start compressing consecutive clips of ``frames`` ``[F, 3, H, W]``; ``counts[i]`` frames for ``params[i]``.

    With a ``pool``, the clips go to its worker processes through one shared-memory
    segment; else the frames go to the host in one copy and the encoders start in
    ``executor``'s threads (at once in this thread without one). The returned function
    waits for them and gives all frames back, compressed, as one tensor like ``frames``.
    The caller does other work in between.
    """
    if len(counts) != len(params) or sum(counts) != frames.shape[0]:
        raise OptionError(f"{len(params)} codec settings and clips of {list(counts)} frames for "
                          f"{frames.shape[0]} frames")
    if pool is not None:
        handle = pool.start(_to_frames_u8(frames), counts, params)
        return lambda: _frames_to_clip(handle.result(), frames)
    arrays = np.split(_clip_to_frames(frames), np.cumsum(counts)[:-1])
    if executor is None:
        done = np.concatenate([compress_frames(a, p) for a, p in zip(arrays, params)])
        return lambda: _frames_to_clip(done, frames)
    futures = [executor.submit(compress_frames, a, p) for a, p in zip(arrays, params)]
    return lambda: _frames_to_clip(np.concatenate([f.result() for f in futures]), frames)


def compress_clips(clips: Sequence[torch.Tensor], params: Sequence[CodecParams],
                   executor: Executor | None = None, *, pool: CodecPool | None = None) -> list[torch.Tensor]:
    """:func:`compress_clip` over many clips: in a pool's worker processes, in parallel threads when an
    executor is given, else one after the other."""
    if len(clips) != len(params):
        raise OptionError(f"got {len(params)} codec settings for {len(clips)} clips")
    if pool is not None:
        handles = [pool.start(_to_frames_u8(c), [c.shape[0]], [p]) for c, p in zip(clips, params)]
        return [_frames_to_clip(h.result(), c) for h, c in zip(handles, clips)]
    arrays = [_clip_to_frames(c) for c in clips]
    if executor is None or len(arrays) < 2:
        results = [compress_frames(a, p) for a, p in zip(arrays, params)]
    else:
        results = list(executor.map(compress_frames, arrays, params))
    return [_frames_to_clip(r, c) for r, c in zip(results, clips)]
