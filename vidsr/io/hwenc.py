"""Hardware video encoders: can the one asked for actually run here? Asked once, before any work.

FFmpeg builds carry encoders for hardware that most machines lack (PyAV's wheel has
NVENC, Quick Sync, AMF and V4L2 encoders whatever the machine). Such an encoder only
fails when it is opened, deep in a run, with a message like "Operation not
permitted". This module opens a tiny one first (the same way the run will: in-process
through PyAV, or through the ffmpeg binary) and turns a failure into one line that
says what the encoder needs and what this machine has.
"""
from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av

from vidsr.errors import OptionError

log = logging.getLogger(__name__)

# FFmpeg's AVCodec capability bits (libavcodec/codec.h) for encoders backed by hardware.
_CAP_HARDWARE = 1 << 18
_CAP_HYBRID = 1 << 19


@dataclass(frozen=True)
class Family:
    """Encoders sharing one hardware API, named by FFmpeg as <codec>_<suffix>."""

    suffix: str
    needs: str                  # "an NVIDIA GPU with NVENC"
    hardware_frames: bool = False  # takes only frames already on the device (needs a hwupload filter)


FAMILIES = {f.suffix: f for f in (
    Family("nvenc", "an NVIDIA GPU with NVENC and the NVIDIA driver (libcuda, libnvidia-encode)"),
    Family("qsv", "an Intel GPU with Quick Sync Video and the oneVPL runtime"),
    Family("amf", "an AMD GPU with the AMF runtime (libamfrt64)"),
    Family("videotoolbox", "macOS with VideoToolbox"),
    Family("v4l2m2m", "a V4L2 memory-to-memory encoder device (/dev/video*)"),
    Family("mediacodec", "Android MediaCodec"),
    Family("mf", "Windows Media Foundation"),
    Family("vaapi", "a VA-API device (/dev/dri/renderD*)", hardware_frames=True),
    Family("vulkan", "a Vulkan device with video encoding", hardware_frames=True),
    Family("d3d12va", "Direct3D 12 video encoding (Windows)", hardware_frames=True),
)}

# NVIDIA data-centre GPUs built for compute, with NVDEC decoders but no NVENC encoder
# (NVIDIA's Video Encode and Decode GPU Support Matrix).
_NO_NVENC = ("A100", "A800", "A30", "H100", "H800", "H200", "H20", "GH200")


@dataclass(frozen=True)
class OpenAttempt:
    """What happened when a tiny encoder was opened."""

    opened: bool
    detail: str = ""            # FFmpeg's own reason, one line


TryOpen = Callable[[str, str], OpenAttempt]      # (encoder, pix_fmt) -> attempt
ListGpus = Callable[[], list[str]]               # names of the NVIDIA GPUs torch sees


def family_of(encoder: str) -> Family | None:
    """The hardware family of an FFmpeg encoder name, or None for a software encoder."""
    return FAMILIES.get(encoder.rsplit("_", 1)[-1]) if "_" in encoder else None


# x264's preset names (fastest first) onto each family's own: NVENC's p1 (fastest) .. p7, Quick
# Sync's names, AMF's three quality levels. Families not listed take no preset.
_X264_ORDER = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
               "placebo")
_PRESETS = {
    "nvenc": dict(zip(_X264_ORDER, ("p1", "p1", "p2", "p3", "p3", "p4", "p5", "p6", "p7", "p7"))),
    "qsv": dict(zip(_X264_ORDER, ("veryfast", "veryfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                                  "veryslow", "veryslow"))),
    "amf": dict(zip(_X264_ORDER, ("speed",) * 5 + ("balanced",) + ("quality",) * 4)),
}


def quality_options(encoder: str, crf: float | None, preset: str | None) -> dict[str, str]:
    """--crf and --preset in a hardware encoder's own terms (constant quality, its preset names).

    Hardware encoders have no CRF; each has a constant-quality mode on a similar 0-51 QP
    scale, which is what a user asking for a CRF wants, rather than the encoder's default bitrate.
    """
    family = family_of(encoder)
    if family is None:
        return {}
    opts: dict[str, str] = {}
    if crf is not None:
        q = str(round(crf))
        if family.suffix == "nvenc":
            opts.update(rc="vbr", cq=q, b="0")
        elif family.suffix == "qsv":
            opts["global_quality"] = q
        elif family.suffix == "amf":
            opts.update(rc="cqp", qp_i=q, qp_p=q, qp_b=q)
        elif family.suffix == "vaapi":
            opts.update(rc_mode="CQP", qp=q)
    table = _PRESETS.get(family.suffix)
    if preset is not None and table is not None:
        opts["quality" if family.suffix == "amf" else "preset"] = table.get(preset, preset)
    return opts


def is_hardware_encoder(encoder: str) -> bool:
    if family_of(encoder) is not None:
        return True
    try:
        caps = av.codec.Codec(encoder, "w").capabilities
    except Exception:  # unknown to PyAV's build: judged by name only
        return False
    return bool(caps & (_CAP_HARDWARE | _CAP_HYBRID))


def check_hardware_encoder(encoder: str, *, pix_fmt: str | None = None, ffmpeg_exe: str | None = None,
                           try_open: TryOpen | None = None, gpus: ListGpus | None = None) -> None:
    """Raise OptionError (one line) unless `encoder` opens here; returns at once for software encoders.

    `ffmpeg_exe` is the binary that will encode (None: PyAV in-process); `try_open` and
    `gpus` replace the real checks (for tests, or to reuse a result).
    """
    fam = family_of(encoder)
    if fam is None and not is_hardware_encoder(encoder):
        return
    needs = fam.needs if fam else "the hardware it was built for"
    if fam is not None and fam.hardware_frames:
        raise OptionError(f"{encoder} needs {needs} and frames uploaded to it (an FFmpeg hwupload filter), "
                          "which vidsr does not do; use a software encoder or one of "
                          + ", ".join(f"*_{s}" for s, f in FAMILIES.items() if not f.hardware_frames))
    fmt = pix_fmt or _software_format(encoder)
    if try_open is None:
        try_open = (lambda e, f: open_with_ffmpeg(ffmpeg_exe, e, f)) if ffmpeg_exe else open_with_pyav
    attempt = try_open(encoder, fmt)
    if attempt.opened:
        log.info("%s opens on this machine", encoder)
        return
    raise OptionError(refusal(encoder, attempt.detail, (gpus or cuda_gpu_names)() if fam and fam.suffix == "nvenc"
                              else []))


def refusal(encoder: str, detail: str, gpus: list[str]) -> str:
    """The one line saying why `encoder` cannot run here."""
    fam = family_of(encoder)
    needs = fam.needs if fam else "the hardware it was built for"
    why = f" (FFmpeg: {detail})" if detail else ""
    if fam is not None and fam.suffix == "nvenc":
        head = f"{encoder} needs an NVIDIA GPU with NVENC"
        without = [g for g in gpus if any(_model_in(m, g) for m in _NO_NVENC)]
        if gpus and len(without) == len(gpus):
            return (f"{head}; this machine has none ({', '.join(sorted(set(gpus)))}: H100, H200 and A100-class GPUs "
                    "have no NVENC); use libx264, libx265 or libsvtav1")
        if not gpus:
            return f"{head}; this machine has none{why}; use libx264, libx265 or libsvtav1"
        return f"{encoder} could not be opened on {', '.join(sorted(set(gpus)))}{why}"
    return f"{encoder} needs {needs}; it could not be opened on this machine{why}"


def open_with_pyav(encoder: str, pix_fmt: str) -> OpenAttempt:
    """Open a 256x256 encoder in-process, keeping FFmpeg's last log line as the reason."""
    try:
        ctx = av.CodecContext.create(encoder, "w")
    except Exception as exc:  # not in this build
        return OpenAttempt(False, f"not in PyAV's FFmpeg build ({_one_line(exc)})")
    ctx.width, ctx.height, ctx.pix_fmt = 256, 256, pix_fmt
    ctx.time_base, ctx.framerate = Fraction(1, 25), Fraction(25)
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # FFmpeg says why only in its log; PyAV logs nothing by default
    try:
        with av.logging.Capture(True) as logs:
            try:
                ctx.open()
                return OpenAttempt(True)
            except av.error.FFmpegError as exc:
                lines = [text.strip() for _level, _name, text in logs if text.strip()]
                return OpenAttempt(False, lines[0] if lines else _one_line(exc))
    finally:
        av.logging.set_level(previous)


def open_with_ffmpeg(exe: str, encoder: str, pix_fmt: str, timeout: float = 60) -> OpenAttempt:
    """Encode one black 256x256 frame to nothing with the ffmpeg binary that will run the real encode."""
    args = [exe, "-hide_banner", "-nostdin", "-loglevel", "warning", "-f", "lavfi",
            "-i", "color=c=black:s=256x256:r=25", "-frames:v", "1", "-pix_fmt", pix_fmt, "-c:v", encoder,
            "-f", "null", "-"]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return OpenAttempt(False, _one_line(exc))
    if proc.returncode == 0:
        return OpenAttempt(True)
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    # The encoder's own line ("[h264_nvenc @ 0x..] Cannot load libcuda.so.1") says why; the rest is fallout.
    own = [ln for ln in lines if ln.startswith(f"[{encoder} @") or ln.startswith("[AMF @")
           or "Unknown encoder" in ln]
    pick = (own or lines or [f"exit code {proc.returncode}"])[0]
    return OpenAttempt(False, pick.split("] ", 1)[-1] if pick.startswith("[") else pick)


def cuda_gpu_names() -> list[str]:
    """Names of the CUDA devices torch sees (empty without CUDA)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a broken driver reads as no GPU; FFmpeg's own reason is still reported
        return []


def _software_format(encoder: str) -> str:
    """The first pixel format the encoder takes from system memory (yuv420p where it is offered)."""
    try:
        formats = [f.name for f in av.codec.Codec(encoder, "w").video_formats or []]
    except Exception:
        return "yuv420p"
    hw = {"cuda", "qsv", "vaapi", "vulkan", "d3d11", "d3d12", "amf", "videotoolbox_vld", "drm_prime", "mediacodec"}
    soft = [f for f in formats if f not in hw]
    return "yuv420p" if not soft or "yuv420p" in soft else soft[0]


def _model_in(model: str, gpu_name: str) -> bool:
    """'H100' in 'NVIDIA H100 80GB HBM3' as a word, so 'H20' does not match 'H200'."""
    return any(word.upper() == model or word.upper().startswith(model + "-") for word in gpu_name.split())


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
