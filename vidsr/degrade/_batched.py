"""The batched pipeline: a batch degraded with a few large tensor operations.

Samples that share what fixes tensor sizes and the order of operations (each order's
presence, resize factor and mode; the final stage's order and mode), which is the whole
batch when its parameters come from ``per_batch`` draws, are degraded together as one
tensor of frames ``[F, 3, H, W]``: a still image is one frame, a still that gets the
codec stage is the clip of ``motion.frames`` frames synthesised from it, a clip input
keeps its ``T`` frames. A sample's frames are consecutive. Per-sample parameters become
per-frame tensors:

* blur and the final sinc filter: one ``[F, k, k]`` stack of kernels (built in one go,
  zero-padded to the largest) applied by one grouped convolution or one batched FFT, to
  the frames of the samples that blur;
* resize: one ``F.interpolate`` for the batch;
* noise: levels and gray flags as per-frame tensors, one add and one clamp for the
  batch. The per-pixel noise itself is still drawn per sample, from the sample's
  recorded seed (one generator call each), so a sample's noise is the same in any
  batch, and the same as in the per-sample pipeline;
* JPEG: with the ``torch`` codec (``auto`` on a GPU), the batch at per-frame qualities in
  one pass on its device; with ``libjpeg`` (``auto`` on the CPU), one conversion to 8 bits
  and one copy to the host for the batch, the round trips in the codec threads;
* codec stage: the clips of the samples that get it go to the host in one copy, into a
  :class:`~vidsr.degrade.codec_pool.CodecPool`'s shared memory when there is one, and to
  its worker processes (else to the encoder threads), which run while the other samples
  get their JPEG.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor

import torch

from vidsr.degrade import ops
from vidsr.degrade._params import NoiseParams, OrderParams, SampleParams
from vidsr.degrade.codec import start_compress_clips, synthesize_motions
from vidsr.degrade.codec_pool import CodecPool
from vidsr.degrade.kernels import KernelParams, make_kernels

# What must be shared by samples degraded as one tensor.
GroupKey = tuple[object, ...]


def group_key(p: SampleParams) -> GroupKey:
    def order(o: OrderParams | None) -> object:
        return None if o is None else (o.resize.factor, o.resize.mode)

    return order(p.first), order(p.second), p.final.resize_first, p.final.mode


class _Frames:
    """Where each sample's frames sit in the batch's frame tensor."""

    def __init__(self, counts: Sequence[int], device: torch.device) -> None:
        self.counts = list(counts)
        self.starts = [0]
        for c in self.counts[:-1]:
            self.starts.append(self.starts[-1] + c)
        self.device = device
        self.single = all(c == 1 for c in self.counts)

    def of(self, samples: Sequence[int]) -> list[int]:
        if self.single:
            return list(samples)
        return [f for i in samples for f in range(self.starts[i], self.starts[i] + self.counts[i])]

    def index(self, samples: Sequence[int]) -> torch.Tensor:
        return torch.tensor(self.of(samples), device=self.device)

    def per_frame(self, values: Sequence[float], samples: Sequence[int] | None = None) -> list[float]:
        """Per-sample ``values`` (of ``samples``, default all) repeated for each frame."""
        samples = range(len(self.counts)) if samples is None else samples
        if self.single:
            return list(values)
        return [v for v, i in zip(values, samples) for _ in range(self.counts[i])]

    def repeat(self, t: torch.Tensor, samples: Sequence[int]) -> torch.Tensor:
        """Rows of ``t`` (one per sample of ``samples``) repeated for each of that sample's frames."""
        if self.single:
            return t
        rows = [j for j, i in enumerate(samples) for _ in range(self.counts[i])]
        return t.index_select(0, torch.tensor(rows, device=t.device))


def _on_subset(x: torch.Tensor, frames: _Frames, samples: Sequence[int],
               fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``fn`` applied to the frames of ``samples`` only; the other frames are kept."""
    if len(samples) == len(frames.counts):
        return fn(x)
    index = frames.index(samples)
    return x.index_copy(0, index, fn(x.index_select(0, index)))


def _blur(x: torch.Tensor, frames: _Frames, kernels: Sequence[KernelParams | None]) -> torch.Tensor:
    samples = [i for i, k in enumerate(kernels) if k is not None and k.kind != "pulse"]
    if not samples:
        return x
    # Padded to the largest side in the batch, not Real-ESRGAN's 21: the same result, fewer taps.
    stack = make_kernels([kernels[i] for i in samples]).to(device=x.device, dtype=x.dtype)  # type: ignore[misc]
    counts = [frames.counts[i] for i in samples]

    def run(y: torch.Tensor) -> torch.Tensor:
        if len(set(counts)) == 1:
            # Samples of T frames as images of T*C channels: one kernel each, not one per frame
            # (on CPUs, each kernel costs an FFT of the frame's size).
            n, c = len(samples), counts[0] * y.shape[1]
            return ops.blur(y.reshape(n, c, *y.shape[2:]), stack).reshape(y.shape).clamp(0, 1)
        return ops.blur(y, frames.repeat(stack, samples)).clamp(0, 1)

    return _on_subset(x, frames, samples, run)


def _per_frame_column(values: list[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype).reshape(-1, 1, 1, 1).to(like.device)


def add_noise(x: torch.Tensor, frames: _Frames, noises: Sequence[NoiseParams]) -> torch.Tensor:
    """Each sample's Gaussian or Poisson noise, from its own seed, added to the batch at once."""
    f, c, h, w = x.shape
    gaussian = [p.kind == "gaussian" for p in noises]
    poisson_colour = any(p.kind == "poisson" and not p.gray for p in noises)
    poisson_gray = any(p.kind == "poisson" and p.gray for p in noises)
    shot: dict[bool, tuple[torch.Tensor, torch.Tensor]] = {}  # gray -> (8-bit image, photons per unit)
    if poisson_colour:
        shot[False] = ops.shot_noise_photons(x)
    if poisson_gray:
        shot[True] = ops.shot_noise_photons(ops.luma(x))
    rates = {gray: q * photons for gray, (q, photons) in shot.items()}
    # Drawn per sample into one buffer: Gaussian values, or Poisson photon counts. One
    # channel when every sample's noise is gray: broadcast over the channels when added.
    all_gray = all(p.gray for p in noises)
    raw = torch.empty((f, 1 if all_gray else c, h, w), device=x.device, dtype=x.dtype)
    for i, p in enumerate(noises):
        gen = torch.Generator(device=x.device)
        gen.manual_seed(p.seed)
        lo, hi = frames.starts[i], frames.starts[i] + frames.counts[i]
        if p.kind == "poisson":
            raw[lo:hi] = torch.poisson(rates[p.gray][lo:hi], generator=gen)  # a gray field fills every channel
        elif p.gray and not all_gray:
            raw[lo:hi] = torch.randn((hi - lo, 1, h, w), generator=gen, device=x.device, dtype=x.dtype)
        else:
            torch.randn(raw[lo:hi].shape, generator=gen, out=raw[lo:hi])
    noise = raw
    if shot:
        # Shot noise: photon counts back to intensities, minus the (8-bit) image.
        if len(shot) == 2:
            gray_f = _per_frame_column(frames.per_frame([float(p.gray) for p in noises]), x).bool()
            q, photons = (torch.where(gray_f, g, colour) for g, colour in zip(shot[True], shot[False]))
        else:
            q, photons = next(iter(shot.values()))
        if any(gaussian):
            gauss_f = _per_frame_column(frames.per_frame([float(g) for g in gaussian]), x).bool()
            noise = torch.where(gauss_f, raw, raw / photons - q)
        else:
            noise = raw.div_(photons).sub_(q)
    # As the per-sample pipeline: a Gaussian sigma is on the 0..255 scale, a Poisson scale multiplies.
    level = _per_frame_column(frames.per_frame([p.level / 255.0 if p.kind == "gaussian" else p.level
                                                for p in noises]), x)
    return (x + noise * level).clamp_(0, 1)


def _jpeg(x: torch.Tensor, frames: _Frames, qualities: Sequence[int | None],
          executor: Executor | None, codec: ops.JpegCodec) -> torch.Tensor:
    samples = [i for i, q in enumerate(qualities) if q is not None]
    if not samples:
        return x
    qs = frames.per_frame([qualities[i] for i in samples], samples)  # type: ignore[misc]
    return _on_subset(x, frames, samples, lambda y: ops.jpeg(y, qs, codec=codec, executor=executor))


def _order(x: torch.Tensor, frames: _Frames, orders: Sequence[OrderParams | None], reference: tuple[int, int] | None,
           executor: Executor | None, codec: ops.JpegCodec) -> torch.Tensor:
    o = orders[0]
    if o is None:  # the group shares whether the order runs
        return x
    x = _blur(x, frames, [p.kernel for p in orders])  # type: ignore[union-attr]
    base = reference if reference is not None else (x.shape[-2], x.shape[-1])
    size = max(1, int(base[0] * o.resize.factor)), max(1, int(base[1] * o.resize.factor))
    x = ops.resize(x, size, o.resize.mode).clamp(0, 1)
    x = add_noise(x, frames, [p.noise for p in orders])  # type: ignore[union-attr]
    return _jpeg(x, frames, [p.jpeg_quality for p in orders], executor, codec)  # type: ignore[union-attr]


def _codec(x: torch.Tensor, frames: _Frames, plist: Sequence[SampleParams], place: str,
           executor: Executor | None, pool: CodecPool | None,
           meanwhile: Callable[[torch.Tensor, Executor | None], torch.Tensor] | None = None) -> torch.Tensor:
    """The codec stage of the samples that take it at ``place``.

    ``meanwhile(x, executor)`` runs in this thread while the encoders run in the
    executor's (so it gets no executor then), or before them if a sample needs both.
    """
    samples = [i for i, p in enumerate(plist) if p.codec is not None and p.codec_place == place]
    if meanwhile is not None and (not samples or any(plist[i].final.jpeg_quality is not None for i in samples)):
        x = meanwhile(x, executor)  # hand-made parameters may ask for both on one sample: one after the other
        meanwhile = None
    if not samples:
        return x
    index = frames.index(samples)
    finish = start_compress_clips(x.index_select(0, index), [frames.counts[i] for i in samples],
                                  [plist[i].codec for i in samples], executor, pool=pool)  # type: ignore[misc]
    if meanwhile is not None:
        x = meanwhile(x, None)  # touches none of the samples being encoded
    return x.index_copy(0, index, finish())


def degrade_group(src: torch.Tensor, plist: Sequence[SampleParams], lr_size: tuple[int, int],
                  executor: Executor | None, jpeg_codec: ops.JpegCodec = "auto",
                  pool: CodecPool | None = None) -> torch.Tensor:
    """Degrade samples of one group key; ``src`` ``[M, 3, H, W]`` images or ``[M, T, 3, H, W]`` clips."""
    m = len(plist)
    if src.dim() == 4:
        moving = [i for i, p in enumerate(plist) if p.motion is not None]
        frames = _Frames([p.motion.frames if p.motion is not None else 1 for p in plist], src.device)
        if moving:
            clips = iter(synthesize_motions(src[moving], [plist[i].motion for i in moving]))  # type: ignore[misc]
            x = torch.cat([next(clips) if p.motion is not None else src[i:i + 1] for i, p in enumerate(plist)])
        else:
            x = src
    else:
        t = src.shape[1]
        frames = _Frames([t] * m, src.device)
        x = src.reshape(m * t, *src.shape[2:])

    x = _order(x, frames, [p.first for p in plist], None, executor, jpeg_codec)
    x = _order(x, frames, [p.second for p in plist], lr_size, executor, jpeg_codec)

    final = plist[0].final  # the group shares the final stage's order and mode

    def resize_sinc(y: torch.Tensor) -> torch.Tensor:
        y = ops.resize(y, lr_size, final.mode).clamp(0, 1)
        return _blur(y, frames, [p.final.sinc for p in plist])

    if final.resize_first:
        x = resize_sinc(x)
    # The encoders of the samples that take the codec in the JPEG's place run while the others get their JPEG.
    qualities = [p.final.jpeg_quality for p in plist]
    x = _codec(x, frames, plist, "final", executor, pool,
               meanwhile=lambda y, ex: _jpeg(y, frames, qualities, ex, jpeg_codec))
    if not final.resize_first:
        x = resize_sinc(x)
    x = _codec(x, frames, plist, "end", executor, pool)

    if src.dim() == 4:
        if not frames.single:
            x = x[[frames.starts[i] + (p.motion.ref if p.motion is not None else 0) for i, p in enumerate(plist)]]
        return ops.quantize(x)
    return ops.quantize(x).reshape(m, src.shape[1], *x.shape[1:])


# On CPUs a group is degraded in pieces of at most this many bytes of HR frames. Larger
# tensors are memory-bound and, above glibc's 32 MiB mmap limit, page-faulted in afresh at
# every operation: with the codec stage (5 frames per still) a batch of 16 at 256x256 took
# 1.15x the per-sample pipeline's time in one piece and 0.95x in pieces of 16 MiB. GPUs
# get the whole group at once.
_CPU_CHUNK_BYTES = 16 << 20


def _chunks(src: torch.Tensor, plist: Sequence[SampleParams], idx: list[int]) -> list[list[int]]:
    if src.device.type != "cpu":
        return [idx]
    frame_bytes = src.shape[-3] * src.shape[-2] * src.shape[-1] * src.element_size()
    t = src.shape[1] if src.dim() == 5 else 1
    chunks: list[list[int]] = [[]]
    size = 0
    for i in idx:
        m = plist[i].motion
        b = (m.frames if m is not None else t) * frame_bytes
        if chunks[-1] and size + b > _CPU_CHUNK_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(i)
        size += b
    return chunks


def degrade_batch(src: torch.Tensor, plist: Sequence[SampleParams], lr_size: tuple[int, int],
                  executor: Executor | None, *, jpeg_codec: ops.JpegCodec = "auto",
                  pool: CodecPool | None = None) -> torch.Tensor:
    """Degrade a batch: one :func:`degrade_group` per group key (one in all for ``per_batch``
    draws), in memory-sized pieces on CPUs."""
    groups: dict[GroupKey, list[int]] = {}
    for i, p in enumerate(plist):
        groups.setdefault(group_key(p), []).append(i)
    parts = [chunk for idx in groups.values() for chunk in _chunks(src, plist, idx)]
    if len(parts) == 1:
        return degrade_group(src, plist, lr_size, executor, jpeg_codec, pool)
    out: torch.Tensor | None = None
    for idx in parts:
        part = degrade_group(src[idx], [plist[i] for i in idx], lr_size, executor, jpeg_codec, pool)
        if out is None:
            out = part.new_empty((len(plist), *part.shape[1:]))
        out[idx] = part
    assert out is not None
    return out
