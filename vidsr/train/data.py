"""HR training patches from folders of images and videos.

A *patch* is ``[T, 3, S, S]`` uint8: one crop of an image (T = 1), or the same crop of T
consecutive video frames, so the codec stage later sees real motion. Every patch is a
pure function of its key (run seed, rank, batch index, position), which is what makes a
resumed run draw exactly the patches an uninterrupted one would.

Images are read by vidsr.io.image (every suffix `vidsr upscale` takes), transparency
composited over white, EXIF orientation applied. Videos are read with decord when it is
installed (cheap random access to any frame) and with PyAV otherwise (seek to the nearest
key frame, decode forward).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from vidsr.errors import InputError, InputNotFoundError, OptionError
from vidsr.io.image import IMAGE_SUFFIXES, read_rgb8
from vidsr.io.probe import VIDEO_SUFFIXES
from vidsr.train.train_config import DataConfig

log = logging.getLogger(__name__)


def seed_of(*key: int) -> int:
    """A well-mixed 64-bit seed from a tuple of non-negative integers."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)[0])


def seed_for(seed: int, *parts: object) -> int:
    """A seed per (run seed, stage name, ...): stable across processes and Python versions."""
    ints = [seed]
    for p in parts:
        ints.extend(p.encode("utf-8") if isinstance(p, str) else [int(p)])  # type: ignore[call-overload]
    return seed_of(*ints)



def _randint(g: torch.Generator, high: int) -> int:
    """Uniform in [0, high)."""
    return int(torch.randint(high, (1,), generator=g).item()) if high > 1 else 0


def _coin(g: torch.Generator) -> bool:
    return bool(torch.rand((), generator=g).item() < 0.5)


# --- images -----------------------------------------------------------------------------


def image_tensor(path: Path) -> torch.Tensor:
    """``[3, H, W]`` uint8 RGB of an image file (read by :func:`vidsr.io.image.read_rgb8`)."""
    return torch.from_numpy(read_rgb8(path)).permute(2, 0, 1).contiguous()


class Source(Protocol):
    path: Path

    def patch(self, g: torch.Generator, size: int, frames: int) -> tuple[torch.Tensor, int]:
        """``([T, 3, size, size] uint8, index of the frame the ground truth is)``."""


def _crop_box(g: torch.Generator, h: int, w: int, size: int) -> tuple[int, int]:
    return _randint(g, h - size + 1), _randint(g, w - size + 1)


def _pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Reflect-pad ``[..., H, W]`` uint8 up to ``size`` on each side (Real-ESRGAN pads small images)."""
    h, w = x.shape[-2:]
    ph, pw = max(0, size - h), max(0, size - w)
    if not ph and not pw:
        return x
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, h, w).float()
    mode = "reflect" if ph < h and pw < w else "replicate"
    out = F.pad(flat, (0, pw, 0, ph), mode=mode)
    return out.round().to(torch.uint8).reshape(*lead, h + ph, w + pw)


class ImageSource:
    """One image file; decoded on first use and kept when ``cache``."""

    def __init__(self, path: Path, *, cache: bool) -> None:
        self.path = path
        self._cache = cache
        self._pixels: torch.Tensor | None = None
        self._lock = threading.Lock()

    def pixels(self) -> torch.Tensor:
        if not self._cache:
            return image_tensor(self.path)
        with self._lock:
            if self._pixels is None:
                self._pixels = image_tensor(self.path)
            return self._pixels

    def patch(self, g: torch.Generator, size: int, frames: int) -> tuple[torch.Tensor, int]:
        img = _pad_to(self.pixels(), size)
        top, left = _crop_box(g, img.shape[1], img.shape[2], size)
        return img[None, :, top:top + size, left:left + size], 0


# --- videos -----------------------------------------------------------------------------


class _Reader(Protocol):
    def __len__(self) -> int: ...

    def read(self, start: int, count: int) -> np.ndarray: ...


_DECORD: Any = None
_DECORD_LOCK = threading.Lock()


def _import_decord() -> Any:
    """decord, or None when it is missing or cannot be loaded safely.

    decord loads its library with ``RTLD_GLOBAL``, which puts its bundled zlib 1.2.3 in
    front of every later symbol lookup; torchvision's PNG decoder then binds to it and
    crashes ("libpng error: bad parameters to zlib", then a segfault). Loading the
    system zlib globally first keeps a current zlib in front. Without a system zlib,
    decord is not used at all and videos are read with PyAV.
    """
    global _DECORD
    with _DECORD_LOCK:
        if _DECORD is None:
            import ctypes
            import ctypes.util

            _DECORD = False
            zlib = ctypes.util.find_library("z")
            if zlib is None:
                log.debug("no system zlib to load before decord; reading videos with PyAV")
                return None
            try:
                ctypes.CDLL(zlib, mode=ctypes.RTLD_GLOBAL)
                import decord
            except (ImportError, OSError) as exc:
                log.debug("decord unavailable (%s); reading videos with PyAV", exc)
                return None
            _DECORD = decord
        return _DECORD or None


class _DecordReader:
    def __init__(self, path: Path) -> None:
        decord = _import_decord()
        if decord is None:
            raise ImportError("decord is not available")
        self._vr: Any = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)

    def __len__(self) -> int:
        return len(self._vr)

    def read(self, start: int, count: int) -> np.ndarray:
        return self._vr.get_batch(list(range(start, start + count))).asnumpy()


class _PyAVReader:
    """Random access by seeking to the key frame before the wanted one and decoding forward."""

    def __init__(self, path: Path) -> None:
        import av

        self._path = path
        self._container: Any = av.open(str(path))
        if not self._container.streams.video:
            raise InputError(f"{path} has no video stream")
        self._stream: Any = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate or 25
        self._fps = float(rate)
        self._tb = float(self._stream.time_base)
        self._t0 = self._stream.start_time or 0
        frames = int(self._stream.frames or 0)
        if frames <= 0:
            duration = (float(self._stream.duration * self._stream.time_base) if self._stream.duration
                        else (self._container.duration or 0) / 1_000_000)
            frames = int(duration * self._fps)
        self._frames = max(frames, 1)

    def __len__(self) -> int:
        return self._frames

    def _index(self, pts: int | None) -> int:
        return -1 if pts is None else round((pts - self._t0) * self._tb * self._fps)

    def read(self, start: int, count: int) -> np.ndarray:
        target = self._t0 + int(start / self._fps / self._tb)
        out: list[np.ndarray] = []
        self._container.seek(max(target, self._t0), stream=self._stream, backward=True, any_frame=False)
        for frame in self._container.decode(self._stream):
            if self._index(frame.pts) < start and len(out) == 0 and frame.pts is not None:
                continue
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
        if not out:
            raise InputError(f"{self._path}: no frames decoded at frame {start}")
        while len(out) < count:  # past the real end: hold the last frame
            out.append(out[-1])
        return np.stack(out)


def _open_reader(path: Path) -> _Reader:
    if _import_decord() is None:
        return _PyAVReader(path)
    try:
        return _DecordReader(path)
    except Exception as exc:  # decord raises its own error types for files it cannot open
        log.debug("decord cannot open %s (%s); using PyAV", path, exc)
        return _PyAVReader(path)


class VideoSource:
    """One video file; each thread keeps its own reader (decoders are not thread-safe)."""

    def __init__(self, path: Path, *, backend: str = "auto") -> None:
        self.path = path
        self._backend = backend
        self._local = threading.local()

    def reader(self) -> _Reader:
        r = getattr(self._local, "reader", None)
        if r is None:
            try:
                if self._backend == "pyav":
                    r = _PyAVReader(self.path)
                elif self._backend == "decord":
                    r = _DecordReader(self.path)
                else:
                    r = _open_reader(self.path)
            except InputError:
                raise
            except Exception as exc:
                raise InputError(f"cannot open video {self.path}: {' '.join(str(exc).split())}") from None
            self._local.reader = r
        return r

    def clip(self, start: int, count: int) -> torch.Tensor:
        """``[count, 3, H, W]`` uint8 frames from ``start`` (the last frame repeated past the end)."""
        r = self.reader()
        n = len(r)
        start = max(0, min(start, n - 1))
        take = min(count, n - start)
        arr = r.read(start, take)
        if arr.shape[0] < count:
            arr = np.concatenate([arr, np.repeat(arr[-1:], count - arr.shape[0], axis=0)])
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).contiguous()

    def patch(self, g: torch.Generator, size: int, frames: int) -> tuple[torch.Tensor, int]:
        n = len(self.reader())
        start = _randint(g, max(1, n - frames + 1))
        clip = _pad_to(self.clip(start, frames), size)
        top, left = _crop_box(g, clip.shape[-2], clip.shape[-1], size)
        return clip[:, :, top:top + size, left:left + size].contiguous(), frames // 2


# --- discovery and sampling ---------------------------------------------------------------


def find_media(paths: Iterable[str | Path]) -> list[Path]:
    """Image and video files under ``paths`` (files or folders, recursively), sorted, unique."""
    found: set[Path] = set()
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise InputNotFoundError(f"training data not found: {path}")
        if path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                raise InputError(f"{path}: not an image ({', '.join(sorted(IMAGE_SUFFIXES))}) or a video file")
            found.add(path.resolve())
            continue
        for f in path.rglob("*"):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                found.add(f.resolve())
    return sorted(found)


def _matches(path: Path, name: str) -> bool:
    return name in (path.name, path.stem)


def split_holdout(files: Sequence[Path], holdout: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """``(train, held_out)``; every held-out name must match a file (by name or stem)."""
    missing = [n for n in holdout if not any(_matches(f, n) for f in files)]
    if missing:
        raise OptionError(f"held-out name(s) {missing} match no training file")
    held = [f for f in files if any(_matches(f, n) for n in holdout)]
    train = [f for f in files if f not in held]
    return train, held


def make_sources(files: Sequence[Path], *, cache_images: bool) -> list[Source]:
    return [ImageSource(f, cache=cache_images) if f.suffix.lower() in IMAGE_SUFFIXES else VideoSource(f)
            for f in files]


@dataclass(frozen=True)
class Patch:
    frames: torch.Tensor  #: [T, 3, S, S] uint8; T = 1 for images
    ref: int  #: the frame the ground truth is
    source: str


class PatchSampler:
    """Random HR patches (crops, flips) from a list of sources, each a pure function of its key.

    Sources are drawn uniformly (an image counts as much as a video).
    """

    def __init__(self, sources: Sequence[Source], cfg: DataConfig) -> None:
        if not sources:
            raise InputError("no training images or videos (give folders with --data or data.paths)")
        self.sources = list(sources)
        self.cfg = cfg

    def sample(self, key: Sequence[int], size: int | None = None) -> Patch:
        g = torch.Generator().manual_seed(seed_of(*key))
        src = self.sources[_randint(g, len(self.sources))]
        frames, ref = src.patch(g, size or self.cfg.gt_size, self.cfg.clip_frames)
        if self.cfg.hflip and _coin(g):
            frames = frames.flip(-1)
        if self.cfg.rot90:
            if _coin(g):
                frames = frames.flip(-2)
            if _coin(g):
                frames = frames.transpose(-1, -2)
        return Patch(frames.contiguous(), ref, str(src.path))
