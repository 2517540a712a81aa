"""Several encoders at once on consecutive segments of one run: every frame, timestamps kept, decode
times strictly increasing across the joins, audio copied bit-exact, and the same pictures as with one
encoder (lossless x264 at a B-frame preset, so the decoded frames must be equal)."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import ffmpeg, run_cli
from tiny_model import one_torch_thread, tiny_model, tiny_model_file

from vidsr.engine.lanes import auto_lanes, lane_segment_seconds
from vidsr.engine.options import UpscaleOptions
from vidsr.engine.video import upscale_video
from vidsr.io.encode import EncodeSettings

# x264 medium: 3 B-frames, adaptive; CRF 0: lossless, so both runs must decode to the same pictures.
LOSSLESS_B = EncodeSettings(codec="libx264", crf=0, preset="medium")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, media: Path, ffmpeg_exe: str) -> Path:
    """2 s of real flat 2D animation with its AAC track copied, a keyframe every 12 frames, B-frames."""
    out = tmp_path_factory.mktemp("lanes") / "flat2d.mp4"
    ffmpeg(ffmpeg_exe, "-i", str(media / "videos" / "flat2d_480x352_aac_10s.mp4"), "-t", "2",
           "-vf", "scale=96:70", "-c:v", "libx264", "-preset", "medium", "-g", "12", "-bf", "3",
           "-c:a", "copy", str(out))
    return out


def _video(path: Path) -> tuple[list[float], list[int], list[np.ndarray]]:
    """Presentation times (s) in order, decode timestamps in file order, and decoded frames."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        dts = [p.dts for p in c.demux(s) if p.size]
    with av.open(str(path)) as c:
        frames = [(float(f.pts * f.time_base), f.to_ndarray(format="yuv420p")) for f in c.decode(video=0)]
    frames.sort(key=lambda t: t[0])
    return [t for t, _ in frames], dts, [f for _, f in frames]


def _audio(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


@pytest.fixture(scope="module")
def runs(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("lanes-out")
    model = tiny_model()
    results = {}
    with one_torch_thread():
        for lanes in (1, 2):
            opts = UpscaleOptions(device="cpu", encode=LOSSLESS_B, progress=False, encoders=lanes,
                                  segment_seconds=0.3)
            results[lanes] = upscale_video(clip, folder / f"out{lanes}.mp4", opts, model=model)
    return results


def test_two_encoders_keep_every_frame_timestamp_and_audio(clip: Path, runs: dict) -> None:
    one, two = runs[1], runs[2]
    assert one.encoders == 1 and two.encoders == 2
    src_times, _, _ = _video(clip)
    times1, _, frames1 = _video(one.output)
    times2, dts2, frames2 = _video(two.output)
    assert two.frames == one.frames == len(src_times) == len(frames2) == len(frames1)
    start = src_times[0]
    assert times2 == pytest.approx([t - start for t in src_times], abs=1e-4)
    assert times2 == pytest.approx(times1, abs=1e-6)
    assert all(b > a for a, b in zip(dts2, dts2[1:])), "decode times must strictly increase across joins"
    assert _audio(two.output) == _audio(clip)


def test_two_encoders_give_the_one_encoder_pictures(runs: dict) -> None:
    _, _, frames1 = _video(runs[1].output)
    _, _, frames2 = _video(runs[2].output)
    for a, b in zip(frames1, frames2):
        assert np.array_equal(a, b)


def test_lanes_really_encoded_separate_segments(runs: dict) -> None:
    """Each lane's segment starts with a keyframe of its own encoder: more keyframes than one encoder wrote."""
    def keyframes(path: Path) -> int:
        with av.open(str(path)) as c:
            return sum(1 for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe)

    assert keyframes(runs[2].output) > keyframes(runs[1].output)


def test_cli_encoders_option(clip: Path, tmp_path: Path) -> None:
    weights = tiny_model_file(tmp_path)
    out = tmp_path / "cli.mp4"
    r = run_cli("upscale", str(clip), "-m", str(weights), "--device", "cpu", "--encoders", "2",
                "--segment-seconds", "0.5", "--preset", "ultrafast", "--frames", "30", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "2 encoders at once" in r.stderr and "30 frame(s)" in r.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary parts left behind"
    bad = run_cli("upscale", str(clip), "-m", str(weights), "--device", "cpu", "--encoders", "two",
                  "-o", str(tmp_path / "bad.mp4"))
    assert bad.returncode != 0 and "--encoders" in bad.stderr and "Traceback" not in bad.stderr


def test_auto_lanes_policy() -> None:
    assert auto_lanes(torch.device("cpu"), cores=64) == 1
    assert auto_lanes(torch.device("cuda"), cores=4) == 1
    assert auto_lanes(torch.device("cuda"), cores=16) == 2
    assert auto_lanes(torch.device("cuda"), cores=256) == 4
    assert lane_segment_seconds(None, 2) == 10.0
    assert lane_segment_seconds(3600, 2) == 30.0
    assert lane_segment_seconds(10, 2) == 2.0


def test_a_failing_lane_stops_the_run_with_its_error(clip: Path, tmp_path: Path) -> None:
    """An encoder that cannot start in one lane: its error comes out, the other lane's encoder is
    stopped, and no pipeline thread is left running."""
    import threading
    from fractions import Fraction

    from vidsr.engine.lanes import run_lanes
    from vidsr.engine.upscaler import FrameUpscaler
    from vidsr.errors import EncoderError
    from vidsr.io.color import ColorInfo
    from vidsr.io.decode import iter_frames
    from vidsr.io.encode import open_encoder
    from vidsr.io.probe import probe_video

    info = probe_video(clip)
    frames = list(iter_frames(clip, info.color))
    segments = [frames[:30], frames[30:]]
    up = FrameUpscaler(tiny_model(), device=torch.device("cpu"), dtype=torch.float32,
                       out_size=(2 * info.width, 2 * info.height))
    opened = []

    def encoder(seg: list) -> object:
        if seg is segments[1]:
            raise EncoderError("injected: this lane's encoder cannot start")
        enc = open_encoder(tmp_path / "seg0.mp4", width=2 * info.width, height=2 * info.height,
                           rate=Fraction(30), color=ColorInfo("ITU709", False, 1, 1),
                           settings=EncodeSettings(codec="libx264", preset="ultrafast", pix_fmt="yuv420p"),
                           input_pix_fmt="rgb24")
        opened.append(enc)
        return enc

    with one_torch_thread(), pytest.raises(EncoderError, match="injected"):
        run_lanes(segments, 2, up, frames=lambda seg: iter(seg), encoder=encoder, batch=4,
                  frame_shape=(info.height, info.width, 3))
    assert not [t for t in threading.enumerate() if t.name.startswith("vidsr-") and t.is_alive()]


def test_ctrl_c_in_lanes_stops_every_encoder(clip: Path, tmp_path: Path) -> None:
    """Ctrl-C while two lanes encode: KeyboardInterrupt comes out, both encoders are stopped (their
    ffmpeg processes gone), and no pipeline thread is left."""
    import threading
    from fractions import Fraction

    from vidsr.engine.lanes import run_lanes
    from vidsr.engine.upscaler import FrameUpscaler
    from vidsr.io.color import ColorInfo
    from vidsr.io.decode import iter_frames
    from vidsr.io.encode import open_encoder
    from vidsr.io.probe import probe_video

    info = probe_video(clip)
    frames = list(iter_frames(clip, info.color))
    segments = [frames[:30], frames[30:]]
    up = FrameUpscaler(tiny_model(), device=torch.device("cpu"), dtype=torch.float32,
                       out_size=(2 * info.width, 2 * info.height))
    opened: list = []

    def encoder(seg: list) -> object:
        enc = open_encoder(tmp_path / f"seg{len(opened)}.mp4", width=2 * info.width, height=2 * info.height,
                           rate=Fraction(30), color=ColorInfo("ITU709", False, 1, 1),
                           settings=EncodeSettings(codec="libx264", preset="ultrafast", pix_fmt="yuv420p",
                                                   backend="ffmpeg"),
                           input_pix_fmt="rgb24")
        opened.append(enc)
        return enc

    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if done[0] >= 12:  # both lanes have started by now
            raise KeyboardInterrupt

    with one_torch_thread(), pytest.raises(KeyboardInterrupt):
        run_lanes(segments, 2, up, frames=lambda seg: iter(seg), encoder=encoder, batch=4,
                  frame_shape=(info.height, info.width, 3), on_progress=progress)
    assert not [t for t in threading.enumerate() if t.name.startswith("vidsr-") and t.is_alive()]
    assert opened and all(enc._proc.poll() is not None for enc in opened)


def test_dedup_with_two_encoders(clip: Path, tmp_path: Path) -> None:
    """--dedup in lanes: every frame out, held frames reused in each segment; only a segment's first
    frame, which has no earlier output in its file, cannot be."""
    results = {}
    with one_torch_thread():
        for lanes in (1, 2):
            opts = UpscaleOptions(device="cpu", progress=False, encoders=lanes, segment_seconds=0.3, dedup=True,
                                  encode=EncodeSettings(preset="ultrafast"))
            results[lanes] = upscale_video(clip, tmp_path / f"d{lanes}.mp4", opts, model=tiny_model())
    one, two = results[1], results[2]
    assert two.encoders == 2 and two.frames == one.frames
    assert one.reused > 0
    with av.open(str(two.output)) as c:
        assert sum(1 for _ in c.decode(video=0)) == two.frames
    with av.open(str(two.output)) as c:
        keyframes = sum(1 for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe)
    assert one.reused - keyframes <= two.reused <= one.reused
