"""The benchmark phases, each timed on the same input in the same process."""
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import torch

from vidsr.bench.memory import measure_peak
from vidsr.bench.reference import reference_loop
from vidsr.engine.device import pick_device, pick_dtype
from vidsr.engine.device_formatter import DeviceFormatter
from vidsr.engine.options import UpscaleOptions
from vidsr.engine.tiling import forward_padded
from vidsr.engine.upscaler import FrameUpscaler, SpeedOptions, output_size
from vidsr.engine.video import upscale_video
from vidsr.io.decode import iter_frames
from vidsr.io.encode import EncodeSettings, find_ffmpeg, open_encoder
from vidsr.io.formats import resolve_encoding
from vidsr.io.probe import probe_video
from vidsr.models import load_model

if TYPE_CHECKING:  # paths.py builds on this module
    from vidsr.bench.paths import PathsConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    source: Path                          # a real clip; looped and resized to `size`
    size: tuple[int, int] = (960, 540)
    frames: int = 600
    model: str = "animevideov3"
    scale: float = 2.0
    device: str = "auto"
    precisions: tuple[str, ...] = ("auto",)
    batches: tuple[int, ...] = (1, 4, 8)
    compile: bool = False
    encode: EncodeSettings = field(default_factory=lambda: EncodeSettings(preset="veryfast"))
    reference_frames: int = 60
    model_iters: int = 20
    paths: PathsConfig | None = None     # the rows of each way a run can go (bench/paths.py); None: skipped


@dataclass
class Row:
    phase: str
    detail: str
    frames: int
    seconds: float
    host_mib: float | None = None
    gpu_mib: float | None = None
    user_s: float = 0.0     # CPU time of this process and its encoder processes during the phase
    sys_s: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def sys_share(self) -> float | None:
        """System time / CPU time: high where memory is mapped and faulted in per batch (cpu_memory.py)."""
        cpu = self.user_s + self.sys_s
        return self.sys_s / cpu if cpu > 0 else None


def make_input(cfg: BenchConfig, folder: Path) -> Path:
    """The source clip looped to `frames` frames at `size`, H.264, so every phase sees the same video."""
    w, h = cfg.size
    path = folder / f"bench_{w}x{h}.mp4"
    with av.open(str(cfg.source)) as src:
        frames = [f.reformat(width=w, height=h, format="yuv420p", interpolation="BICUBIC")
                  for f in src.decode(video=0)]
    with av.open(str(path), "w") as out:
        # A keyframe every 2 s, as streaming encodes use: segmented runs can cut there.
        stream = out.add_stream("libx264", rate=30, options={"crf": "18", "preset": "ultrafast", "g": "60"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i, f in zip(range(cfg.frames), itertools.cycle(frames)):
            f = av.VideoFrame.from_ndarray(f.to_ndarray(), format="yuv420p")
            f.pts = i
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    return path


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_times() -> tuple[float, float]:
    """User and system seconds of this process and its finished children (the ffmpeg encoders)."""
    try:
        import resource
    except ImportError:  # not on a Unix: no shares reported
        return 0.0, 0.0
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime


def _timed(phase: str, detail: str, device: torch.device, fn: Callable[[], int]) -> Row:
    with measure_peak(device) as peak:
        _sync(device)
        user0, sys0 = _cpu_times()
        t0 = time.perf_counter()
        n = fn()
        _sync(device)
        seconds = time.perf_counter() - t0
        user1, sys1 = _cpu_times()
    return Row(phase, detail, n, seconds, peak.host_mib, peak.gpu_mib, user1 - user0, sys1 - sys0)


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] = lambda s: None) -> dict:
    device = pick_device(cfg.device)
    model = load_model(cfg.model)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="vidsr-bench-") as tmp:
        folder = Path(tmp)
        progress("preparing input")
        clip = make_input(cfg, folder)
        info = probe_video(clip)
        enc = resolve_encoding(info, cfg.encode, "mp4")
        cfg = dataclasses.replace(cfg, encode=enc)
        w, h = cfg.size
        out_w, out_h = output_size(w, h, cfg.scale, enc.pix_fmt)

        progress("decode only")
        rows.append(_timed("decode", "PyAV -> rgb24", device,
                           lambda: sum(1 for _ in iter_frames(clip, info.color))))

        for precision, compiled in itertools.product(cfg.precisions, (False, True) if cfg.compile else (False,)):
            dtype = pick_dtype(device, precision, model=model)
            up = FrameUpscaler(model, device=device, dtype=dtype, out_size=(out_w, out_h),
                               formatter=DeviceFormatter.for_encoder(cfg.encode.pix_fmt, out_w, out_h, info.color),
                               speed=SpeedOptions(compile=compiled))
            for batch in cfg.batches:
                progress(f"model only: {precision} batch {batch}{' compiled' if compiled else ''}")
                x = torch.rand((batch, 3, h, w), device=device).to(dtype)
                if up.speed.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)

                def network() -> int:
                    with torch.inference_mode():
                        for _ in range(cfg.model_iters):
                            forward_padded(up.module, x, model.scale, model.size_multiple)
                    return cfg.model_iters * batch

                def device_stage() -> int:
                    for _ in range(cfg.model_iters):
                        up.process(x)
                    return cfg.model_iters * batch

                label = f"{model.name} {str(dtype).removeprefix('torch.')} b{batch}{' compiled' if compiled else ''}"
                network()  # warm-up: cuDNN autotuning, compilation
                rows.append(_timed("model", label, device, network))
                rows.append(_timed("model+post", label + f" -> {out_w}x{out_h} {up.formatter.pix_fmt}",
                                   device, device_stage))

        progress("encode only")
        rows.append(_timed("encode", _encode_label(cfg.encode, out_w, out_h), device,
                           lambda: _encode_only(cfg, clip, info, out_w, out_h, folder)))

        dtype_auto = pick_dtype(device, cfg.precisions[0], model=model)
        for compiled in (False, True) if cfg.compile else (False,):
            progress(f"end to end{' compiled' if compiled else ''}")
            opts = UpscaleOptions(model=cfg.model, scale=cfg.scale, device=cfg.device, precision=cfg.precisions[0],
                                  encode=cfg.encode, overwrite=True, progress=False,
                                  speed=SpeedOptions(compile=compiled))
            out = folder / "e2e.mp4"
            result_holder: list = []
            row = _timed("end-to-end", f"vidsr upscale -s {cfg.scale:g}{' --compile' if compiled else ''}", device,
                         lambda: result_holder.append(upscale_video(clip, out, opts, model=model)) or
                         result_holder[-1].frames)
            row.seconds = result_holder[-1].seconds  # the run itself, without probing and model set-up
            rows.append(row)

        paths = None
        if cfg.paths is not None:
            from vidsr.bench.paths import path_rows  # imported here: it builds on this module

            more, paths = path_rows(cfg, model, device, folder, _timed, progress)
            rows.extend(more)

        progress("reference loop")
        ref_module = model.module.to(device=device, dtype=dtype_auto).eval()
        ref_module = ref_module.to(memory_format=torch.contiguous_format)
        rows.append(_timed("reference", f"frame-by-frame, host float, CPU resize ({cfg.reference_frames} frames)",
                           device, lambda: _reference(cfg, clip, info, ref_module, device, dtype_auto,
                                                      (out_w, out_h), model.scale, folder)))
    report = _report(cfg, device, rows)
    if paths is not None:
        report["paths"] = paths
    return report


def _encode_label(s: EncodeSettings, w: int, h: int) -> str:
    backend = "ffmpeg process" if s.backend != "pyav" and find_ffmpeg() else "PyAV"
    return f"{s.codec} {s.preset} crf {s.crf:g} {w}x{h} ({backend})"


def _frames_at_output(clip: Path, info, out_w: int, out_h: int, pix_fmt: str, count: int = 30) -> list[np.ndarray]:
    """Realistic content to encode: the input's frames resized to the output size, already in `pix_fmt`."""
    frames = []
    with av.open(str(clip)) as c:
        for f in itertools.islice(c.decode(video=0), count):
            frames.append(f.reformat(width=out_w, height=out_h, format=pix_fmt, interpolation="BICUBIC").to_ndarray())
    return frames


def _encode_only(cfg: BenchConfig, clip: Path, info, out_w: int, out_h: int, folder: Path) -> int:
    pix_fmt = DeviceFormatter.for_encoder(cfg.encode.pix_fmt, out_w, out_h, info.color).pix_fmt
    frames = _frames_at_output(clip, info, out_w, out_h, pix_fmt)
    enc = open_encoder(folder / "encode_only.mp4", width=out_w, height=out_h, rate=Fraction(30), color=info.color,
                       settings=cfg.encode, input_pix_fmt=pix_fmt)
    for i in range(cfg.frames):
        enc.write(frames[i % len(frames)][None])
    enc.close()
    return cfg.frames


def _reference(cfg: BenchConfig, clip: Path, info, module: torch.nn.Module, device: torch.device,
               dtype: torch.dtype, out_size: tuple[int, int], native: int, folder: Path) -> int:
    enc = open_encoder(folder / "reference.mp4", width=out_size[0], height=out_size[1], rate=Fraction(30),
                       color=info.color, settings=cfg.encode, input_pix_fmt="rgb24")

    def frames() -> Iterator[np.ndarray]:
        return itertools.islice(iter_frames(clip, info.color), cfg.reference_frames)

    n = reference_loop(frames(), module, device, dtype, out_size, native, enc.write)
    enc.close()
    return n


def _report(cfg: BenchConfig, device: torch.device, rows: list[Row]) -> dict:
    def best(phase: str) -> float:
        return max((r.fps for r in rows if r.phase == phase and "compiled" not in r.detail), default=0.0)

    e2e = max((r.fps for r in rows if r.phase == "end-to-end" and "compile" not in r.detail), default=0.0)
    bound = min(best("model"), best("encode"))
    ref = best("reference")
    return {
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "av": av.__version__,
            "python": platform.python_version(),
        },
        "config": {k: (str(v) if isinstance(v, Path) else v)
                   for k, v in dataclasses.asdict(cfg).items()},
        "rows": [dict(dataclasses.asdict(r), fps=r.fps, sys_share=r.sys_share) for r in rows],
        "summary": {
            "end_to_end_fps": e2e,
            "model_only_fps": best("model"),
            "encode_only_fps": best("encode"),
            "e2e_vs_min_model_encode": e2e / bound if bound else None,
            "e2e_vs_reference": e2e / ref if ref else None,
        },
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()}"


def format_table(report: dict) -> str:
    lines = [f"{'phase':<11} {'detail':<58} {'frames':>6} {'fps':>9} {'host MiB':>9} {'GPU MiB':>8} {'sys %':>6}"]
    for r in report["rows"]:
        host = f"{r['host_mib']:.0f}" if r["host_mib"] is not None else "-"
        gpu = f"{r['gpu_mib']:.0f}" if r["gpu_mib"] is not None else "-"
        sys_ = f"{100 * r['sys_share']:.1f}" if r.get("sys_share") is not None else "-"
        lines.append(f"{r['phase']:<11} {r['detail'][:58]:<58} {r['frames']:>6} {r['fps']:>9.2f} {host:>9} {gpu:>8} "
                     f"{sys_:>6}")
    s = report["summary"]
    lines.append("")
    lines.append(f"machine: {report['machine']['device']}, torch {report['machine']['torch']}")
    ratio = s["e2e_vs_min_model_encode"]
    lines.append(f"end-to-end {s['end_to_end_fps']:.2f} fps = "
                 f"{ratio:.0%} of min(model {s['model_only_fps']:.2f}, encode {s['encode_only_fps']:.2f})"
                 if ratio is not None else "end-to-end: no bound")
    if s["e2e_vs_reference"] is not None:
        lines.append(f"end-to-end / reference loop = {s['e2e_vs_reference']:.1f}x")
    if "paths" in report:
        from vidsr.bench.paths import format_paths  # imported here: it builds on this module

        lines.extend(format_paths(report["paths"]))
    return "\n".join(lines)
