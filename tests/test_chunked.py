"""Segmented runs: same frames, timestamps, audio and pixels as one process; resumable; Ray."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from conftest import EARTH, ffmpeg

from vidsr.engine.chunked import ChunkOptions, upscale_video_chunked
from vidsr.engine.options import UpscaleOptions
from vidsr.engine.segments import plan_segments
from vidsr.engine.video import upscale_video
from vidsr.io.decode import Window
from vidsr.io.encode import EncodeSettings
from vidsr.io.probe import probe_video

# Lossless x264 and one frame per network call: any pixel difference would be the segmenting's fault.
OPTS = UpscaleOptions(scale=2.0, device="cpu", batch=1, progress=False,
                      encode=EncodeSettings(preset="ultrafast", crf=0, pix_fmt="yuv444p"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, media: Path, ffmpeg_exe: str) -> Path:
    """1 s of real video (B-frames, a keyframe every 6 frames) with its real AAC track."""
    out = tmp_path_factory.mktemp("chunked") / "clip.mp4"
    ffmpeg(ffmpeg_exe, "-i", str(EARTH), "-t", "1", "-vf", "scale=64:36",
           "-c:v", "libx264", "-preset", "fast", "-g", "6", "-keyint_min", "6", "-bf", "2", "-c:a", "copy", str(out))
    return out


@pytest.fixture(scope="module")
def single(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single") / "single.mp4"
    upscale_video(clip, out, OPTS)
    return out


def summary(path: Path) -> tuple[list[float], list[np.ndarray], list[bytes]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [(float(f.pts * s.time_base), f.to_ndarray()) for f in c.decode(s)]
    with av.open(str(path)) as c:
        audio = [bytes(p) for p in c.demux(audio=0) if p.size]
    return [t for t, _ in frames], [a for _, a in frames], audio


def assert_same(a: Path, b: Path) -> None:
    ta, fa, aa = summary(a)
    tb, fb, ab = summary(b)
    assert len(ta) == len(tb) == 30
    assert np.allclose(ta, tb, atol=1e-4)
    assert aa == ab and len(aa) > 0
    for x, y in zip(fa, fb):
        assert np.array_equal(x, y)


def test_segments_cover_every_frame_once(clip: Path) -> None:
    info = probe_video(clip)
    segs = plan_segments(clip, info, seconds=0.2)
    assert len(segs) >= 3
    assert sum(s.frames for s in segs) == 30
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))
    part = plan_segments(clip, info, seconds=0.2, window=Window(start=0.25, frames=10))
    assert sum(s.frames for s in part) == 10


def test_two_cpu_workers_match_single_process(clip: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "chunked.mp4"
    result = upscale_video_chunked(clip, out, OPTS, ChunkOptions(devices=("cpu", "cpu"), segment_seconds=0.2))
    assert result.frames == 30
    assert_same(out, single)
    assert not (tmp_path / ".chunked.mp4.vidsr-job").exists()  # cleaned up after success


def test_stopped_run_resumes_and_ends_identical(clip: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed.mp4"
    chunks = ChunkOptions(devices=("cpu",), segment_seconds=0.2)
    done: list[int] = []

    def stop_after_first(seg) -> None:  # type: ignore[no-untyped-def]
        done.append(seg.index)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video_chunked(clip, out, OPTS, chunks, on_segment=stop_after_first)
    assert not out.exists() and len(done) == 1
    job = tmp_path / ".resumed.mp4.vidsr-job"
    assert len(list(job.glob("seg_*.json"))) == 1

    resumed: list[int] = []
    upscale_video_chunked(clip, out, OPTS, chunks, on_segment=lambda seg: resumed.append(seg.index))
    assert done[0] not in resumed and len(resumed) >= 2  # the finished segment was skipped
    assert_same(out, single)


def test_changed_settings_start_afresh(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    chunks = ChunkOptions(devices=("cpu",), segment_seconds=0.2)

    def stop(seg) -> None:  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video_chunked(clip, out, OPTS, chunks, on_segment=stop)
    ran: list[int] = []
    other = UpscaleOptions(**{**OPTS.__dict__, "scale": 1.5})
    upscale_video_chunked(clip, out, other, chunks, on_segment=lambda seg: ran.append(seg.index))
    assert sorted(ran) == list(range(len(ran))) and 0 in ran  # nothing reused from the x2 run


def test_local_ray_matches_single_process(clip: Path, single: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "ray.mp4"
    upscale_video_chunked(clip, out, OPTS, ChunkOptions(devices=("cpu", "cpu"), segment_seconds=0.2, backend="ray"))
    assert_same(out, single)
