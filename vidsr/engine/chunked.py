"""Segmented upscaling: several workers (GPUs, CPUs or Ray tasks), resumable, frame-exact.

The video is cut at keyframes (segments.py); each segment is decoded from its keyframe,
upscaled and encoded on its own; the encoded segments are then joined without
re-encoding and muxed once with every other stream of the source (video.finish_video).
Finished segments are kept in a job directory, so a rerun of the same command skips them.
"""
from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import queue
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from vidsr.engine.jobdir import JobDir, job_key
from vidsr.engine.segments import Segment, plan_segments
from vidsr.engine.video import (UpscaleOptions, UpscaleResult, VideoPlan, encode_part, finish_video, plan_video,
                                progress_bar)
from vidsr.errors import OptionError, VidsrError
from vidsr.io.decode import DecodeReport, Window
from vidsr.models import load_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkOptions:
    devices: tuple[str, ...] = ("auto",)   # one worker per entry: "cpu", "cuda", "cuda:1", ...
    segment_seconds: float = 30.0
    work_dir: Path | None = None            # default: beside the output
    backend: Literal["local", "ray"] = "local"
    address: str | None = None              # Ray cluster address; None starts a local Ray instance


def parse_devices(spec: str) -> tuple[str, ...]:
    """'0,1' -> cuda:0, cuda:1; 'all' -> every CUDA device; 'cpu,cpu' -> two CPU workers."""
    spec = spec.strip().lower()
    if spec == "all":
        if not torch.cuda.is_available():
            raise OptionError("--devices all: no CUDA device is available (use e.g. --devices cpu,cpu)")
        return tuple(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    devices = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        devices.append(f"cuda:{item}" if item.isdigit() else item)
    if not devices:
        raise OptionError("--devices needs at least one device, e.g. 0,1 or cpu,cpu or all")
    return tuple(devices)


def upscale_video_chunked(input_path: Path, output: Path | None, options: UpscaleOptions, chunks: ChunkOptions,
                          on_segment: Callable[[Segment], None] | None = None) -> UpscaleResult:
    """Like upscale_video, with segments spread over `chunks.devices` (or Ray) and kept for resuming."""
    options = options.validated()
    if chunks.segment_seconds <= 0:
        raise OptionError(f"--segment-seconds must be > 0, not {chunks.segment_seconds:g}")
    model = load_model(options.model)  # resolves the name once; workers load it again by the same name
    plan = plan_video(input_path, output, options, model.scale)
    segments = plan_segments(input_path, plan.info, seconds=chunks.segment_seconds, window=options.window)
    work = chunks.work_dir or plan.output.with_name(f".{plan.output.name}.vidsr-job")
    job = JobDir.open(work, _key(plan, options, chunks, model.source), plan.output.suffix, segments)
    # Segments carry exact timestamp bounds: the window is already in them.
    seg_options = dataclasses.replace(options, window=Window(), progress=False)
    start = time.perf_counter()
    reports: dict[int, DecodeReport] = {}
    todo = []
    for seg in segments:
        done = job.finished(seg)
        if done is None:
            todo.append(seg)
        else:
            reports[seg.index] = done
    if reports:
        log.warning("resuming: %d of %d segment(s) already done in %s", len(reports), len(segments), work)
    with progress_bar(plan, options) as bar:
        bar.update(sum(len(r.pts) for r in reports.values()))

        def finished(seg: Segment, report: DecodeReport) -> None:
            job.record(seg, report)
            reports[seg.index] = report
            bar.update(len(report.pts))
            if on_segment is not None:
                on_segment(seg)

        runner = _run_ray if chunks.backend == "ray" else _run_local
        runner(plan, seg_options, todo, job, chunks, finished)
    parts = [(job.video(seg), reports[seg.index]) for seg in segments]
    warnings = finish_video(plan, options, parts)
    job.remove()
    frames = sum(len(r.pts) for r in reports.values())
    return UpscaleResult(plan.output, frames, *plan.out_size, time.perf_counter() - start, warnings)


def _key(plan: VideoPlan, options: UpscaleOptions, chunks: ChunkOptions, model_source: str) -> str:
    """Everything that changes the encoded segments; devices and batch sizes do not."""
    src = plan.input.stat()
    weights = Path(model_source)
    return job_key({
        "input": str(plan.input.resolve()), "size": src.st_size, "mtime": src.st_mtime_ns,
        "model": options.model, "weights": (weights.stat().st_size, weights.stat().st_mtime_ns)
        if weights.exists() else model_source,
        "out_size": plan.out_size, "encode": dataclasses.asdict(plan.encode), "precision": options.precision,
        "tile": (options.speed.tile, options.speed.tile_pad), "window": dataclasses.asdict(options.window),
        "segment_seconds": chunks.segment_seconds,
    })


def run_segment(plan: VideoPlan, options: UpscaleOptions, seg: Segment, partial: Path, final: Path,
                device: str, model_cache: dict | None = None) -> DecodeReport:
    """Encode one segment to `final` (written as `partial`, renamed when complete). Runs in a worker."""
    cache = model_cache if model_cache is not None else {}
    model = cache.get(options.model)
    if model is None:
        model = cache[options.model] = load_model(options.model)
    report = encode_part(plan, options, model, device, partial, pts_range=(seg.start, seg.end))
    os.replace(partial, final)
    return report


# -- local worker processes ---------------------------------------------------------------


def _worker_main(device: str, threads: int, tasks: mp.Queue, results: mp.Queue) -> None:
    """One worker process bound to one device; takes segments until told to stop."""
    torch.set_num_threads(threads)
    cache: dict = {}
    while True:
        item = tasks.get()
        if item is None:
            return
        plan, options, seg, partial, final = item
        try:
            results.put(("done", seg.index, run_segment(plan, options, seg, partial, final, device, cache)))
        except VidsrError as exc:
            results.put(("error", seg.index, str(exc)))
        except BaseException as exc:  # reported to the parent, which stops the job
            results.put(("error", seg.index, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def _run_local(plan: VideoPlan, options: UpscaleOptions, todo: list[Segment], job: JobDir, chunks: ChunkOptions,
               finished: Callable[[Segment, DecodeReport], None]) -> None:
    if not todo:
        return
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    tasks: mp.Queue = ctx.Queue()
    results: mp.Queue = ctx.Queue()
    for seg in todo:  # handed out as workers free up: a slower device simply takes fewer
        tasks.put((plan, options, seg, job.partial(seg), job.video(seg)))
    devices = chunks.devices
    threads = max(1, (os.cpu_count() or 1) // len(devices))
    workers = [ctx.Process(target=_worker_main, args=(d, threads, tasks, results), daemon=True,
                           name=f"vidsr-worker-{i}") for i, d in enumerate(devices)]
    for _ in workers:
        tasks.put(None)
    for w in workers:
        w.start()
    by_index = {seg.index: seg for seg in todo}
    try:
        while by_index:
            try:
                kind, index, payload = results.get(timeout=1.0)
            except queue.Empty:
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise VidsrError(f"worker {dead[0].name} died (exit code {dead[0].exitcode})") from None
                continue
            if kind == "error":
                raise VidsrError(f"segment {index} failed: {payload}")
            finished(by_index.pop(index), payload)
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
        for w in workers:
            w.join(timeout=10)


# -- Ray --------------------------------------------------------------------------------------


def _run_ray(plan: VideoPlan, options: UpscaleOptions, todo: list[Segment], job: JobDir, chunks: ChunkOptions,
             finished: Callable[[Segment, DecodeReport], None]) -> None:
    """Each segment a Ray task needing one GPU (or one CPU on CPU devices); paths must be shared."""
    try:
        import ray
    except ImportError as exc:
        raise OptionError("--backend ray needs Ray: pip install 'vidsr[ray]'") from exc
    if not todo:
        return
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=chunks.address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, **({} if chunks.address else {"num_cpus": len(chunks.devices)}))
    gpu = any(d.startswith("cuda") for d in chunks.devices) or (
        chunks.devices == ("auto",) and ray.cluster_resources().get("GPU", 0) > 0)
    task = ray.remote(run_segment).options(num_gpus=1 if gpu else 0, num_cpus=1, max_retries=2)
    # Ray gives each GPU task its own CUDA_VISIBLE_DEVICES, so "cuda" is that task's GPU.
    refs = {task.remote(plan, options, seg, job.partial(seg), job.video(seg), "cuda" if gpu else "cpu"): seg
            for seg in todo}
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                seg = refs.pop(ref)
                try:
                    report = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    raise VidsrError(f"segment {seg.index} failed on Ray: {exc.cause if exc.cause else exc}") from exc
                finished(seg, report)
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()
