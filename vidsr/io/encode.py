"""Encode RGB frames into a video-only file.

Two interchangeable back ends with the same settings and the same result format:
an ffmpeg process fed raw frames on stdin (driven by ffmpeg-python), and PyAV
in-process for machines with no ffmpeg binary at all. Other streams are added later
by mux.py, so both back ends only ever see pictures.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np

from vidsr.choices import EncoderBackend
from vidsr.errors import EncoderError, OptionError
from vidsr.io.color import ColorInfo, OutputTags, output_tags
from vidsr.io.hdr import HdrMetadata
from vidsr.io.hwenc import check_hardware_encoder, is_hardware_encoder, quality_options
from vidsr.io.pixel_formats import RAW_LAYOUTS, is_packed_rgb, subsampled_chroma

log = logging.getLogger(__name__)

_CRF_CODECS = {"libx264", "libx265", "libsvtav1", "libvpx-vp9", "libaom-av1"}
_PRESET_CODECS = {"libx264", "libx265", "libsvtav1"}
# x264's and x265's preset names, fastest first. SVT-AV1 numbers its presets instead (13 fastest
# .. 0 slowest); the same names map onto its range so that one --preset (the default "medium"
# included) means the same trade-off whatever the codec.
_NAMED_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                  "placebo")
_SVT_AV1_PRESETS = dict(zip(_NAMED_PRESETS, (12, 11, 10, 9, 8, 7, 5, 4, 3, 2)))


@dataclass(frozen=True)
class EncodeSettings:
    """Encoder choice; codec and pix_fmt None mean "like the input" (see formats.py)."""

    codec: str | None = None
    crf: float | None = 18
    preset: str | None = "medium"
    pix_fmt: str | None = None
    backend: EncoderBackend = "auto"
    threads: int = 0              # encoder threads; 0: the encoder's own choice (from the cores)

    def codec_options(self, hdr: HdrMetadata | None = None) -> dict[str, str]:
        """Encoder private options, identical for both back ends; `hdr` adds HDR10 metadata."""
        opts: dict[str, str] = {}
        if self.crf is not None and self.codec in _CRF_CODECS:
            opts["crf"] = f"{self.crf:g}"
            if self.codec == "libvpx-vp9":
                opts["b"] = "0"  # VP9 needs bitrate 0 for constant-quality mode
        if self.preset is not None and self.codec in _PRESET_CODECS:
            opts["preset"] = _preset_option(self.codec, str(self.preset))
        if self.codec is not None:
            opts.update(quality_options(self.codec, self.crf, None if self.preset is None else str(self.preset)))
        if self.codec == "libx265":
            opts["x265-params"] = "log-level=error"  # x265 otherwise prints pages of statistics
        for key, value in (hdr.encoder_params(self.codec) if hdr else {}).items():
            opts[key] = f"{opts[key]}:{value}" if key in opts else value
        return opts


def _preset_option(codec: str, preset: str) -> str:
    """The encoder's own spelling of `preset` (SVT-AV1 takes a number; names are mapped onto it)."""
    if codec == "libsvtav1" and preset in _SVT_AV1_PRESETS:
        return str(_SVT_AV1_PRESETS[preset])
    return preset


def _check_preset(codec: str | None, preset: str | None) -> None:
    # No codec named: the output's is chosen like the input's (formats.py), x264 or x265 unless the
    # input has alpha, and both take the named presets.
    codec = codec or "libx264"
    if preset is None or codec not in _PRESET_CODECS:
        return
    if codec == "libsvtav1":
        if preset in _SVT_AV1_PRESETS or (preset.lstrip("-").isdigit() and -2 <= int(preset) <= 13):
            return
        raise OptionError(f"--preset {preset!r} is not one libsvtav1 takes: -2..13 (13 fastest) or "
                          f"{', '.join(_NAMED_PRESETS)}")
    if preset not in _NAMED_PRESETS:
        raise OptionError(f"--preset {preset!r} is not one {codec} takes: {', '.join(_NAMED_PRESETS)}")


def validate_settings(settings: EncodeSettings) -> None:
    _check_preset(settings.codec, None if settings.preset is None else str(settings.preset))
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
    if settings.threads < 0:
        raise OptionError(f"encoder threads must be >= 0 (0: the encoder's choice), not {settings.threads}")
    if settings.codec is not None and is_hardware_encoder(settings.codec):
        # A hardware encoder the machine lacks fails only when opened, deep in a run: try a tiny
        # one now, the way the run will open it (ffmpeg binary or PyAV), and refuse in one line.
        exe = find_ffmpeg(encoder=settings.codec) if settings.backend in ("auto", "ffmpeg") else None
        check_hardware_encoder(settings.codec, pix_fmt=settings.pix_fmt, ffmpeg_exe=exe)


# The oldest FFmpeg vidsr drives as a binary: 5.1 (libavcodec 59.37, Debian 12's). Earlier
# releases lack options vidsr passes (libsvtav1's crf, for one, arrived in 5.1), and nothing
# older is tested. An older or incomplete binary is passed over for imageio-ffmpeg's, else PyAV.
MIN_FFMPEG = "5.1"
_MIN_LIBAVCODEC = (59, 37)
_PROBE_TIMEOUT_S = 20


@dataclass(frozen=True)
class FfmpegBinary:
    """An ffmpeg executable and what it can do, as it reports itself."""

    path: str
    origin: str                    # "PATH" or "imageio-ffmpeg"
    version: str                   # as printed, e.g. "5.1.6-0+deb12u1" or "N-118000-gabc"
    libavcodec: tuple[int, int]
    encoders: frozenset[str]
    muxers: frozenset[str]
    filters: frozenset[str]

    def lacks(self, *, encoder: str | None = None, muxer: str | None = None,
              filters: tuple[str, ...] = ()) -> str | None:
        """Why this binary cannot do the job, or None if it can."""
        if self.libavcodec < _MIN_LIBAVCODEC:
            return f"FFmpeg {self.version} is older than {MIN_FFMPEG}"
        if encoder is not None and encoder not in self.encoders:
            return f"it has no {encoder} encoder"
        if muxer is not None and muxer not in self.muxers:
            return f"it cannot write {muxer}"
        missing = [f for f in filters if f not in self.filters]
        if missing:
            return f"it has no {', '.join(missing)} filter"
        return None

    def describe(self) -> str:
        return f"{self.path} (FFmpeg {self.version}, from {self.origin})"


def find_ffmpeg(*, encoder: str | None = None, muxer: str | None = None,
                filters: tuple[str, ...] = ()) -> str | None:
    """The path of an ffmpeg able to do the job, or None (then use PyAV): see select_ffmpeg()."""
    binary = select_ffmpeg(encoder=encoder, muxer=muxer, filters=filters)
    return binary.path if binary else None


def select_ffmpeg(*, encoder: str | None = None, muxer: str | None = None,
                  filters: tuple[str, ...] = ()) -> FfmpegBinary | None:
    """The first of ffmpeg on PATH, then imageio-ffmpeg's static binary, that runs, is at least
    MIN_FFMPEG and has the encoder, muxer and filters asked for; None if neither does."""
    for path, origin in _candidates():
        binary = inspect_ffmpeg(path, origin)
        reason = "it does not run" if binary is None else binary.lacks(encoder=encoder, muxer=muxer,
                                                                       filters=filters)
        if reason is None:
            return binary
        log.info("not using %s (from %s): %s", path, origin, reason)
    return None


def _candidates() -> Iterator[tuple[str, str]]:
    exe = shutil.which("ffmpeg")
    if exe:
        yield exe, "PATH"
    try:
        import imageio_ffmpeg

        yield imageio_ffmpeg.get_ffmpeg_exe(), "imageio-ffmpeg"
    except Exception:  # not installed, or its binary is missing for this platform
        return


@functools.lru_cache(maxsize=8)
def inspect_ffmpeg(path: str, origin: str) -> FfmpegBinary | None:
    """Run `path` to learn its version, encoders, muxers and filters (once per process); None if it fails."""
    try:
        version_text = _run_ffmpeg(path, "-version")
        encoders = _listed_names(_run_ffmpeg(path, "-encoders"))
        muxers = _listed_names(_run_ffmpeg(path, "-muxers"))
        filters = _listed_names(_run_ffmpeg(path, "-filters"))
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("%s (from %s) does not run: %s", path, origin, exc)
        return None
    version = re.search(r"version (\S+)", version_text)
    lavc = re.search(r"libavcodec\s+(\d+)\.\s*(\d+)", version_text)
    if version is None or lavc is None:
        log.info("%s (from %s) does not look like ffmpeg", path, origin)
        return None
    return FfmpegBinary(path, origin, version.group(1), (int(lavc.group(1)), int(lavc.group(2))),
                        encoders, muxers, filters)


def _run_ffmpeg(path: str, flag: str) -> str:
    done = subprocess.run([path, "-hide_banner", flag], capture_output=True, text=True, errors="replace",
                          timeout=_PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL, check=True)
    return done.stdout


def _listed_names(text: str) -> frozenset[str]:
    """Names from `ffmpeg -encoders/-muxers/-filters`: the word after a flags column such as
    "V....D", " E" or "T.C"; legend lines ("V..... = Video") are skipped."""
    names: set[str] = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] != "=" and re.fullmatch(r"[A-Z.|]{1,8}", parts[0]):
            names.update(parts[1].split(","))
    return frozenset(names)


class FrameEncoder(Protocol):
    def write(self, frames: np.ndarray) -> None: ...
    def close(self) -> None: ...
    def interrupt(self) -> None: ...
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
    if not (is_packed_rgb(input_pix_fmt) or input_pix_fmt == settings.pix_fmt):
        raise EncoderError(f"encoder input must be packed RGB(A) or {settings.pix_fmt}, not {input_pix_fmt}")
    sar = sample_aspect_ratio if sample_aspect_ratio and sample_aspect_ratio != 1 else None
    binary = None
    if settings.backend in ("auto", "ffmpeg"):
        filters = (("scale",) if _needs_matrix(input_pix_fmt, settings.pix_fmt) else ()) + (("setsar",) if sar else ())
        binary = select_ffmpeg(encoder=settings.codec, muxer=container_format, filters=filters)
        if binary is None and settings.backend == "ffmpeg":
            raise EncoderError(f"--encoder ffmpeg: no usable ffmpeg binary (FFmpeg >= {MIN_FFMPEG} with "
                               f"{settings.codec}) on PATH or from imageio-ffmpeg; use --encoder pyav")
    if binary is not None:
        log.debug("encoding with %s", binary.describe())
        return FfmpegProcessEncoder(path, width, height, rate, color, settings, binary.path, container_format,
                                    input_pix_fmt, sar, hdr)
    log.debug("encoding in-process with PyAV (libavcodec %s)", ".".join(map(str, av.library_versions["libavcodec"])))
    return PyAVEncoder(path, width, height, rate, color, settings, container_format, input_pix_fmt, sar, hdr)


class FfmpegProcessEncoder:
    """An ffmpeg child process reading raw frames from its stdin."""

    def __init__(self, path: Path, width: int, height: int, rate: Fraction, color: ColorInfo,
                 settings: EncodeSettings, exe: str, container_format: str | None, input_pix_fmt: str,
                 sar: Fraction | None, hdr: HdrMetadata | None) -> None:
        import ffmpeg  # ffmpeg-python

        assert settings.pix_fmt is not None
        self._frame_bytes = _frame_bytes(input_pix_fmt, width, height)
        tags = output_tags(color, settings.pix_fmt)
        # FFmpeg >= 7 carries colour tags on frames: tag the raw input, or output options are overridden.
        in_tags = output_tags(color, input_pix_fmt)
        src = ffmpeg.input("pipe:", format="rawvideo", pix_fmt=input_pix_fmt, s=f"{width}x{height}",
                           framerate=f"{rate.numerator}/{rate.denominator}", **_tag_options(in_tags))
        scaled = src
        if _needs_matrix(input_pix_fmt, settings.pix_fmt):
            # The matrix/range of the RGB->YUV step must be the one we tag, or players shift colours;
            # chroma siting is set explicitly to the centre we tag (see color.output_tags).
            sub_w, sub_h = subsampled_chroma(settings.pix_fmt)
            siting = {}
            if sub_w:
                siting["out_h_chr_pos"] = 128
            if sub_h:
                siting["out_v_chr_pos"] = 128
            scaled = src.filter("scale", out_color_matrix=color.coefficients.sws, out_range=tags.range_tag,
                                flags="bicubic+accurate_rnd+full_chroma_int", **siting)
        if sar is not None:
            scaled = scaled.filter("setsar", f"{sar.numerator}/{sar.denominator}")
        out_kwargs: dict[str, str] = {
            "vcodec": settings.codec, "pix_fmt": settings.pix_fmt, **_tag_options(tags),
            **settings.codec_options(hdr),
        }
        if settings.threads:
            out_kwargs["threads"] = str(settings.threads)
        if container_format:
            out_kwargs["format"] = container_format
        args = ffmpeg.compile(ffmpeg.output(scaled, str(path), **out_kwargs), cmd=exe, overwrite_output=True)
        args[1:1] = ["-hide_banner", "-nostdin", "-loglevel", "error"]
        # stderr goes to a file: a pipe nobody reads would fill and stall ffmpeg.
        self._stderr = tempfile.TemporaryFile()
        log.debug("encoder command: %s", " ".join(args))
        # A session of its own: Ctrl-C in the terminal reaches vidsr only, which stops the encoder itself.
        # Inside a segment worker (a multiprocessing child in a process group of its own, out of the
        # terminal's reach) the encoder stays in the worker's group instead, so that the parent ends
        # both at once: an orphaned ffmpeg would go on to write its part file after the parent has
        # cleaned up.
        import multiprocessing

        in_worker = multiprocessing.parent_process() is not None
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                      start_new_session=not in_worker)

    def write(self, frames: np.ndarray) -> None:
        if frames.nbytes % self._frame_bytes:
            raise EncoderError(f"encoder got frames of the wrong size/type {frames.shape} {frames.dtype}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frames).data)
        except (BrokenPipeError, OSError, ValueError) as exc:  # ValueError: stdin closed by abort()
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

    def interrupt(self) -> None:
        """Stop ffmpeg at once, from any thread: a write blocked on its full pipe fails instead of waiting."""
        if self._proc.poll() is None:
            self._proc.kill()

    def abort(self) -> None:
        self.interrupt()
        self._proc.wait()
        try:
            self._proc.stdin.close()
        except OSError:  # the pipe is broken: the process is gone
            pass
        self._stderr.close()

    def _error_text(self) -> str:
        if self._proc.poll() is None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                return "no message (still running)"
        if self._proc.returncode is not None and self._proc.returncode < 0:
            return f"killed by signal {-self._proc.returncode}"
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        if not lines:
            return "no message"
        # FFmpeg's last line is generic ("Error while opening encoder..."); the encoder library's
        # own complaint before it (e.g. SVT-AV1's "Source Height must be at least 64") is the cause.
        causes = [line for line in lines[:-1] if "error" in line.lower()]
        return f"{causes[0].strip()} ({lines[-1].strip()})" if causes else lines[-1]


class PyAVEncoder:
    """The same encode, in-process through PyAV's libavcodec."""

    def __init__(self, path: Path, width: int, height: int, rate: Fraction, color: ColorInfo,
                 settings: EncodeSettings, container_format: str | None, input_pix_fmt: str,
                 sar: Fraction | None, hdr: HdrMetadata | None) -> None:
        assert settings.pix_fmt is not None
        self._input_pix_fmt = input_pix_fmt
        tags = output_tags(color, settings.pix_fmt)
        options = settings.codec_options(hdr)
        if tags.chroma_location:
            options["chroma_sample_location"] = tags.chroma_location
        self._container = av.open(str(path), mode="w", format=container_format)
        stream = self._container.add_stream(settings.codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, settings.pix_fmt
        ctx = stream.codec_context
        # PyAV asks for slice threads only, which makes x264 split every frame into slices
        # (sliced_threads=1): a third slower than the frame threads the ffmpeg binary uses, and
        # larger files (docs/encoder.md). AUTO lets the encoder pick, as the binary does.
        ctx.thread_type = "AUTO"
        ctx.thread_count = settings.threads
        ctx.colorspace, ctx.color_range = tags.av_matrix, 2 if tags.full_range else 1
        ctx.color_primaries, ctx.color_trc = tags.av_primaries, tags.av_trc
        if sar is not None:
            ctx.sample_aspect_ratio = sar
        self._stream, self._color, self._pix_fmt, self._tags = stream, color, settings.pix_fmt, tags
        self._index = 0

    def write(self, frames: np.ndarray) -> None:
        with same_scheduling():
            self._write(frames)

    def _write(self, frames: np.ndarray) -> None:
        rng = "JPEG" if self._tags.full_range else "MPEG"
        for img in frames:
            frame = av.VideoFrame.from_ndarray(img, format=self._input_pix_fmt)
            if self._input_pix_fmt != self._pix_fmt:
                frame = frame.reformat(format=self._pix_fmt, src_colorspace=self._color.matrix,
                                       dst_colorspace=self._color.matrix, src_color_range="JPEG",
                                       dst_color_range=rng, interpolation="BICUBIC")
            frame.pts = self._index
            self._index += 1
            try:
                self._container.mux(self._stream.encode(frame))
            except av.error.FFmpegError as exc:
                raise EncoderError(f"encoding with {self._stream.codec_context.name} failed: {exc}") from exc

    def close(self) -> None:
        try:
            with same_scheduling():
                self._container.mux(self._stream.encode(None))
                self._container.close()
        except av.error.FFmpegError as exc:
            raise EncoderError(f"encoding with {self._stream.codec_context.name} failed: {exc}") from exc

    def interrupt(self) -> None:
        """Nothing to wake: writes run in-process and return on their own."""

    def abort(self) -> None:
        try:
            self._container.close()
        except av.error.FFmpegError:
            pass


@contextlib.contextmanager
def same_scheduling() -> Iterator[None]:
    """Calls into an encoder library leave the calling thread's CPU scheduling as they found it.

    SVT-AV1 moves the thread that drives it to SCHED_FIFO at top priority where it may (as
    root). Every thread that thread starts later, and every process it spawns, then runs
    real-time too: on a 2-core machine, torch's spinning OpenMP threads in such a process
    starved everything else for minutes.
    """
    if not hasattr(os, "sched_getscheduler"):  # not Linux
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if os.sched_getscheduler(0) != policy:
            os.sched_setscheduler(0, policy, param)


def _tag_options(tags: OutputTags) -> dict[str, str]:
    opts = {"colorspace": tags.matrix, "color_range": tags.range_tag, "color_primaries": tags.primaries,
            "color_trc": tags.trc}
    if tags.chroma_location:
        opts["chroma_sample_location"] = tags.chroma_location
    return opts


def _frame_bytes(pix_fmt: str, width: int, height: int) -> int:
    if pix_fmt not in RAW_LAYOUTS:
        raise EncoderError(f"raw input in {pix_fmt} is not supported; feed one of {', '.join(RAW_LAYOUTS)}")
    return int(width * height * RAW_LAYOUTS[pix_fmt].bytes_per_pixel)


def _needs_matrix(input_pix_fmt: str, output_pix_fmt: str) -> bool:
    """RGB frames to a YUV (or gray) format: a conversion whose matrix and range must be the tagged ones."""
    return is_packed_rgb(input_pix_fmt) and not av.VideoFormat(output_pix_fmt).is_rgb
