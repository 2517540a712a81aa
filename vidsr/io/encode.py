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

log = logging.getLogger(__name__)

Backend = Literal["auto", "ffmpeg", "pyav"]
_CRF_CODECS = {"libx264", "libx265", "libsvtav1", "libvpx-vp9", "libaom-av1"}
_PRESET_CODECS = {"libx264", "libx265", "libsvtav1"}


@dataclass(frozen=True)
class EncodeSettings:
    codec: str = "libx264"
    crf: float | None = 18
    preset: str | None = "medium"
    pix_fmt: str = "yuv420p"
    backend: Backend = "auto"

    def codec_options(self) -> dict[str, str]:
        """Encoder private options, identical for both back ends."""
        opts: dict[str, str] = {}
        if self.crf is not None and self.codec in _CRF_CODECS:
            opts["crf"] = f"{self.crf:g}"
            if self.codec == "libvpx-vp9":
                opts["b"] = "0"  # VP9 needs bitrate 0 for constant-quality mode
        if self.preset is not None and self.codec in _PRESET_CODECS:
            opts["preset"] = str(self.preset)
        return opts


def validate_settings(settings: EncodeSettings) -> None:
    try:
        av.codec.Codec(settings.codec, "w")
    except Exception as exc:  # PyAV raises several types for unknown codecs
        raise OptionError(f"unknown or unavailable video encoder {settings.codec!r}") from exc
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
                 input_pix_fmt: str = "rgb24") -> FrameEncoder:
    """Start an encoder writing a video-only file at `path`.

    It takes frames laid out as PyAV's VideoFrame.from_ndarray expects `input_pix_fmt`:
    rgb24 (converted to the output format with the stream's matrix) or the output
    format itself (converted on the device already, passed through as is).
    """
    if input_pix_fmt not in ("rgb24", settings.pix_fmt):
        raise EncoderError(f"encoder input must be rgb24 or {settings.pix_fmt}, not {input_pix_fmt}")
    exe = find_ffmpeg() if settings.backend in ("auto", "ffmpeg") else None
    if settings.backend == "ffmpeg" and exe is None:
        raise EncoderError("--encoder ffmpeg was asked for but no ffmpeg binary was found")
    if exe is not None:
        return FfmpegProcessEncoder(path, width, height, rate, color, settings, exe, container_format,
                                    input_pix_fmt)
    log.info("no ffmpeg binary; encoding in-process with PyAV")
    return PyAVEncoder(path, width, height, rate, color, settings, container_format, input_pix_fmt)


class FfmpegProcessEncoder:
    """An ffmpeg child process reading raw frames from its stdin."""

    def __init__(self, path: Path, width: int, height: int, rate: Fraction, color: ColorInfo,
                 settings: EncodeSettings, exe: str, container_format: str | None, input_pix_fmt: str) -> None:
        import ffmpeg  # ffmpeg-python

        self._frame_bytes = _frame_bytes(input_pix_fmt, width, height)
        src = ffmpeg.input("pipe:", format="rawvideo", pix_fmt=input_pix_fmt, s=f"{width}x{height}",
                           framerate=f"{rate.numerator}/{rate.denominator}")
        scaled = src
        if input_pix_fmt == "rgb24":
            # The matrix/range of the RGB->YUV step must be the one we tag, or players shift colours.
            scaled = src.filter("scale", out_color_matrix=_sws_matrix_name(color), out_range=color.range_tag,
                                flags="bicubic+accurate_rnd+full_chroma_int")
        out_kwargs: dict[str, str] = {
            "vcodec": settings.codec, "pix_fmt": settings.pix_fmt,
            "colorspace": color.matrix_tag, "color_range": color.range_tag,
            "color_primaries": color.primaries_tag, "color_trc": color.trc_tag,
            **settings.codec_options(),
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
        if frames.dtype != np.uint8 or frames.size % self._frame_bytes:
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
                 settings: EncodeSettings, container_format: str | None, input_pix_fmt: str) -> None:
        self._input_pix_fmt = input_pix_fmt
        self._container = av.open(str(path), mode="w", format=container_format)
        stream = self._container.add_stream(settings.codec, rate=rate, options=settings.codec_options())
        stream.width, stream.height, stream.pix_fmt = width, height, settings.pix_fmt
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_range = color.av_matrix, 2 if color.full_range else 1
        ctx.color_primaries, ctx.color_trc = color.primaries, color.trc
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


def _frame_bytes(pix_fmt: str, width: int, height: int) -> int:
    """Bytes of one raw frame in the formats encoders are fed (see engine/pixfmt.py)."""
    per_pixel = {"rgb24": 3.0, "yuv444p": 3.0, "yuv420p": 1.5}
    if pix_fmt not in per_pixel:
        raise EncoderError(f"raw input in {pix_fmt} is not supported; feed rgb24")
    return int(width * height * per_pixel[pix_fmt])


def _sws_matrix_name(color: ColorInfo) -> str:
    return {"ITU709": "bt709", "ITU601": "bt601", "SMPTE170M": "smpte170m",
            "SMPTE240M": "smpte240m", "BT2020": "bt2020"}[color.matrix]
