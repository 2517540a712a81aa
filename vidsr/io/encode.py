"""Encode RGB frames into a video-only file.

Two interchangeable back ends with the same settings and the same result format:
an ffmpeg process fed raw frames on stdin (driven by ffmpeg-python), and PyAV
in-process for machines with no ffmpeg binary at all. Other streams are added later
by mux.py, so both back ends only ever see pictures.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, Protocol

import av
import numpy as np

from vidsr.errors import EncoderError, OptionError
from vidsr.io.color import ColorInfo
from vidsr.io.hdr import HdrMetadata

log = logging.getLogger(__name__)

Backend = Literal["auto", "ffmpeg", "pyav"]
_CRF_CODECS = {"libx264", "libx265", "libsvtav1", "libvpx-vp9", "libaom-av1"}
_PRESET_CODECS = {"libx264", "libx265", "libsvtav1"}


@dataclass(frozen=True)
class EncodeSettings:
    """Encoder choice; codec and pix_fmt None mean "like the input" (see formats.py)."""

    codec: str | None = None
    crf: float | None = 18
    preset: str | None = "medium"
    pix_fmt: str | None = None
    backend: Backend = "auto"

    def codec_options(self, hdr: HdrMetadata | None = None) -> dict[str, str]:
        """Encoder private options, identical for both back ends; `hdr` adds HDR10 metadata."""
        opts: dict[str, str] = {}
        if self.crf is not None and self.codec in _CRF_CODECS:
            opts["crf"] = f"{self.crf:g}"
            if self.codec == "libvpx-vp9":
                opts["b"] = "0"  # VP9 needs bitrate 0 for constant-quality mode
        if self.preset is not None and self.codec in _PRESET_CODECS:
            opts["preset"] = str(self.preset)
        if self.codec == "libx265":
            opts["x265-params"] = "log-level=error"  # x265 otherwise prints pages of statistics
        for key, value in (hdr.encoder_params(self.codec) if hdr else {}).items():
            opts[key] = f"{opts[key]}:{value}" if key in opts else value
        return opts


def validate_settings(settings: EncodeSettings) -> None:
    if settings.codec is not None:
        try:
            av.codec.Codec(settings.codec, "w")
        except Exception as exc:  # PyAV raises several types for unknown codecs
            raise OptionError(f"unknown or unavailable video encoder {settings.codec!r}") from exc
    if settings.pix_fmt is not None:
        try:
            av.VideoFormat(settings.pix_fmt)
        except ValueError as exc:
            raise OptionError(f"unknown pixel format {settings.pix_fmt!r}") from exc


def needs_even_size(pix_fmt: str) -> tuple[bool, bool]:
    """Whether chroma subsampling forces an even (width, height)."""
    fmt = av.VideoFormat(pix_fmt)
    return fmt.chroma_width(64) < 64, fmt.chroma_height(64) < 64


def find_ffmpeg() -> str | None:
    """ffmpeg from PATH, else the static binary imageio-ffmpeg ships, else None."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # not installed, or its binary is missing for this platform
        return None


class FrameEncoder(Protocol):
    def write(self, frames: np.ndarray) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


def open_encoder(path: Path, *, width: int, height: int, rate: Fraction, color: ColorInfo,
                 settings: EncodeSettings, container_format: str | None = None,
                 input_pix_fmt: str = "rgb24", sample_aspect_ratio: Fraction = Fraction(1),
                 hdr: HdrMetadata | None = None) -> FrameEncoder:
    """Start an encoder writing a video-only file at `path`.

    It takes frames laid out as PyAV's VideoFrame.from_ndarray expects `input_pix_fmt`:
    packed RGB(A) (converted to the output format with the stream's matrix) or the
    output format itself (converted on the device already, passed through as is).
    """
    assert settings.codec is not None and settings.pix_fmt is not None, "resolve_encoding() first"
    if not (_is_rgb(input_pix_fmt) or input_pix_fmt == settings.pix_fmt):
        raise EncoderError(f"encoder input must be packed RGB(A) or {settings.pix_fmt}, not {input_pix_fmt}")
    sar = sample_aspect_ratio if sample_aspect_ratio and sample_aspect_ratio != 1 else None
    exe = find_ffmpeg() if settings.backend in ("auto", "ffmpeg") else None
    if settings.backend == "ffmpeg" and exe is None:
        raise EncoderError("--encoder ffmpeg was asked for but no ffmpeg binary was found")
    if exe is not None:
        return FfmpegProcessEncoder(path, width, height, rate, color, settings, exe, container_format,
                                    input_pix_fmt, sar, hdr)
    log.info("no ffmpeg binary; encoding in-process with PyAV")
    return PyAVEncoder(path, width, height, rate, color, settings, container_format, input_pix_fmt, sar, hdr)


class FfmpegProcessEncoder:
    """An ffmpeg child process reading raw frames from its stdin."""

    def __init__(self, path: Path, width: int, height: int, rate: Fraction, color: ColorInfo,
                 settings: EncodeSettings, exe: str, container_format: str | None, input_pix_fmt: str,
                 sar: Fraction | None, hdr: HdrMetadata | None) -> None:
        import ffmpeg  # ffmpeg-python

        self._frame_bytes = _frame_bytes(input_pix_fmt, width, height)
        # FFmpeg >= 7 carries colour tags on frames: tag the raw input, or output options are overridden.
        tags = {"color_primaries": color.primaries_tag, "color_trc": color.trc_tag}
        if not _is_rgb(input_pix_fmt):
            tags.update(colorspace=color.matrix_tag, color_range=color.range_tag)
        src = ffmpeg.input("pipe:", format="rawvideo", pix_fmt=input_pix_fmt, s=f"{width}x{height}",
                           framerate=f"{rate.numerator}/{rate.denominator}", **tags)
        scaled = src
        if _is_rgb(input_pix_fmt) and not _is_rgb(settings.pix_fmt):
            # The matrix/range of the RGB->YUV step must be the one we tag, or players shift colours.
            scaled = src.filter("scale", out_color_matrix=_sws_matrix_name(color), out_range=color.range_tag,
                                flags="bicubic+accurate_rnd+full_chroma_int")
        if sar is not None:
            scaled = scaled.filter("setsar", f"{sar.numerator}/{sar.denominator}")
        out_kwargs: dict[str, str] = {
            "vcodec": settings.codec, "pix_fmt": settings.pix_fmt,
            "colorspace": color.matrix_tag, "color_range": color.range_tag,
            "color_primaries": color.primaries_tag, "color_trc": color.trc_tag,
            **settings.codec_options(hdr),
        }
        if container_format:
            out_kwargs["format"] = container_format
        args = ffmpeg.compile(ffmpeg.output(scaled, str(path), **out_kwargs), cmd=exe, overwrite_output=True)
        args[1:1] = ["-hide_banner", "-nostdin", "-loglevel", "error"]
        # stderr goes to a file: a pipe nobody reads would fill and stall ffmpeg.
        self._stderr = tempfile.TemporaryFile()
        log.debug("encoder command: %s", " ".join(args))
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr)

    def write(self, frames: np.ndarray) -> None:
        if frames.nbytes % self._frame_bytes:
            raise EncoderError(f"encoder got frames of the wrong size/type {frames.shape} {frames.dtype}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frames).data)
        except (BrokenPipeError, OSError) as exc:
            raise EncoderError(f"ffmpeg stopped: {self._error_text()}") from exc

    def close(self) -> None:
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        rc = self._proc.wait()
        if rc != 0:
            raise EncoderError(f"ffmpeg failed (exit {rc}): {self._error_text()}")
        self._stderr.close()

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._stderr.close()

    def _error_text(self) -> str:
        if self._proc.poll() is None:
            self._proc.wait(timeout=10)
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no message"


class PyAVEncoder:
    """The same encode, in-process through PyAV's libavcodec."""

    def __init__(self, path: Path, width: int, height: int, rate: Fraction, color: ColorInfo,
                 settings: EncodeSettings, container_format: str | None, input_pix_fmt: str,
                 sar: Fraction | None, hdr: HdrMetadata | None) -> None:
        self._input_pix_fmt = input_pix_fmt
        self._container = av.open(str(path), mode="w", format=container_format)
        stream = self._container.add_stream(settings.codec, rate=rate, options=settings.codec_options(hdr))
        stream.width, stream.height, stream.pix_fmt = width, height, settings.pix_fmt
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_range = color.av_matrix, 2 if color.full_range else 1
        ctx.color_primaries, ctx.color_trc = color.primaries, color.trc
        if sar is not None:
            ctx.sample_aspect_ratio = sar
        self._stream, self._color, self._pix_fmt = stream, color, settings.pix_fmt
        self._index = 0

    def write(self, frames: np.ndarray) -> None:
        rng = "JPEG" if self._color.full_range else "MPEG"
        for img in frames:
            frame = av.VideoFrame.from_ndarray(img, format=self._input_pix_fmt)
            if self._input_pix_fmt != self._pix_fmt:
                frame = frame.reformat(format=self._pix_fmt, src_colorspace=self._color.matrix,
                                       dst_colorspace=self._color.matrix, src_color_range="JPEG",
                                       dst_color_range=rng, interpolation="BICUBIC")
            frame.pts = self._index
            self._index += 1
            self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        self._container.mux(self._stream.encode(None))
        self._container.close()

    def abort(self) -> None:
        try:
            self._container.close()
        except av.error.FFmpegError:
            pass


# Raw layouts the device side produces (see engine/pixfmt.py): bytes per pixel.
_RAW_BYTES_PER_PIXEL = {"rgb24": 3.0, "rgba": 4.0, "rgb48le": 6.0, "rgba64le": 8.0, "yuv420p": 1.5,
                        "yuv420p10le": 3.0, "yuv444p": 3.0, "gray": 1.0, "gray10le": 2.0}


def _frame_bytes(pix_fmt: str, width: int, height: int) -> int:
    if pix_fmt not in _RAW_BYTES_PER_PIXEL:
        raise EncoderError(f"raw input in {pix_fmt} is not supported; feed one of {', '.join(_RAW_BYTES_PER_PIXEL)}")
    return int(width * height * _RAW_BYTES_PER_PIXEL[pix_fmt])


def _is_rgb(pix_fmt: str) -> bool:
    return pix_fmt.startswith("rgb")


def _sws_matrix_name(color: ColorInfo) -> str:
    return {"ITU709": "bt709", "ITU601": "bt601", "SMPTE170M": "smpte170m",
            "SMPTE240M": "smpte240m", "BT2020": "bt2020"}[color.matrix]
