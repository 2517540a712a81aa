"""Training pairs made on the fly: HR patches -> degradations -> shuffle pool -> batches.

Where the work runs:

* HR patches are read and cropped by ``data.load_threads`` CPU threads (image decoding
  and video seeking release the GIL).
* Each of ``feed.threads`` producer threads degrades whole batches with its own
  :class:`vidsr.degrade.HighOrderDegradation` on the training device: on CUDA, blur,
  resizes, noise, USM and JPEG (``jpeg: torch``, libjpeg's arithmetic in tensor
  operations) run on the GPU; the codec stage (real video encoders) runs in one
  :class:`vidsr.degrade.codec_pool.CodecPool` of ``feed.codec_workers`` worker processes
  (default: one per CPU core, shared out among the ranks of a machine) that all
  producers share, frames passed through shared memory (``feed.codec_pool: threads``
  runs the encoders in threads of this process instead). While one producer waits on
  its encoders, the others use the GPU and the trainer keeps stepping: the codec stage
  overlaps with training, ``feed.prefetch`` batches deep. All GPU work stays on the
  default stream, which keeps every copy back to the GPU ordered before its use, and no
  memory is freed while another stream may still read it. So GPU kernels of degrading
  and of training interleave on one stream; what the threads and processes overlap is
  the CPU side (Python, encoders, decoding).
* The feed measures itself: :meth:`DegradationFeed.stats` gives, per interval, the
  batches made and the producers' busy time, from which its rate (samples per second
  it could deliver with every producer busy) is compared with the trainer's step rate
  in the training log.
* The trainer takes batches in order from a shuffle pool (Real-ESRGAN's
  ``_dequeue_and_enqueue``): each step, a random batch leaves the pool and the fresh
  samples take its slots, so every batch mixes samples degraded at different times.
  This matters because, as in Real-ESRGAN, a degradation config with
  ``draw: per_batch`` shares each batch's resizes and noise kinds among its samples;
  the pool is what gives the network batches with mixed degradations.

Everything is a pure function of (run seed, rank, batch index): batch *i* is the same
whichever thread made it and whenever, so the stream is reproducible (bit for bit on the
CPU; on CUDA as far as its kernels are deterministic), and a checkpoint only needs the
pool's contents, its generator and the next batch index.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from vidsr.degrade import DegradationConfig, HighOrderDegradation, SampleParams
from vidsr.degrade.codec_pool import CodecPool, usable_cores
from vidsr.train.data import Patch, PatchSampler, seed_of

log = logging.getLogger(__name__)


def resolve_device(device: torch.device) -> torch.device:
    """``cuda`` -> ``cuda:N`` (the current device): threads other than this one default to cuda:0."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def degrade_patches(deg: HighOrderDegradation, patches: Sequence[Patch], *, scale: int,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Degrade HR patches into ``(gt, lr)`` uint8 batches on ``device``.

    Images go through the pipeline as ``[N, 3, H, W]`` (the codec stage synthesises camera
    motion). Video patches that draw the codec stage go through as clips
    ``[N, T, 3, H, W]`` so the encoder sees their real motion; the others only need their
    ground-truth frame and go with the images. The LR of a clip is its ground-truth frame.
    """
    still = [p.frames.shape[0] == 1 for p in patches]
    # One draw for the whole batch (with the config's ``draw: per_batch``, resizes and noise
    # kinds are shared by the batch, as in Real-ESRGAN, and it is degraded as one tensor).
    params: list[SampleParams] = deg.sample(len(patches), still=still)
    gt = torch.stack([p.frames[p.ref] for p in patches]).to(device)
    n, _, h, w = gt.shape
    lr = torch.empty(n, 3, h // scale, w // scale, dtype=torch.uint8, device=device)
    frames_idx = [i for i in range(n) if still[i] or params[i].codec is None]
    clip_idx = [i for i in range(n) if i not in frames_idx]
    if frames_idx:
        hr = gt[frames_idx].float() / 255
        lr[frames_idx] = to_uint8(deg.apply(hr, [params[i] for i in frames_idx], scale=scale))
    if clip_idx:
        hr = torch.stack([patches[i].frames for i in clip_idx]).to(device).float() / 255
        out = deg.apply(hr, [params[i] for i in clip_idx], scale=scale)
        refs = torch.tensor([patches[i].ref for i in clip_idx], device=device)
        lr[clip_idx] = to_uint8(out[torch.arange(len(clip_idx), device=device), refs])
    return gt, lr


@dataclass(frozen=True)
class FeedStats:
    """What the producers did since the previous :meth:`DegradationFeed.stats` call."""

    batches: int  #: batches finished
    samples: int  #: fresh pairs in them
    busy_s: float  #: producer seconds spent making them (summed over producers)
    threads: int  #: producer threads

    @property
    def samples_per_s(self) -> float | None:
        """The feed's rate: pairs per second with every producer busy (None before a batch)."""
        if self.batches == 0 or self.busy_s <= 0:
            return None
        return self.threads * self.samples / self.busy_s


class DegradationFeed:
    """Batches of ``chunk`` fresh pairs, index by index, made ahead by producer threads.

    ``codec_workers``: encoder processes (``codec_pool="processes"``, default one per
    usable core) or threads in all. The codec pool is only started when the
    degradation's codec stage can run.
    """

    def __init__(self, sampler: PatchSampler, degradation: DegradationConfig, *, scale: int, chunk: int,
                 device: torch.device, seed: int, rank: int = 0, threads: int = 2,
                 codec_workers: int | None = None, codec_pool: str = "processes",
                 prefetch: int = 4, load_threads: int = 4, start: int = 0) -> None:
        self.sampler = sampler
        self.scale = scale
        self.chunk = chunk
        self.device = resolve_device(device)
        self.seed = seed
        self.rank = rank
        self.prefetch = max(prefetch, threads)
        self.next_index = start
        self._ready: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._error: BaseException | None = None
        self._stop = False
        self._cond = threading.Condition()
        self._busy: list[float] = []  # seconds per batch made since the last stats()
        self.threads = threads
        self._loader = ThreadPoolExecutor(load_threads, thread_name_prefix="vidsr-load")
        workers = codec_workers if codec_workers is not None else usable_cores()
        self._pool = (CodecPool(workers) if codec_pool == "processes" and degradation.codec.prob > 0 else None)
        per_producer = max(1, workers // threads)  # threads: the encoders without a pool, libjpeg round trips
        self._degs = [HighOrderDegradation(degradation, seed=0, codec_workers=per_producer, codec_pool=self._pool)
                      for _ in range(threads)]
        self._threads = [threading.Thread(target=self._produce, args=(k, threads), name=f"vidsr-degrade-{k}",
                                          daemon=True) for k in range(threads)]
        for t in self._threads:
            t.start()

    # --- producer side ---

    def make(self, index: int, deg: HighOrderDegradation) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index`` (pure: the same pairs every time)."""
        keys = [(self.seed, self.rank, index, i) for i in range(self.chunk)]
        patches = list(self._loader.map(self.sampler.sample, keys))
        deg.generator.manual_seed(seed_of(self.seed, self.rank, index, 1 << 20))
        return degrade_patches(deg, patches, scale=self.scale, device=self.device)

    def _produce(self, k: int, stride: int) -> None:
        deg = self._degs[k]
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # the current device is per thread
        index = self.next_index + k
        try:
            while True:
                with self._cond:
                    while not self._stop and index >= self.next_index + self.prefetch:
                        self._cond.wait()
                    if self._stop:
                        return
                t0 = time.perf_counter()
                pair = self.make(index, deg)
                busy = time.perf_counter() - t0
                with self._cond:
                    self._busy.append(busy)
                    self._ready[index] = pair
                    self._cond.notify_all()
                index += stride
        except BaseException as exc:  # handed to the trainer, which re-raises it
            with self._cond:
                self._error = exc
                self._cond.notify_all()
        finally:
            deg.close()

    # --- consumer side ---

    def stats(self) -> FeedStats:
        """Batches made and producer time spent since the previous call (then reset)."""
        with self._cond:
            busy, self._busy = self._busy, []
        return FeedStats(batches=len(busy), samples=len(busy) * self.chunk, busy_s=sum(busy), threads=self.threads)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch ``(gt, lr)``, uint8 on the device, in index order."""
        with self._cond:
            while self.next_index not in self._ready:
                if self._error is not None:
                    raise self._error
                if self._stop:
                    raise RuntimeError("the degradation feed is closed")
                self._cond.wait()
            pair = self._ready.pop(self.next_index)
            self.next_index += 1
            self._cond.notify_all()
        return pair

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=60)
        self._loader.shutdown(wait=False, cancel_futures=True)
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> DegradationFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ShufflePool:
    """A pool of ``size`` pairs; each draw takes a random batch out and puts fresh pairs in its place."""

    def __init__(self, size: int, *, seed: int) -> None:
        self.size = size
        self.count = 0
        self.gt: torch.Tensor | None = None
        self.lr: torch.Tensor | None = None
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def full(self) -> bool:
        return self.count >= self.size

    def add(self, gt: torch.Tensor, lr: torch.Tensor) -> None:
        """Append while filling up."""
        if self.gt is None or self.lr is None:
            self.gt = torch.empty(self.size, *gt.shape[1:], dtype=gt.dtype, device=gt.device)
            self.lr = torch.empty(self.size, *lr.shape[1:], dtype=lr.dtype, device=lr.device)
        n = min(gt.shape[0], self.size - self.count)
        self.gt[self.count:self.count + n] = gt[:n]
        self.lr[self.count:self.count + n] = lr[:n]
        self.count += n

    def swap(self, gt: torch.Tensor, lr: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A random ``batch`` of the full pool out; the fresh pairs take the first of those slots."""
        assert self.gt is not None and self.lr is not None and self.full
        pick = torch.randperm(self.size, generator=self.generator)[:batch]
        idx = pick.to(self.gt.device)
        out_gt, out_lr = self.gt[idx], self.lr[idx]
        fresh = idx[:gt.shape[0]]
        self.gt[fresh] = gt
        self.lr[fresh] = lr
        return out_gt, out_lr

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "generator": self.generator.get_state(),
                "gt": None if self.gt is None else self.gt.cpu(), "lr": None if self.lr is None else self.lr.cpu()}

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        self.count = int(state["count"])
        self.generator.set_state(state["generator"])
        self.gt = None if state["gt"] is None else state["gt"].to(device)
        self.lr = None if state["lr"] is None else state["lr"].to(device)


class PairStream:
    """Float batches ``(gt, lr)`` in [0, 1] for the trainer: the feed through the shuffle pool."""

    def __init__(self, feed: DegradationFeed, pool: ShufflePool, batch: int) -> None:
        self.feed = feed
        self.pool = pool
        self.batch = batch

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        while not self.pool.full:
            self.pool.add(*self.feed.next())
        gt, lr = self.pool.swap(*self.feed.next(), batch=self.batch)
        return gt.float() / 255, lr.float() / 255

    def state_dict(self) -> dict[str, Any]:
        return {"next_index": self.feed.next_index, "pool": self.pool.state_dict()}

    def close(self) -> None:
        self.feed.close()
