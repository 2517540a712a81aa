"""`vidsr upscale`: options in, one library call, a one-line summary (or, for a queue, a table) out."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional, cast

import typer

from vidsr.choices import (EncoderBackend, EncoderBackendChoice, Precision, PrecisionChoice, SegmentBackend,
                           SegmentBackendChoice)
from vidsr.errors import OptionError

if TYPE_CHECKING:  # the engine is imported when the command runs, so `vidsr --help` stays fast
    from vidsr.engine.batch import BatchResult
    from vidsr.engine.chunked import ChunkOptions
    from vidsr.engine.options import UpscaleOptions


def upscale(
    inputs: list[Path] = typer.Argument(..., metavar="INPUT",
                                        help="Video, image (PNG/JPEG/WebP...), several of them, or folders. Several "
                                        "make a queue: outputs that exist are skipped (a rerun continues), a file "
                                        "that fails is reported and the rest go on; exit 1 if any failed."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Output file (default: INPUT_x<scale>.<ext>); for folders or "
                                          "several inputs, an output folder (outputs keep their names)."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Folders: take files in subfolders too "
                                   "(their outputs keep the folder structure)."),
    glob: Optional[str] = typer.Option(None, "--glob", help="Folders: only files whose path matches, e.g. "
                                       "'*.mkv' (case-insensitive)."),
    model: str = typer.Option("animevideov3", "-m", "--model",
                              help="Model name (see `vidsr models`) or a weights file: .pth, .pt, .ckpt, .safetensors (Real-ESRGAN or any architecture spandrel knows) or an ncnn .param."),
    scale: Optional[float] = typer.Option(None, "-s", "--scale",
                                          help="Output size / input size, any float (default: model's scale)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    batch: Optional[int] = typer.Option(None, "--batch",
                                        help="Frames per network call (default: from free GPU memory; 4 on CPU)."),
    half: Optional[bool] = typer.Option(None, "--half/--no-half",
                                        help="fp16 inference (default: on for CUDA, off for CPU)."),
    precision: PrecisionChoice = typer.Option(PrecisionChoice.auto, "--precision",
                                              help="Network arithmetic (overrides --half)."),
    tile: int = typer.Option(0, "--tile", help="Run the network on tiles of this size (0: whole frames)."),
    tile_pad: int = typer.Option(16, "--tile-pad", help="Context pixels around each tile."),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the network "
                                           "(default: on CUDA for runs of 500 frames or more; artefacts are "
                                           "cached in ~/.cache/vidsr/compile, so later runs start fast)."),
    trt: Optional[bool] = typer.Option(None, "--trt/--no-trt", help="Compile with TensorRT (the vidsr\\[trt] extra; "
                                       "default: when torch-tensorrt is installed and the run compiles)."),
    channels_last: bool = typer.Option(True, "--channels-last/--no-channels-last", help="NHWC memory layout."),
    cudnn_benchmark: bool = typer.Option(True, "--cudnn-benchmark/--no-cudnn-benchmark",
                                         help="Let cuDNN time its algorithms for these frame sizes."),
    codec: Optional[str] = typer.Option(None, "--codec", help="Video encoder (libx264, libx265, libsvtav1, ...) "
                                        "(default: like the input: libx264; libx265 for HEVC or gray; "
                                        "an alpha-capable codec for alpha)."),
    crf: float = typer.Option(18, "--crf", help="Constant rate factor (lower is better quality)."),
    preset: str = typer.Option("medium", "--preset", help="Encoder preset: ultrafast .. placebo (x264, x265); SVT-AV1 also "
                                "takes its numbers -2..13 and maps the names onto them (medium: 7)."),
    pix_fmt: Optional[str] = typer.Option(None, "--pix-fmt", help="Output pixel format (default: the input's, "
                                          "e.g. yuv420p, yuv420p10le for 10-bit)."),
    start: float = typer.Option(0.0, "--start", help="Seconds into the video to start at."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Seconds to process from --start."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames to process from --start."),
    strict: bool = typer.Option(False, "--strict", help="Damaged or truncated input is an error, not a warning."),
    dedup: bool = typer.Option(False, "--dedup", help="A frame that repeats the one before (anime's held "
                               "drawings, robust to codec noise; never a slow pan or fade) reuses its output "
                               "instead of running the network: faster, and held drawings do not shimmer."),
    devices: Optional[str] = typer.Option(None, "--devices", help="Segmented run with one worker per device: "
                                          "0,1,2 / all / cpu,cpu (resumable; see --work-dir). Devices that would "
                                          "run at different precisions are refused."),
    segment_seconds: Optional[float] = typer.Option(None, "--segment-seconds", help="Segment length for "
                                                    "--devices/--backend (default 30) and --encoders (default: "
                                                    "from the duration, 2-30 s)."),
    encoders: str = typer.Option("auto", "--encoders", metavar="N", help="Encoders working at once on "
                                 "consecutive segments (cut at keyframes), joined without re-encoding. auto: 1, "
                                 "or one per 8 cores when the network runs on CUDA."),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="Folder in which vidsr makes this output's "
                                            "job folder, where finished segments are kept for a rerun (default: "
                                            "beside the output). Only that job folder is removed, after success."),
    backend: SegmentBackendChoice = typer.Option(SegmentBackendChoice.local, "--backend",
                                                 help="Segmented runs: local worker processes, or ray (an existing "
                                                 "Ray cluster, see --address)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: start Ray here)."),
    encoder: EncoderBackendChoice = typer.Option(EncoderBackendChoice.auto, "--encoder",
                                                 help="auto (ffmpeg binary if found, else PyAV), ffmpeg or pyav."),
    overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Upscale a video (every audio stream copied untouched) or a still image, or a queue of them."""
    from vidsr.engine.batch import is_batch
    from vidsr.engine.chunked import upscale_video_chunked
    from vidsr.engine.cpu_memory import keep_freed_memory
    from vidsr.engine.device import pick_device
    from vidsr.engine.options import UpscaleOptions
    from vidsr.engine.still_image import upscale_image
    from vidsr.engine.upscaler import SpeedOptions
    from vidsr.engine.video import upscale_video
    from vidsr.io.decode import Window
    from vidsr.io.encode import EncodeSettings
    from vidsr.io.image import is_image

    arithmetic = cast(Precision, precision.value)
    if arithmetic == "auto" and half is not None:
        arithmetic = "fp16" if half else "fp32"
    opts = UpscaleOptions(
        model=model, scale=scale, device=device, batch=batch, precision=arithmetic,
        speed=SpeedOptions(channels_last=channels_last, compile=compile, trt=trt,
                           cudnn_benchmark=cudnn_benchmark, tile=tile, tile_pad=tile_pad),
        encode=EncodeSettings(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, backend=cast(EncoderBackend, encoder.value)),
        window=Window(start=start, duration=duration, frames=frames), strict=strict,
        overwrite=overwrite, progress=not quiet, dedup=dedup, encoders=_encoders(encoders),
        segment_seconds=segment_seconds,
    )
    runner = cast(SegmentBackend, backend.value)
    if devices is None and runner == "local" and pick_device(device).type == "cpu":
        # This command owns its process, and on the CPU every batch allocates and frees the same
        # large tensors: malloc should keep that memory (engine/cpu_memory.py). Segmented runs
        # do this in their CPU workers; a library call leaves the process as it finds it.
        keep_freed_memory()
    if is_batch(inputs, output):
        chunks = _chunk_options(devices, device, segment_seconds, work_dir, runner, address)
        _upscale_queue(inputs, output, opts, chunks, recursive=recursive, glob=glob, quiet=quiet)
        return
    input = inputs[0]
    image = is_image(input)
    chunks = None if image else _chunk_options(devices, device, segment_seconds, work_dir, runner, address)
    if chunks is not None:
        result = upscale_video_chunked(input, output, opts, chunks)
    else:
        run = upscale_image if image else upscale_video
        result = run(input, output, opts)
    if not quiet:
        reused = f", {result.reused} reused" if dedup and not image else ""
        lanes = f", {result.encoders} encoders at once" if getattr(result, "encoders", 1) > 1 else ""
        typer.echo(f"wrote {result.output} ({result.width}x{result.height}, {result.frames} frame(s){reused}, "
                   f"{result.seconds:.1f} s, {result.fps:.2f} fps{lanes})", err=True)
    logging.getLogger(__name__).debug("done: %s", result)


def _encoders(value: str) -> Optional[int]:
    if value.strip().lower() == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise OptionError(f"--encoders must be auto or a number, not {value!r}") from None


def _chunk_options(devices: Optional[str], device: str, segment_seconds: Optional[float], work_dir: Optional[Path],
                   backend: SegmentBackend, address: Optional[str]) -> Optional[ChunkOptions]:
    """Options of the segmented path, or None when the run is an ordinary one."""
    from vidsr.engine.chunked import ChunkOptions, parse_devices

    if devices is None and backend != "ray":
        return None
    return ChunkOptions(devices=parse_devices(devices) if devices else (device,),
                        segment_seconds=segment_seconds or ChunkOptions.segment_seconds, work_dir=work_dir,
                        backend=backend, address=address)


# -- queues -----------------------------------------------------------------------------------


def _upscale_queue(inputs: list[Path], output: Optional[Path], opts: UpscaleOptions, chunks: Optional[ChunkOptions],
                   *, recursive: bool, glob: Optional[str], quiet: bool) -> None:
    """Run the queue; one line per failed file as it happens, a table at the end, exit 1 if any failed."""
    from tqdm import tqdm

    from vidsr.engine.batch import FileResult, upscale_many

    def report(f: FileResult) -> None:
        if f.status == "failed":
            tqdm.write(f"vidsr: failed: {f.input}: {f.reason}", file=sys.stderr)

    batch = upscale_many(inputs, output, opts, chunks=chunks, recursive=recursive, glob=glob, on_file=report)
    if not quiet:
        typer.echo(summary_table(batch), err=True)
    if not batch.ok:
        raise typer.Exit(1)


def summary_table(batch: BatchResult) -> str:
    """file | status | frames | seconds | fps | note, one row per input, and a total line."""
    rows = [("file", "status", "frames", "seconds", "fps", "note")]
    for f in batch.files:
        if f.status == "done":
            notes = [f"{len(f.result.warnings)} warning(s)"] if f.result and f.result.warnings else []
            if f.result and f.result.reused:
                notes.append(f"{f.result.reused} reused")
            note = ", ".join(notes)
            rows.append((str(f.input), f.status, str(f.frames), f"{f.seconds:.1f}", f"{f.fps:.2f}", note))
        else:
            rows.append((str(f.input), f.status, "-", "-", "-", f.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    right = (False, False, True, True, True)
    lines = ["  ".join([*(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row[:5], widths, right)), row[5]])
             .rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"{len(batch.done)} done, {len(batch.skipped)} skipped, {len(batch.failed)} failed "
                 f"in {batch.seconds:.1f} s")
    return "\n".join(lines)
