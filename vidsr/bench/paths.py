"""Bench rows for the ways a run can go (issue 13): the defaults (compiled where the policy says),
several encoders, x2 from 1920x1080 input, and RRDB x4plus.

Each path is an end-to-end run (phase "path") with the bound that caps it: the slower of its
network (model only, compiled or eager as the run was) and its encoders (encode only at the
run's output size, one file per encoder, all at once), each measured in the same process,
at the same batch, on the same input; and the ratio to that bound. Baselines the issue
compares against (--no-compile with one encoder, eager at 1080p, x264 alone) are rows too.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vidsr.bench.run import BenchConfig, Row, _frames_at_output, make_input
from vidsr.engine.compiled import CompiledNetwork, wants_compile
from vidsr.engine.device import pick_dtype
from vidsr.engine.device_formatter import DeviceFormatter
from vidsr.engine.options import UpscaleOptions
from vidsr.engine.tiling import forward_padded
from vidsr.engine.upscaler import FrameUpscaler, SpeedOptions, output_size
from vidsr.engine.video import upscale_video
from vidsr.io.decode import iter_frames
from vidsr.io.encode import EncodeSettings, open_encoder
from vidsr.io.formats import resolve_encoding
from vidsr.io.probe import VideoInfo, probe_video
from vidsr.models import ModelDescriptor, RRDBNet, load_model

Timed = Callable[[str, str, torch.device, Callable[[], int]], Row]


@dataclass(frozen=True)
class PathsConfig:
    batch: int = 8                              # every path run's batch, so its bound is measured at it
    encoders: int = 2                           # the multi-encoder path
    large_size: tuple[int, int] | None = (1920, 1080)
    large_frames: int = 300
    rrdb_model: str | None = "x4plus"           # "random": the x4plus architecture with seeded weights
    rrdb_frames: int = 60
    rrdb_size: tuple[int, int] = (640, 360)     # RRDB is ~15x slower than the compact nets
    model_iters: int = 20


@dataclass
class _Measured:
    """What one input size gives: its clip, output size, and the stage rates paths are bounded by."""

    clip: Path
    info: VideoInfo
    out_size: tuple[int, int]
    model_fps: dict[bool, float] = dataclasses.field(default_factory=dict)   # compiled? -> fps
    encode_fps: dict[int, float] = dataclasses.field(default_factory=dict)   # encoders -> fps
    psnr: dict[str, float] = dataclasses.field(default_factory=dict)         # compiled variant -> dB vs eager


def path_rows(cfg: BenchConfig, model: ModelDescriptor, device: torch.device, folder: Path, timed: Timed,
              progress: Callable[[str], None]) -> tuple[list[Row], dict]:
    """The rows, and a summary: each path's fps, bound and ratio, and the issue's comparisons."""
    pc = cfg.paths or PathsConfig()
    rows: list[Row] = []
    paths: list[dict] = []
    checks: dict[str, float | None] = {}
    pending: list[tuple[dict, _Measured, int]] = []

    def run(size: _Measured, label: str, net: ModelDescriptor, *, compile: bool | None, encoders: int | None,
            bound_encoders: int) -> dict:
        opts = UpscaleOptions(model=net.name, scale=cfg.scale, device=cfg.device, precision=cfg.precisions[0],
                              batch=pc.batch, encode=cfg.encode, overwrite=True, progress=False,
                              speed=SpeedOptions(compile=compile), encoders=encoders)
        held: list = []
        row = timed("path", label, device,
                    lambda: held.append(upscale_video(size.clip, folder / "path.mp4", opts, model=net))
                    or held[-1].frames)
        result = held[-1]
        row.seconds = result.seconds  # the run itself (compile included), without probing and set-up
        rows.append(row)
        entry = {"path": label, "fps": row.fps, "compiled": wants_compile(compile, device, result.frames),
                 "encoders": result.encoders}
        pending.append((entry, size, bound_encoders))
        paths.append(entry)
        return entry

    def bound(entry: dict, size: _Measured, bound_encoders: int) -> dict:
        """The path's bound, from stage rates measured (possibly after it) in this run."""
        model_fps = size.model_fps.get(entry["compiled"])
        encode_fps = size.encode_fps.get(entry["encoders"]) or size.encode_fps.get(bound_encoders)
        rates = [v for v in (model_fps, encode_fps) if v]
        cap = min(rates) if rates else None
        entry.update(model_fps=model_fps, encode_fps=encode_fps, bound_fps=cap,
                     bound=None if cap is None else ("model" if cap == model_fps else "encode"),
                     vs_bound=entry["fps"] / cap if cap else None)
        return entry

    main = _prepare(cfg, cfg.size, cfg.frames, folder, "main")
    measured = [main]
    progress("paths: defaults, first run (compiles where the policy says; cold cache)")
    run(main, "defaults, first run", model, compile=None, encoders=None, bound_encoders=1)
    _stage_rates(cfg, pc, main, model, device, timed, rows, progress, encoders=(1, pc.encoders), graphs=True)
    progress("paths: --no-compile, one encoder")
    base = run(main, "--no-compile --encoders 1", model, compile=False, encoders=1, bound_encoders=1)
    progress("paths: defaults")
    best = run(main, "defaults", model, compile=None, encoders=None, bound_encoders=1)
    progress(f"paths: --encoders {pc.encoders}")
    run(main, f"--encoders {pc.encoders}", model, compile=None, encoders=pc.encoders, bound_encoders=pc.encoders)
    checks["defaults_vs_no_compile_one_encoder"] = best["fps"] / base["fps"] if base["fps"] else None
    alone = _x264_alone(cfg, main, folder, timed, rows)
    checks["encode_inside_vs_alone"] = main.encode_fps[1] / alone if alone else None

    if pc.large_size is not None:
        w, h = pc.large_size
        large = _prepare(cfg, pc.large_size, pc.large_frames, folder, "large")
        measured.append(large)
        _stage_rates(cfg, pc, large, model, device, timed, rows, progress, encoders=(1,))
        progress(f"paths: {w}x{h} eager")
        eager = run(large, f"{w}x{h} --no-compile", model, compile=False, encoders=None, bound_encoders=1)
        progress(f"paths: {w}x{h} defaults")
        default = run(large, f"{w}x{h} defaults", model, compile=None, encoders=None, bound_encoders=1)
        checks["large_defaults_vs_eager"] = default["fps"] / eager["fps"] if eager["fps"] else None

    if pc.rrdb_model is not None:
        rrdb = _rrdb(pc.rrdb_model)
        small = _prepare(cfg, pc.rrdb_size, pc.rrdb_frames, folder, "rrdb")
        _stage_rates(cfg, pc, small, rrdb, device, timed, rows, progress, encoders=(1,), compiled=(False,))
        progress(f"paths: {rrdb.name}")
        run(small, f"{rrdb.name} {pc.rrdb_size[0]}x{pc.rrdb_size[1]} --no-compile", rrdb, compile=False, encoders=None, bound_encoders=1)
    for entry, size, n in pending:
        bound(entry, size, n)
    checks["defaults_vs_bound"] = best["vs_bound"]
    psnr = {k: v for m in measured for k, v in m.psnr.items()}
    return rows, {"paths": paths, "checks": checks, "psnr_vs_eager_db": psnr}


def _prepare(cfg: BenchConfig, size: tuple[int, int], frames: int, folder: Path, tag: str) -> _Measured:
    sub = folder / tag
    sub.mkdir(exist_ok=True)
    clip = make_input(dataclasses.replace(cfg, size=size, frames=frames), sub)
    info = probe_video(clip)
    enc = resolve_encoding(info, cfg.encode, "mp4")
    return _Measured(clip, info, output_size(*size, cfg.scale, enc.pix_fmt))


def _stage_rates(cfg: BenchConfig, pc: PathsConfig, size: _Measured, model: ModelDescriptor, device: torch.device,
                 timed: Timed, rows: list[Row], progress: Callable[[str], None], *, encoders: tuple[int, ...],
                 compiled: tuple[bool, ...] | None = None, graphs: bool = False) -> None:
    """Model-only at the paths' batch (eager, and compiled where the defaults compile, on CUDA, or where
    --compile asks), with the compiled outputs' PSNR against eager on real frames; and encode-only with
    each count of encoders at once."""
    if compiled is None:
        compiled = (False, True) if (cfg.compile or wants_compile(None, device, None)) else (False,)
    variants: list[tuple[str, bool, str | None]] = [("compiled" if c else "eager", c, None) for c in compiled]
    if graphs and True in compiled and device.type == "cuda":
        # Whether CUDA graphs pay at this size, whatever compile_mode() chose: the policy's evidence.
        variants += [(f"compiled {m}", True, m) for m in ("default", "reduce-overhead")]
    w, h = size.info.width, size.info.height
    dtype = pick_dtype(device, cfg.precisions[0], model=model)
    x = _real_batch(size, pc.batch, device, dtype)
    eager_out: torch.Tensor | None = None
    for tag, compile, mode in variants:
        progress(f"paths: {model.name} {w}x{h} model only, {tag}")
        up = FrameUpscaler(model, device=device, dtype=dtype, out_size=size.out_size,
                           speed=SpeedOptions(compile=compile, compile_mode=mode))

        def network(iters: int = pc.model_iters) -> int:
            with torch.inference_mode():
                for _ in range(iters):
                    forward_padded(up.module, x, model.scale, model.size_multiple)
            return iters * pc.batch

        network(2)  # warm-up: cuDNN autotuning, compilation (a second call: CUDA graphs record on it)
        if isinstance(up.module, CompiledNetwork):
            tag = f"compiled ({up.module.mode})" if mode is None else tag
        row = timed("path-model", f"{model.name} {w}x{h} b{pc.batch} {tag}", device, network)
        rows.append(row)
        if mode is None:  # the policy's own choice bounds the runs
            size.model_fps[compile] = row.fps
        with torch.inference_mode():  # numerics on real frames, as an 8-bit picture sees them
            out = forward_padded(up.module, x, model.scale, model.size_multiple).float().clamp(0, 1).mul(255).round()
        if eager_out is None:
            eager_out = out
        else:
            mse = float((out - eager_out).pow(2).mean())
            # Identical pictures are written as 100 dB (JSON has no infinity).
            size.psnr[f"{model.name} {w}x{h} {tag}"] = min(100.0, 10 * math.log10(255**2 / mse)) if mse else 100.0
    out_w, out_h = size.out_size
    pix_fmt = DeviceFormatter.for_encoder(cfg.encode.pix_fmt, out_w, out_h, size.info.color).pix_fmt
    frames = _frames_at_output(size.clip, size.info, out_w, out_h, pix_fmt)
    for n in encoders:
        progress(f"paths: encode only {out_w}x{out_h}, {n} encoder(s) at once")
        row = timed("path-enc", f"{cfg.encode.codec} {cfg.encode.preset} {out_w}x{out_h} x{n} at once", device,
                    lambda n=n: _encode_at_once(cfg, size, frames, pix_fmt, n, size.clip.parent))
        rows.append(row)
        size.encode_fps[n] = row.fps


def _real_batch(size: _Measured, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """`batch` real frames of the clip as the network takes them: float in [0, 1], NCHW, channels_last."""
    frames = list(itertools.islice(iter_frames(size.clip, size.info.color), batch))
    rgb = np.stack([frames[i % len(frames)] for i in range(batch)])
    x = torch.from_numpy(rgb).to(device).permute(0, 3, 1, 2).to(dtype).div_(255)
    return x.contiguous(memory_format=torch.channels_last)


def _encode_at_once(cfg: BenchConfig, size: _Measured, frames: list, pix_fmt: str, lanes: int, folder: Path) -> int:
    """`lanes` encoders, each in its own thread on its own file, sharing the run's frames: their capacity."""
    out_w, out_h = size.out_size
    share = max(1, size.info.frames or cfg.frames) // lanes
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            enc = open_encoder(folder / f"lane{i}.mp4", width=out_w, height=out_h, rate=Fraction(30),
                               color=size.info.color, settings=cfg.encode, input_pix_fmt=pix_fmt)
            for k in range(share):
                enc.write(frames[k % len(frames)][None])
            enc.close()
        except BaseException as exc:  # re-raised in the timing thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return share * lanes


def _x264_alone(cfg: BenchConfig, size: _Measured, folder: Path, timed: Timed, rows: list[Row]) -> float | None:
    """The same encoder and settings on the same frames through PyAV in a plain loop, as a user of
    FFmpeg's libraries would run it (frame threads on: thread_type AUTO): what vidsr's encode-only is
    held to."""
    s: EncodeSettings = cfg.encode
    out_w, out_h = size.out_size
    if s.pix_fmt is None or s.codec is None:
        return None
    frames = _frames_at_output(size.clip, size.info, out_w, out_h, s.pix_fmt)
    count = max(1, size.info.frames or cfg.frames)

    def encode() -> int:
        with av.open(str(folder / "alone.mp4"), "w") as out:
            stream = out.add_stream(s.codec, rate=30, options=s.codec_options())
            stream.width, stream.height, stream.pix_fmt = out_w, out_h, s.pix_fmt
            stream.codec_context.thread_type = "AUTO"
            for i in range(count):
                frame = av.VideoFrame.from_ndarray(frames[i % len(frames)], format=s.pix_fmt)
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        return count

    row = timed("path-enc", f"{s.codec} {s.preset} {out_w}x{out_h} alone (PyAV loop, thread_type AUTO)",
                torch.device("cpu"), encode)
    rows.append(row)
    return row.fps


def _rrdb(spec: str) -> ModelDescriptor:
    """The RRDB model to time: a name or weights file, or "random" for the x4plus architecture with seeded
    weights, where its 64 MB of weights cannot travel (speed does not depend on the weights' values)."""
    if spec != "random":
        return load_model(spec)
    torch.manual_seed(0)
    net = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=4).eval()
    for p in net.parameters():  # torch's default init keeps activations O(1) through the 23 blocks
        p.requires_grad_(False)
    return ModelDescriptor(name="x4plus-architecture", architecture="RRDBNet", module=net, scale=4,
                           num_params=sum(p.numel() for p in net.parameters()), source="random")


def format_paths(summary: dict) -> list[str]:
    lines = ["", f"{'path':<34} {'fps':>8} {'bound':>8} {'by':>7} {'ratio':>6}"]
    for p in summary["paths"]:
        bound = f"{p['bound_fps']:.2f}" if p["bound_fps"] else "-"
        ratio = f"{p['vs_bound']:.0%}" if p["vs_bound"] else "-"
        by = p["bound"] or "-"
        if by == "encode" and p["encoders"] > 1:
            by = f"enc x{p['encoders']}"
        lines.append(f"{p['path'][:34]:<34} {p['fps']:>8.2f} {bound:>8} {by:>7} {ratio:>6}")
    for name, value in summary["checks"].items():
        lines.append(f"{name}: {value:.2f}x" if value is not None else f"{name}: -")
    for name, db in summary.get("psnr_vs_eager_db", {}).items():
        lines.append(f"PSNR {name} vs eager, real frames: {db:.1f} dB")
    return lines

