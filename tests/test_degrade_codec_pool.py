"""The codec stage in worker processes: the same clips as in-process encoding, through shared memory."""
from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidsr.degrade import HighOrderDegradation, load_config
from vidsr.degrade.codec import CodecParams, compress_frames
from vidsr.degrade.codec_pool import CodecPool
from vidsr.errors import EncoderError, OptionError

PARAMS = [
    CodecParams("libx264", "crf", crf=30, preset="veryfast", gop=3, bframes=2),
    CodecParams("libx265", "crf", crf=32, preset="fast", gop=5, bframes=1),
    CodecParams("mpeg4", "bitrate", bitrate_bpp=0.2, gop=4, bframes=1),
    CodecParams("libvpx-vp9", "crf", crf=40, gop=5),
]


@pytest.fixture(scope="module")
def clip(media: Path) -> np.ndarray:
    """Five frames ``[5, 48, 64, 3]`` uint8 panning across a real anime background."""
    with Image.open(media / "images" / "anime" / "bg_club.jpg") as img:
        arr = np.asarray(img.convert("RGB"))
    return np.stack([arr[300:348, 400 + 3 * t:464 + 3 * t] for t in range(5)])


@pytest.fixture(scope="module")
def pool():  # type: ignore[no-untyped-def]
    with CodecPool(2) as p:
        yield p


def test_workers_give_the_same_clips_as_this_process(pool: CodecPool, clip: np.ndarray) -> None:
    frames = np.concatenate([clip] * len(PARAMS))
    handle = pool.start(torch.from_numpy(frames), [len(clip)] * len(PARAMS), PARAMS)  # one segment, 4 clips
    segment = handle._segment.name  # type: ignore[union-attr]
    out = handle.result()
    for i, p in enumerate(PARAMS):
        got = out[i * len(clip):(i + 1) * len(clip)]
        assert np.array_equal(got, compress_frames(clip, p)), p.codec
        assert not np.array_equal(got, clip)  # really compressed
    with pytest.raises(FileNotFoundError):  # the segment is gone once read
        shared_memory.SharedMemory(name=segment)


def test_many_threads_share_one_pool(pool: CodecPool, clip: np.ndarray) -> None:
    want = [compress_frames(clip, p) for p in PARAMS]
    got: dict[int, np.ndarray] = {}

    def run(i: int) -> None:
        got[i] = pool.compress(clip, PARAMS[i % len(PARAMS)])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(got[i], want[i % len(PARAMS)]) for i in range(8))


def test_bad_settings_and_dead_workers(pool: CodecPool, clip: np.ndarray) -> None:
    with pytest.raises(OptionError, match="unknown video encoder"):
        pool.compress(clip, CodecParams("h263x", "crf", crf=10))
    with pytest.raises(OptionError, match="uint8"):
        pool.compress(clip.astype(np.float32), PARAMS[0])  # type: ignore[arg-type]
    before = [w.proc.pid for w in pool._workers]
    for w in pool._workers:
        w.proc.kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and {w.proc.pid for w in pool._workers} & set(before):
        time.sleep(0.05)
    assert not {w.proc.pid for w in pool._workers} & set(before)  # both replaced
    assert np.array_equal(pool.compress(clip, PARAMS[0]), compress_frames(clip, PARAMS[0]))


def test_a_worker_that_dies_mid_clip_fails_that_clip(clip: np.ndarray) -> None:
    with CodecPool(1) as one:
        big = np.ascontiguousarray(np.tile(clip, (12, 6, 6, 1)))  # 60 frames at 288x384: long enough to kill
        handle = one.start(big, [len(big)], [CodecParams("libx265", "crf", crf=30, preset="medium")])
        while one._workers[0].job is None:
            time.sleep(0.01)
        one._workers[0].proc.kill()
        with pytest.raises(EncoderError, match="worker died"):
            handle.result()
        assert np.array_equal(one.compress(clip, PARAMS[2]), compress_frames(clip, PARAMS[2]))


@pytest.mark.skipif(sys.platform != "linux", reason="hardware: reads /proc")
def test_workers_load_neither_torch_nor_vidsr(pool: CodecPool, clip: np.ndarray) -> None:
    pool.compress(clip, PARAMS[0])
    maps = [Path(f"/proc/{w.proc.pid}/maps").read_text() for w in pool._workers]
    assert any("libavcodec" in m for m in maps)  # the encoders are loaded where they ran...
    assert not any("libtorch" in m for m in maps)  # ...and torch nowhere
    assert all(w.proc.pid != os.getpid() for w in pool._workers)


def test_degradation_with_a_pool_equals_threads(pool: CodecPool) -> None:
    cfg = load_config("anime_video")
    cfg = dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, prob=1.0))
    hr = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with HighOrderDegradation(cfg, seed=2, codec_workers=2) as threads:
        a, pa = threads(hr, 4)
    with HighOrderDegradation(cfg, seed=2, codec_pool=pool) as procs:
        b, pb = procs(hr, 4)
    assert pa == pb and torch.equal(a, b)
    assert all(p["codec"] is not None for p in pa)
