"""Real video encoders in memory: a clip of uint8 RGB frames in, the decoded frames out.

This module imports only the standard library, NumPy and (lazily) PyAV, nothing of torch
or of the rest of vidsr, so that the codec worker processes
(:mod:`vidsr.degrade.codec_pool`) start in about a second and stay small; the package
re-exports it through :mod:`vidsr.degrade.codec`. Errors are :class:`EncodeFailed`
here; :mod:`vidsr.degrade.codec` turns them into vidsr's own.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

# Decoders of each encoder's bitstream (FFmpeg's native ones).
DECODERS = {"libx264": "h264", "libx265": "hevc", "mpeg4": "mpeg4", "libvpx-vp9": "vp9"}
# libx265 as bundled with PyAV misbehaves on small frames: it corrupted the heap at 34..48 px a
# side (with torch loaded) and gave run-to-run different bitstreams at 64 px (none seen from
# 80 px up). Smaller frames are padded up to this side, with a margin.
_MIN_SIDE = {"libx265": 128}
_MIN_SIDE_ANY = 16


class EncodeFailed(RuntimeError):
    """An encoder or decoder refused a clip, or lost frames."""


@dataclass(frozen=True)
class CodecParams:
    """One drawn encoder setting."""

    codec: str  #: encoder name: libx264, libx265, mpeg4, libvpx-vp9
    rate_control: Literal["crf", "bitrate"]
    crf: float | None = None  #: CRF (x264/x265/VP9) or fixed quantiser (mpeg4)
    bitrate_bpp: float | None = None  #: target bits per pixel per frame
    preset: str | None = None  #: x264/x265 only
    gop: int = 12  #: keyframe interval
    bframes: int = 0  #: consecutive B-frames at most (not VP9)
    fps: int = 25



@functools.cache
def _x264_asm() -> str | None:
    """x264's CPU feature list capped below AVX-512, or None to keep x264's own detection.

    With its AVX-512 code, libx264 (as bundled with PyAV) gives run-to-run different
    bitstreams for the same input on some small frames; capped at AVX2 it was
    deterministic in every trial, and still fast. Features are only named when
    /proc/cpuinfo lists them, since x264 trusts the list and would fault otherwise.
    """
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    if "avx512f" not in flags:
        return None
    if {"avx2", "bmi2", "fma", "sse4_2"} <= flags:
        return "MMX2,SSE,SSE2,SSE2Fast,SSSE3,SSE4.1,SSE4.2,AVX,AVX2"
    return "0"


def encoder_options(p: CodecParams) -> dict[str, str]:
    opts: dict[str, str] = {}
    if p.codec == "libx264":
        opts["threads"] = "1"  # deterministic output; clips are compressed in parallel instead
        asm = _x264_asm()
        if asm is not None:
            opts["x264-params"] = f"asm={asm}"
    elif p.codec == "libx265":
        opts["x265-params"] = "log-level=none:pools=none:frame-threads=1"
    elif p.codec == "libvpx-vp9":
        opts.update({"deadline": "realtime", "cpu-used": "8", "threads": "1"})
    if p.preset is not None:
        opts["preset"] = p.preset
    if p.rate_control == "crf":
        assert p.crf is not None
        if p.codec == "mpeg4":
            q = str(int(min(31, max(1, round(p.crf)))))
            opts.update({"qmin": q, "qmax": q})
        else:
            opts["crf"] = f"{p.crf:g}"
    return opts


def _pad_to(frames: np.ndarray, h: int, w: int) -> np.ndarray:
    ph, pw = h - frames.shape[1], w - frames.shape[2]
    if ph == 0 and pw == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")


def compress_frames(frames: np.ndarray, params: CodecParams) -> np.ndarray:
    """Encode and decode ``[T, H, W, 3]`` uint8 RGB frames; returns the same shape.

    Releases the GIL inside FFmpeg, so clips can be compressed in threads. Frames are
    padded by edge replication (as encoders pad to whole macroblocks themselves) to even
    sizes, as 4:2:0 needs, and to the encoder's minimum size, then cropped back.
    """
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.shape} {frames.dtype}")
    if params.codec not in DECODERS:
        raise ValueError(f"unknown video encoder {params.codec!r}; allowed: {list(DECODERS)}")
    t, h, w, _ = frames.shape
    min_side = max(_MIN_SIDE_ANY, _MIN_SIDE.get(params.codec, 0))
    eh, ew = max(min_side, h + h % 2), max(min_side, w + w % 2)
    padded = _pad_to(np.ascontiguousarray(frames), eh, ew)
    try:
        enc: Any = av.CodecContext.create(params.codec, "w")
        enc.width, enc.height, enc.pix_fmt = ew, eh, "yuv420p"
        enc.time_base = Fraction(1, params.fps)
        enc.framerate = Fraction(params.fps, 1)
        enc.gop_size = params.gop
        enc.max_b_frames = params.bframes
        opts = encoder_options(params)
        if params.rate_control == "bitrate":
            assert params.bitrate_bpp is not None
            rate = max(1000, int(params.bitrate_bpp * ew * eh * params.fps))
            enc.bit_rate = rate
            # A VBV buffer of a few frames forces the rate control to meet the target within a
            # short clip; without it, it starts from a default quantiser and never gets there.
            opts.update({"maxrate": str(rate), "bufsize": str(max(1000, rate // params.fps * 4))})
        elif params.codec == "libvpx-vp9":
            enc.bit_rate = 0  # pure constant quality
        enc.options = opts
        packets = []
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(padded[i], format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            packets.extend(enc.encode(frame))
        packets.extend(enc.encode(None))
        dec: Any = av.CodecContext.create(DECODERS[params.codec], "r")
        dec.thread_count = 1
        decoded = []
        for packet in packets:
            decoded.extend(dec.decode(packet))
        decoded.extend(dec.decode(None))
    except (av.FFmpegError, ValueError) as exc:
        raise EncodeFailed(f"{params.codec} failed on a {w}x{h} clip of {t} frame(s): {exc}") from exc
    if len(decoded) != t:
        raise EncodeFailed(f"{params.codec} returned {len(decoded)} frames for {t}")
    out = np.stack([f.to_ndarray(format="rgb24") for f in decoded])
    return out[:, :h, :w]
