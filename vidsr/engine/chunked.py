"""Segmented upscaling: several workers (GPUs, CPUs or Ray tasks), resumable, frame-exact.

The video is cut at keyframes (segments.py); each segment is decoded from its keyframe,
upscaled and encoded on its own; the encoded segments are then joined without
re-encoding and muxed once with every other stream of the source (video_mux.finish_video).
Finished segments are kept in a job folder (jobdir.py), so a rerun of the same command
skips them, and a failed join costs none of them.

The parent process owns every decision: it hands out one segment at a time to each
worker, and on Ctrl-C or any failure it stops handing out, kills the busy workers with
their encoders and keeps what is finished. Workers ignore Ctrl-C, run in their own
process groups, and exit when their parent dies.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from vidsr.choices import SegmentBackend
from vidsr.engine.cpu_memory import keep_freed_memory
from vidsr.engine.device import pick_device, pick_dtype
from vidsr.engine.jobdir import JobDir, job_folder, job_key
from vidsr.engine.options import UpscaleOptions, UpscaleResult
from vidsr.engine.progress import progress_bar
from vidsr.engine.segments import Segment, plan_segments
from vidsr.engine.video_mux import finish_video
from vidsr.engine.video_part import upscale_part
from vidsr.engine.video_plan import VideoPlan, plan_video
from vidsr.errors import OptionError, VidsrError
from vidsr.io.decode import DecodeReport, Window
from vidsr.io.mux import check_streams_fit
from vidsr.models import ModelDescriptor, load_model

log = logging.getLogger(__name__)

_PRECISION_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
_STOP_WAIT_S = 2.0  # how long a stopped worker gets to exit before it is killed


@dataclass(frozen=True)
class ChunkOptions:
    devices: tuple[str, ...] = ("auto",)   # one worker per entry: "cpu", "cuda", "cuda:1", ...
    segment_seconds: float = 30.0
    work_dir: Path | None = None            # where the job folder goes; default: beside the output
    backend: SegmentBackend = "local"
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


def device_kind(spec: str) -> str:
    """'cpu' or 'cuda' for a device spec ('auto' is CUDA where there is one)."""
    spec = spec.strip().lower()
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if spec.startswith("cuda") else "cpu"


def resolve_precision(devices: Sequence[str], precision: str, supports_half: bool = True) -> dict[str, str]:
    """The precision ('fp32', 'fp16', 'bf16') each kind of device in `devices` runs at.

    One video must not mix precisions, so a list that would (with "auto": fp16 on CUDA,
    fp32 on CPU) is refused before any work. Needs no GPU: only the device names count.
    """
    kinds = sorted({device_kind(d) for d in devices})
    resolved = {k: _PRECISION_NAMES[pick_dtype(torch.device(k), precision, supports_half)] for k in kinds}
    if len(set(resolved.values())) > 1:
        mix = " and ".join(f"{p} on {k}" for k, p in resolved.items())
        raise OptionError(f"--devices {','.join(devices)} would mix {mix} in one video; add --precision fp32 "
                          "or use devices of one kind")
    return resolved


def weights_digest(model: ModelDescriptor) -> str:
    """sha256 of the weight file(s) the model was loaded from (an ncnn .param with its .bin)."""
    source = Path(model.source)
    files = [source, source.with_suffix(".bin")] if source.suffix.lower() == ".param" else [source]
    digest = hashlib.sha256()
    if all(f.is_file() for f in files):
        for f in files:
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    else:  # not loaded from files: the weights themselves
        for name, tensor in sorted(model.module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def upscale_video_chunked(input_path: Path, output: Path | None, options: UpscaleOptions, chunks: ChunkOptions,
                          on_segment: Callable[[Segment], None] | None = None) -> UpscaleResult:
    """Like upscale_video, with segments spread over `chunks.devices` (or Ray) and kept for resuming."""
    options = options.validated()
    if chunks.segment_seconds <= 0:
        raise OptionError(f"--segment-seconds must be > 0, not {chunks.segment_seconds:g}")
    if chunks.backend not in ("local", "ray"):
        raise OptionError(f"--backend must be local or ray, not {chunks.backend!r}")
    model = load_model(options.model)  # resolves the name once; workers load it again by the same name
    plan = plan_video(input_path, output, options, model.scale)
    check_streams_fit(plan.input, plan.output)  # not only after every segment is done
    with _backend(chunks) as backend:
        precision = resolve_precision(backend.device_kinds, options.precision, model.supports_half)
        segments = plan_segments(input_path, plan.info, seconds=chunks.segment_seconds, window=options.window)
        folder = job_folder(plan.output, chunks.work_dir)
        key = _key(plan, options, chunks, precision, weights_digest(model))
        with JobDir.open(folder, key, plan.output.suffix, segments) as job:
            # Segments carry exact timestamp bounds: the window is already in them.
            seg_options = dataclasses.replace(options, window=Window(), progress=False,
                                              precision=next(iter(precision.values())))
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
                log.warning("resuming: %d of %d segment(s) already done in %s", len(reports), len(segments),
                            folder)
            try:
                with progress_bar(plan, options) as bar:
                    bar.update(sum(len(r.pts) for r in reports.values()))

                    def finished(seg: Segment, report: DecodeReport) -> None:
                        job.record(seg, report)
                        reports[seg.index] = report
                        bar.update(len(report.pts))
                        if on_segment is not None:
                            on_segment(seg)

                    backend.run(plan, seg_options, todo, job, finished, model)
                parts = [(job.video(seg), reports[seg.index]) for seg in segments]
                warnings = finish_video(plan, options, parts)
            except BaseException:
                if reports:
                    log.warning("%d of %d segment(s) are done and kept in %s: run the same command again to "
                                "continue", len(reports), len(segments), folder)
                else:  # nothing worth keeping
                    job.remove()
                raise
            job.remove()
    frames = sum(len(r.pts) for r in reports.values())
    return UpscaleResult(plan.output, frames, *plan.out_size, time.perf_counter() - start, warnings,
                         reused=sum(r.held for r in reports.values()))


def _key(plan: VideoPlan, options: UpscaleOptions, chunks: ChunkOptions, precision: dict[str, str],
         weights: str) -> str:
    """Everything that changes the encoded segments; device counts and batch sizes do not."""
    import vidsr  # here, not at the top: vidsr/__init__ imports the engine

    src = plan.input.stat()
    return job_key({
        "vidsr": vidsr.__version__,
        "input": str(plan.input.resolve()), "size": src.st_size, "mtime": src.st_mtime_ns,
        "model": options.model, "weights_sha256": weights, "precision": sorted(precision.items()),
        "out_size": plan.out_size, "encode": dataclasses.asdict(plan.encode),
        "tile": (options.speed.tile, options.speed.tile_pad), "window": dataclasses.asdict(options.window),
        "segment_seconds": chunks.segment_seconds,
        "dedup": options.dedup,  # reused outputs differ (slightly) from computed ones
    })


def run_segment(plan: VideoPlan, options: UpscaleOptions, seg: Segment, partial: Path, final: Path,
                device: str, model_cache: dict | None = None) -> DecodeReport:
    """Encode one segment to `final` (written as `partial`, renamed when complete). Runs in a worker."""
    cache = model_cache if model_cache is not None else {}
    model = cache.get(options.model)
    if model is None:
        model = cache[options.model] = load_model(options.model)
    try:
        report = upscale_part(plan, options, model, device, partial, pts_range=(seg.start, seg.end))
        os.replace(partial, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return report


Finished = Callable[[Segment, DecodeReport], None]


@contextlib.contextmanager
def _backend(chunks: ChunkOptions) -> Iterator[_Local | _Ray]:
    if chunks.backend == "ray":
        ray_backend = _Ray(chunks)
        try:
            yield ray_backend
        finally:
            ray_backend.close()
    else:
        yield _Local(chunks)


# -- local: in this process for one device, else one worker process per device ---------------


class _Local:
    def __init__(self, chunks: ChunkOptions) -> None:
        for device in chunks.devices:
            pick_device(device)  # an unusable device is an option error, before any work starts
        self.devices = chunks.devices
        self.device_kinds = tuple(device_kind(d) for d in chunks.devices)

    def run(self, plan: VideoPlan, options: UpscaleOptions, todo: list[Segment], job: JobDir, finished: Finished,
            model: ModelDescriptor) -> None:
        if not todo:
            return
        if len(self.devices) == 1:  # a worker process would only add its start-up
            cache = {options.model: model}
            for seg in todo:
                finished(seg, run_segment(plan, options, seg, job.partial(seg), job.video(seg), self.devices[0],
                                          cache))
            return
        _run_workers(plan, options, todo, job, self.devices, finished)


@dataclass
class _Worker:
    process: mp.process.BaseProcess
    conn: mp.connection.Connection
    device: str
    segment: Segment | None = None


def _run_workers(plan: VideoPlan, options: UpscaleOptions, todo: list[Segment], job: JobDir,
                 devices: Sequence[str], finished: Finished) -> None:
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    threads = max(1, (os.cpu_count() or 1) // len(devices))
    workers: list[_Worker] = []
    pending = deque(todo)  # handed out as workers free up: a slower device simply takes fewer

    def hand_out(worker: _Worker) -> None:
        worker.segment = pending.popleft() if pending else None
        if worker.segment is not None:
            seg = worker.segment
            try:
                worker.conn.send((plan, options, seg, job.partial(seg), job.video(seg)))
            except OSError:
                worker.process.join(_STOP_WAIT_S)
                raise VidsrError(f"worker {worker.process.name} ({worker.device}) died "
                                 f"(exit code {worker.process.exitcode})") from None

    try:
        with _sigint_ignored():  # inherited by the children, so a Ctrl-C reaches only this process
            for i, device in enumerate(devices):
                here, there = ctx.Pipe()
                process = ctx.Process(target=_worker_main, args=(device, threads, there), daemon=True,
                                      name=f"vidsr-worker-{i}")
                process.start()
                there.close()
                workers.append(_Worker(process, here, device))
        for worker in workers:
            hand_out(worker)
        while any(w.segment is not None for w in workers):
            busy = [w for w in workers if w.segment is not None]
            mp.connection.wait([w.conn for w in busy] + [w.process.sentinel for w in workers])
            for worker in workers:
                if worker.segment is not None and worker.conn.poll():
                    _take_reply(worker, finished)
                    hand_out(worker)
                elif not worker.process.is_alive():
                    where = f" on segment {worker.segment.index}" if worker.segment is not None else ""
                    raise VidsrError(f"worker {worker.process.name} ({worker.device}) died{where} "
                                     f"(exit code {worker.process.exitcode})")
    finally:
        _stop(workers)
        job.discard_partials([w.segment for w in workers if w.segment is not None])


def _take_reply(worker: _Worker, finished: Finished) -> None:
    seg = worker.segment
    assert seg is not None
    try:
        kind, payload = worker.conn.recv()
    except (EOFError, OSError):
        worker.process.join(_STOP_WAIT_S)
        raise VidsrError(f"worker {worker.process.name} ({worker.device}) died on segment {seg.index} "
                         f"(exit code {worker.process.exitcode})") from None
    if kind == "error":
        raise VidsrError(f"segment {seg.index} failed on {worker.device}: {payload}")
    finished(seg, payload)


def _stop(workers: list[_Worker]) -> None:
    """Tell idle workers to leave, end busy ones, and make sure none outlives this call."""
    for worker in workers:
        if worker.segment is not None:
            _kill_worker(worker.process)  # its segment is lost anyway; a dead worker's encoder may not be
        elif worker.process.is_alive():
            with contextlib.suppress(OSError):
                worker.conn.send(None)
    deadline = time.monotonic() + _STOP_WAIT_S
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            _kill_worker(worker.process)
            worker.process.join()
        worker.conn.close()


def _kill_worker(process: mp.process.BaseProcess) -> None:
    """Kill a worker with the encoder it runs, so that neither writes another byte."""
    try:
        os.killpg(process.pid, signal.SIGKILL)  # its own process group (see _worker_main)
    except (AttributeError, OSError):  # no process groups here, or it has not made its own yet
        process.kill()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while worker processes start: they inherit that, and never raise KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may change handlers; the workers then ignore SIGINT once running
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _worker_main(device: str, threads: int, conn: mp.connection.Connection) -> None:
    """One worker process bound to one device; runs the segments its parent sends, one at a time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what a Ctrl-C stops
    if hasattr(os, "setpgid"):
        # Its own process group, which its encoder processes join: the terminal's Ctrl-C does
        # not reach them, and the parent can end the worker with them at once.
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may still write to the terminal
    threading.Thread(target=_exit_with_parent, daemon=True, name="vidsr-parent-watch").start()
    torch.set_num_threads(threads)
    if device_kind(device) == "cpu":
        keep_freed_memory()  # this process runs CPU batches only; see cpu_memory.py
    cache: dict = {}
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        if item is None:
            return
        plan, options, seg, partial, final = item
        try:
            reply = ("done", run_segment(plan, options, seg, partial, final, device, cache))
        except VidsrError as exc:
            reply = ("error", str(exc))
        except Exception as exc:  # reported to the parent, which stops the job
            reply = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


def _exit_with_parent() -> None:
    """A killed parent must not leave workers encoding: leave as soon as it is gone."""
    parent = mp.parent_process()
    if parent is not None:
        parent.join()
        if hasattr(os, "killpg") and os.getpgrp() == os.getpid():
            os.killpg(0, signal.SIGKILL)  # with the encoder it may be running
        os._exit(1)


# -- Ray --------------------------------------------------------------------------------------


class _Ray:
    """Each segment a Ray task needing one GPU (or one CPU on CPU devices); paths must be shared."""

    def __init__(self, chunks: ChunkOptions) -> None:
        try:
            import ray
        except ImportError as exc:
            raise OptionError("--backend ray needs Ray: pip install 'vidsr[ray]'") from exc
        self._ray = ray
        self._started_here = not ray.is_initialized()
        if self._started_here:
            ray.init(address=chunks.address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, **({} if chunks.address else {"num_cpus": len(chunks.devices)}))
        self.gpu = any(d.startswith("cuda") for d in chunks.devices) or (
            chunks.devices == ("auto",) and ray.cluster_resources().get("GPU", 0) > 0)
        self.device_kinds = ("cuda",) if self.gpu else ("cpu",)

    def close(self) -> None:
        if self._started_here:
            self._ray.shutdown()

    def run(self, plan: VideoPlan, options: UpscaleOptions, todo: list[Segment], job: JobDir, finished: Finished,
            model: ModelDescriptor) -> None:
        if not todo:
            return
        ray = self._ray
        task = ray.remote(run_segment).options(num_gpus=1 if self.gpu else 0, num_cpus=1, max_retries=2)
        # Ray gives each GPU task its own CUDA_VISIBLE_DEVICES, so "cuda" is that task's GPU.
        device = "cuda" if self.gpu else "cpu"
        refs = {task.remote(plan, options, seg, job.partial(seg), job.video(seg), device): seg for seg in todo}
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    seg = refs.pop(ref)
                    try:
                        report = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        raise VidsrError(f"segment {seg.index} failed on Ray: {exc.cause if exc.cause else exc}"
                                         ) from exc
                    finished(seg, report)
        finally:  # Ctrl-C or a failure: nothing queued may start, nothing running may finish
            for ref in refs:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if refs:
                job.discard_partials(list(refs.values()))
