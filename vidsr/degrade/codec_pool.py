"""The codec stage in worker processes, frames exchanged through shared memory.

Real encoders cost milliseconds per clip and hold the GIL for part of it (frame
conversions, PyAV's Python layer), so in threads of the training process they compete
with the trainer and the degradation threads for one interpreter. A :class:`CodecPool`
runs them in a pool of worker processes instead, one per CPU core by default:

* each worker is a fresh interpreter that loads only NumPy and PyAV
  (:mod:`vidsr.degrade._codec_worker`, :mod:`vidsr.degrade.encoders`), not torch;
* a batch's clips go to the workers through one shared-memory segment: the parent copies
  the 8-bit frames into it once (straight from the GPU when they are there), each worker
  encodes and decodes its clip in place, and the parent reads the segment back once;
* jobs are handed to idle workers in submission order by a dispatcher thread, so many
  producer threads can share one pool, and the caller does other work while they run;
* a worker that dies (an encoder crash) fails its clip with an :class:`EncoderError`
  and is replaced.

The results are bit for bit those of :func:`vidsr.degrade.codec.compress_frames` in the
calling process: the encoders run single-threaded with pinned CPU features
(:func:`vidsr.degrade.encoders.encoder_options`).
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import os
import subprocess
import sys
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import Future, wait
from multiprocessing import Pipe, shared_memory
from multiprocessing.connection import wait as wait_connections
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidsr.degrade.encoders import CodecParams
from vidsr.errors import EncoderError, OptionError

log = logging.getLogger(__name__)

_WORKER = Path(__file__).with_name("_codec_worker.py")
# Loads the worker by path: neither the vidsr package nor the current folder is imported.
_BOOT = ("import sys; del sys.path[0]; import importlib.util as u; "
         "s = u.spec_from_file_location('vidsr_codec_worker', sys.argv[1]); m = u.module_from_spec(s); "
         "s.loader.exec_module(m); m.main(int(sys.argv[2]), int(sys.argv[3]))")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclasses.dataclass
class _Job:
    id: int
    segment: str
    offset: int
    shape: tuple[int, int, int, int]
    params: dict[str, Any]
    future: Future[None]


class _Worker:
    def __init__(self) -> None:
        job_r, self.jobs = Pipe(duplex=False)
        self.results, result_w = Pipe(duplex=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(_WORKER), str(job_r.fileno()), str(result_w.fileno())],
            pass_fds=(job_r.fileno(), result_w.fileno()), stdin=subprocess.DEVNULL)
        job_r.close()  # the child's ends: closed here so that a dead child reads as end of file
        result_w.close()
        self.job: _Job | None = None

    def stop(self, timeout: float = 5.0) -> None:
        try:
            self.jobs.send(None)
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.jobs.close()
        self.results.close()


class CodecHandle:
    """Clips being compressed by a :class:`CodecPool`; :meth:`result` waits and returns them."""

    def __init__(self, segment: shared_memory.SharedMemory, shape: tuple[int, ...],
                 futures: Sequence[Future[None]]) -> None:
        self._segment: shared_memory.SharedMemory | None = segment
        self._shape = shape
        self._futures = list(futures)

    def done(self) -> bool:
        return all(f.done() for f in self._futures)

    def result(self) -> np.ndarray:
        """All frames ``[F, H, W, 3]`` uint8, compressed (a copy; the segment is freed)."""
        if self._segment is None:
            raise RuntimeError("the result of a codec handle can be read once")
        wait(self._futures)  # every worker is done with the segment before it goes
        try:
            for f in self._futures:
                f.result()
            view = np.ndarray(self._shape, dtype=np.uint8, buffer=self._segment.buf)
            out = view.copy()
            del view
            return out
        finally:
            _free(self._segment)
            self._segment = None


def _free(segment: shared_memory.SharedMemory) -> None:
    segment.close()
    try:
        segment.unlink()
    except FileNotFoundError:
        pass


class CodecPool:
    """Real video encoders in ``workers`` processes (default: one per usable core); see the module doc.

    Thread-safe: any number of threads may :meth:`start` work at once. Close it (or use
    it as a context manager) to stop the workers.
    """

    def __init__(self, workers: int | None = None) -> None:
        n = usable_cores() if workers is None else workers
        if n < 1:
            raise OptionError(f"a codec pool needs at least 1 worker, got {n}")
        self.size = n
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: collections.deque[_Job] = collections.deque()
        self._closing = False
        self._wake_r, self._wake_w = Pipe(duplex=False)
        self._workers = [_Worker() for _ in range(n)]
        self._idle = collections.deque(self._workers)
        self._thread = threading.Thread(target=self._collect, name="vidsr-codec-pool", daemon=True)
        self._thread.start()
        # Workers stop with the pool even if close() is never called.
        self._finalizer = weakref.finalize(self, _stop_workers, self._workers)

    # --- submitting ---

    def start(self, frames: torch.Tensor | np.ndarray, counts: Sequence[int],
              params: Sequence[CodecParams]) -> CodecHandle:
        """Start compressing consecutive clips of ``frames`` (uint8 ``[F, H, W, 3]``, any device).

        Clip ``i`` is the next ``counts[i]`` frames, compressed with ``params[i]``. The
        frames are copied once into shared memory; :meth:`CodecHandle.result` gives them
        back compressed.
        """
        if len(counts) != len(params) or sum(counts) != frames.shape[0]:
            raise OptionError(f"{len(params)} codec settings and clips of {list(counts)} frames for "
                              f"{frames.shape[0]} frames")
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype not in (np.uint8, torch.uint8):
            raise OptionError(f"expected uint8 frames [F, H, W, 3], got {tuple(frames.shape)} {frames.dtype}")
        _, h, w, _ = frames.shape
        shape = tuple(int(s) for s in frames.shape)
        segment = shared_memory.SharedMemory(create=True, size=max(1, int(np.prod(shape))))
        try:
            view = np.ndarray(shape, dtype=np.uint8, buffer=segment.buf)
            if isinstance(frames, torch.Tensor):
                torch.from_numpy(view).copy_(frames)
            else:
                view[...] = frames
            del view
            frame_bytes = h * w * 3
            futures = []
            first = 0
            with self._lock:
                if self._closing:
                    raise RuntimeError("the codec pool is closed")
                for count, p in zip(counts, params):
                    job = _Job(next(self._ids), segment.name, first * frame_bytes, (count, h, w, 3),
                               dataclasses.asdict(p), Future())
                    self._pending.append(job)
                    futures.append(job.future)
                    first += count
                self._dispatch()
        except BaseException:
            _free(segment)
            raise
        return CodecHandle(segment, shape, futures)

    def compress(self, frames: np.ndarray, params: CodecParams) -> np.ndarray:
        """One clip ``[T, H, W, 3]`` uint8, compressed in a worker (waits for it)."""
        return self.start(frames, [frames.shape[0]], [params]).result()

    def _dispatch(self) -> None:
        """Hand pending jobs to idle workers (with the lock held)."""
        while self._pending and self._idle:
            worker = self._idle.popleft()
            job = self._pending.popleft()
            if not job.future.set_running_or_notify_cancel():
                self._idle.appendleft(worker)
                continue
            try:
                worker.jobs.send((job.id, job.segment, job.offset, job.shape, job.params))
            except OSError:
                # The worker died while idle: the collector replaces it (its results pipe
                # reads as end of file) and this job goes to the next idle worker.
                self._pending.appendleft(job)
                continue
            worker.job = job

    # --- results ---

    def _collect(self) -> None:
        while True:
            with self._lock:
                if self._closing:
                    return
                conns: list[Any] = [w.results for w in self._workers] + [self._wake_r]
            ready = wait_connections(conns)
            with self._lock:
                if self._closing:
                    return
                for conn in ready:
                    if conn is self._wake_r:
                        continue
                    worker = next(w for w in self._workers if w.results is conn)
                    try:
                        job_id, kind, message = conn.recv()
                    except (EOFError, OSError):
                        self._replace(worker)
                        continue
                    job, worker.job = worker.job, None
                    if job is not None and job.id == job_id:
                        if kind is None:
                            job.future.set_result(None)
                        elif kind == "option":
                            job.future.set_exception(OptionError(message))
                        else:
                            job.future.set_exception(EncoderError(message))
                    self._idle.append(worker)
                self._dispatch()

    def _replace(self, worker: _Worker) -> None:
        """A worker died: fail its clip and start another in its place (with the lock held)."""
        code = worker.proc.wait()
        log.warning("a codec worker exited with code %s; starting another", code)
        if worker.job is not None:
            worker.job.future.set_exception(EncoderError(
                f"the codec worker died (exit code {code}) on a {worker.job.params['codec']} clip of "
                f"{worker.job.shape[2]}x{worker.job.shape[1]}"))
        if worker in self._idle:
            self._idle.remove(worker)
        worker.jobs.close()
        worker.results.close()
        fresh = _Worker()
        self._workers[self._workers.index(worker)] = fresh
        self._idle.append(fresh)

    # --- closing ---

    def close(self) -> None:
        """Stop the workers; clips still waiting fail with a RuntimeError."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            pending = list(self._pending) + [w.job for w in self._workers if w.job is not None]
            self._pending.clear()
        self._wake_w.send(None)
        self._thread.join()
        self._finalizer()
        for job in pending:
            if not job.future.done():
                job.future.set_exception(RuntimeError("the codec pool was closed"))
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> CodecPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stop_workers(workers: list[_Worker]) -> None:
    for w in workers:
        try:
            w.jobs.send(None)
        except OSError:
            pass
    for w in workers:
        w.stop()

