"""Joins of encoded segments are valid for every encoder setting: B-frames, x265, AV1, VP9.

The clip has a one-frame segment between longer ones, so a part without B-frame
reordering is followed by one with it: the case where decode times rebuilt per part
fell back to or below the previous part's at the join.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from conftest import EARTH, ffmpeg

from vidsr.engine.chunked import ChunkOptions, upscale_video_chunked
from vidsr.engine.options import UpscaleOptions
from vidsr.errors import EncoderError
from vidsr.io.encode import EncodeSettings
from vidsr.io.mux import VideoPart, decode_order, mux_with_source, reorder_depth

FRAMES = 20
KEYFRAMES = (0, 6, 7, 13)  # segments of 6, 1, 6 and 7 frames
CHUNKS = ChunkOptions(devices=("cpu",), segment_seconds=0.01)  # a segment at every keyframe


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Path:
    """20 frames of the real NASA clip at 32x18 (x264 with B-frames) and its AAC track."""
    out = tmp_path_factory.mktemp("joins") / "clip.mp4"
    force = "+".join(f"eq(n,{k})" for k in KEYFRAMES)
    # 32 lines, so that x2 gives 64: older SVT-AV1 (1.4, in Debian 12's FFmpeg) refuses frames under 64 lines.
    ffmpeg(ffmpeg_exe, "-i", str(EARTH), "-frames:v", str(FRAMES), "-t", str(FRAMES / 30), "-vf", "scale=32:32",
           "-c:v", "libx264", "-preset", "fast", "-bf", "3", "-g", "1000", "-sc_threshold", "0",
           "-force_key_frames", f"expr:{force}", "-c:a", "copy", str(out))
    return out


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [float(f.pts * s.time_base) for f in c.decode(s)]


def video_packets(path: Path) -> list[tuple[int, int | None]]:
    with av.open(str(path)) as c:
        return [(p.pts, p.dts) for p in c.demux(video=0) if p.size]


def assert_valid_join(out: Path, src: Path) -> None:
    """Every frame decodes at its source time; decode times strictly increase and never pass presentation."""
    times = frame_times(out)
    assert len(times) == FRAMES
    with av.open(str(out)) as c:
        tick = float(c.streams.video[0].time_base)
    assert np.abs(np.array(times) - np.array(frame_times(src))).max() <= tick
    packets = video_packets(out)
    assert len(packets) == FRAMES
    dts = [d for _, d in packets if d is not None]
    if out.suffix in (".mp4", ".mov"):
        assert len(dts) == FRAMES  # stored for every packet
    assert len(dts) >= FRAMES - 2
    assert all(b > a for a, b in zip(dts, dts[1:])), dts
    assert all(p >= d for p, d in packets if d is not None), packets
    with av.open(str(out)) as c:
        assert c.streams.audio and sum(1 for p in c.demux(audio=0) if p.size) > 0


def run(clip: Path, out: Path, codec: str, preset: str | None) -> list[int]:
    """Upscale `clip` in segments; return each segment's reorder depth, read as it is finished."""
    depths: list[int] = []

    def seen(seg) -> None:  # type: ignore[no-untyped-def]
        job = out.with_name(f".{out.name}.vidsr-job")  # the job folder beside the output
        depths.append(reorder_depth(decode_order(job / f"seg_{seg.index:05d}{out.suffix}")))

    opts = UpscaleOptions(model="animevideov3-x2", device="cpu", progress=False,
                          encode=EncodeSettings(codec=codec, preset=preset, crf=30))
    result = upscale_video_chunked(clip, out, opts, CHUNKS, on_segment=seen)
    assert result.frames == FRAMES and len(depths) == len(KEYFRAMES)
    return depths


@pytest.mark.parametrize(("codec", "preset", "suffix"), [
    ("libx264", "medium", ".mp4"),
    ("libx264", "slow", ".mkv"),
    ("libx264", "medium", ".mov"),
    ("libx265", "medium", ".mp4"),
    ("libx265", "medium", ".mkv"),
])
def test_b_frame_parts_join(clip: Path, tmp_path: Path, codec: str, preset: str, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    depths = run(clip, out, codec, preset)
    # The case that broke: a part that reorders deeper than the one before it.
    assert any(b > a for a, b in zip(depths, depths[1:])), depths
    assert_valid_join(out, clip)


@pytest.mark.parametrize(("codec", "preset", "suffix"), [
    ("libsvtav1", "12", ".mp4"),
    ("libsvtav1", "12", ".mkv"),
    ("libvpx-vp9", None, ".mkv"),
    ("libvpx-vp9", None, ".mp4"),
])
def test_av1_and_vp9_parts_join(clip: Path, tmp_path: Path, codec: str, preset: str | None, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    run(clip, out, codec, preset)
    assert_valid_join(out, clip)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.codec.canonical_name == {"libsvtav1": "av1", "libvpx-vp9": "vp9"}[codec]


def test_stream_the_container_cannot_hold_is_refused_before_any_segment(clip: Path, tmp_path: Path) -> None:
    ran: list[int] = []
    opts = UpscaleOptions(model="animevideov3-x2", device="cpu", progress=False,
                          encode=EncodeSettings(codec="libvpx-vp9"))
    with pytest.raises(EncoderError, match="aac.*webm"):
        upscale_video_chunked(clip, tmp_path / "out.webm", opts, CHUNKS, on_segment=lambda seg: ran.append(seg.index))
    assert ran == [] and list(tmp_path.iterdir()) == []


def test_join_of_parts_with_different_depths(clip: Path, tmp_path: Path, ffmpeg_exe: str) -> None:
    """The rule on its own, without the network: real x264 parts, a shallow one before a deep one."""
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        tb = s.time_base
        pts = sorted(p.pts for p in c.demux(s) if p.size)
    cuts = [(0, 1), (1, 9), (9, 10), (10, FRAMES)]  # 1 frame (no reordering), 8, 1, 10
    parts = []
    for i, (a, b) in enumerate(cuts):
        part = tmp_path / f"part{i}.mkv"
        ffmpeg(ffmpeg_exe, "-i", str(clip), "-vf", f"select=between(n\\,{a}\\,{b - 1})", "-fps_mode", "passthrough",
               "-an", "-c:v", "libx264", "-preset", "medium", "-bf", "3", str(part))
        parts.append(VideoPart(part, pts[a:b]))
    depths = [reorder_depth(decode_order(p.path)) for p in parts]
    assert depths[0] == 0 and depths[1] > 0 and depths[2] == 0 and depths[3] > 0
    for suffix in (".mp4", ".mkv", ".mov"):
        out = tmp_path / f"joined{suffix}"
        mux_with_source(parts, tb, clip, out)
        assert_valid_join(out, clip)


def test_overlapping_parts_are_refused(clip: Path, tmp_path: Path, ffmpeg_exe: str) -> None:
    part = tmp_path / "part.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(clip), "-frames:v", "2", "-an", "-c:v", "libx264", str(part))
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        tb = s.time_base
        pts = sorted(p.pts for p in c.demux(s) if p.size)[:2]
    with pytest.raises(EncoderError, match="overlap"):
        mux_with_source([VideoPart(part, pts), VideoPart(part, pts)], tb, clip, tmp_path / "o.mp4")
