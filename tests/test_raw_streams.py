"""Streams without timestamps: raw H.264/HEVC elementary streams time every frame from the frame rate.

Y4M and IVF carry a timestamp per frame already; all four come out with frame k at k / rate,
every frame kept, and a window (--start/--duration) takes the frames it names.
"""
from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import ffmpeg
from tiny_model import one_torch_thread, tiny_model

from vidsr.engine.options import UpscaleOptions
from vidsr.engine.segments import plan_segments
from vidsr.engine.video import upscale_video
from vidsr.io.decode import FrameReader, Window
from vidsr.io.encode import EncodeSettings
from vidsr.io.probe import probe_video

LOSSLESS = EncodeSettings(preset="ultrafast", crf=0, pix_fmt="yuv444p")


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


ENCODE = {
    # x264 at its default preset uses B-frames: decode order differs from display order.
    ".h264": ["-c:v", "libx264", "-preset", "medium"],
    ".hevc": ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"],
    ".y4m": [],
    ".ivf": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
}


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory, media: Path, ffmpeg_exe: str) -> dict[str, Path]:
    """30 frames of real live action (bikes, every frame different) at 64x28, re-timed to 30 fps (a rate
    the raw demuxers' default of 25 cannot pass for), as each kind of stream."""
    folder = tmp_path_factory.mktemp("raw")
    out = {}
    for suffix, args in ENCODE.items():
        out[suffix] = folder / f"clip{suffix}"
        ffmpeg(ffmpeg_exe, "-i", str(media / "videos" / "bikes_640x272_3s.mp4"), "-t", "1",
               "-vf", "scale=64:28,setpts=N/30/TB", "-r", "30", "-an", *args, str(out[suffix]))
    return out


def run(src: Path, out: Path, **kw) -> None:  # type: ignore[no-untyped-def]
    opts = dict(scale=2.0, device="cpu", progress=False, encode=EncodeSettings(preset="ultrafast"))
    opts.update(kw)
    upscale_video(src, out, UpscaleOptions(**opts), model=tiny_model(nearest=True))


def decoded(path: Path) -> tuple[list[float], list[np.ndarray]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        times = [float(f.pts * s.time_base) if f.pts is not None else float("nan") for f in frames]
        return times, [f.to_ndarray(format="rgb24").astype(int) for f in frames]


@pytest.mark.parametrize("suffix", list(ENCODE))
def test_every_frame_timed_from_the_frame_rate(raw: dict[str, Path], tmp_path: Path, suffix: str) -> None:
    src = raw[suffix]
    info = probe_video(src)
    assert info.rate == 30
    assert info.timestamps == (suffix in (".y4m", ".ivf"))
    src_frames = decoded(src)[1]
    out = tmp_path / "out.mp4"
    run(src, out)
    times, _ = decoded(out)
    assert len(times) == len(src_frames) == 30
    assert np.abs(np.array(times) - np.arange(30) / 30).max() < 0.001


def _matches(got: np.ndarray, frames: list[np.ndarray]) -> int:
    """Index of the source frame that `got` (nearest x2) is."""
    errors = [np.abs(got[::2, ::2] - f).mean() for f in frames]
    assert min(errors) < 3 and sorted(errors)[1] > 2 * min(errors)  # one clear match
    return int(np.argmin(errors))


def test_window_on_a_raw_stream_takes_the_frames_it_names(raw: dict[str, Path], tmp_path: Path) -> None:
    src = raw[".h264"]
    _, src_frames = decoded(src)
    out = tmp_path / "part.mkv"
    run(src, out, window=Window(start=0.4, duration=0.2), encode=LOSSLESS)
    times, frames = decoded(out)
    assert len(frames) == 6 and times[0] == pytest.approx(0.0, abs=0.002)
    assert [_matches(f, src_frames) for f in frames] == list(range(12, 18))  # 0.4 s up to 0.6 s at 30 fps


def test_segments_of_a_raw_stream_keep_the_window(raw: dict[str, Path]) -> None:
    """Nothing to cut a raw stream at, so one segment; but it must hold the window, not the whole video."""
    src = raw[".h264"]
    info = probe_video(src)
    segments = plan_segments(src, info, seconds=0.1, window=Window(start=0.4, duration=0.2))
    assert len(segments) == 1 and segments[0].frames == 6
    seg = segments[0]
    reader = FrameReader(src, info.color, pts_range=(seg.start, seg.end), rate=info.rate,
                         timestamps=info.timestamps)
    got = list(reader)
    tick = Fraction(1, 30) / info.time_base
    assert len(got) == 6 and reader.report.pts == [round(k * tick) for k in range(12, 18)]
    whole = plan_segments(src, info, seconds=0.1)
    assert [(s.start, s.end, s.frames) for s in whole] == [(None, None, 30)]
