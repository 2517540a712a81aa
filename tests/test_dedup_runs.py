"""`--dedup` end to end: held drawings reuse the previous output, in plain and segmented runs.

The clips are real anime art animated on twos and threes (tests/anime_clip.py), encoded
with x264; the network is a small real SRVGGNetCompact (tests/tiny_model.py), so what is
checked is the wiring: which frames skip the network, what is written for them, and that
frame count and timestamps are those of the input.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest

from anime_clip import Shot, decode, encode, held_truth, render
from tiny_model import one_torch_thread, tiny_model, tiny_model_file
from vidsr.engine.chunked import ChunkOptions, upscale_video_chunked
from vidsr.engine.dedup import HeldFrameDetector
from vidsr.engine.video import UpscaleOptions, upscale_video
from vidsr.io.encode import EncodeSettings

W, H = 320, 180
ANIME = [
    Shot(12, pan_px=0.5, pan_every=2, sprite_px=1, sprite_every=2, poses_every=6),   # everything on twos
    Shot(12, pan_px=0.25, pan_every=3, sprite_px=0.5, sprite_every=3, poses_every=9),  # on threes
    Shot(12, sprite_every=3, poses_every=3),                                          # lips on threes, still bg
]
OPTS = UpscaleOptions(device="cpu", batch=4, progress=False, overwrite=True,
                      encode=EncodeSettings(preset="ultrafast", crf=10))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def anime_clip(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = render(media / "images" / "anime", ANIME, width=W, height=H)
    assert sum(held_truth(frames)) >= 15  # drawn on twos and threes
    # A keyframe every 12 frames (0.5 s): segmented runs can cut there.
    return encode(frames, tmp_path_factory.mktemp("anime") / "anime.mp4", crf=20, keyint=12)


@pytest.fixture(scope="module")
def without(anime_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plain") / "plain.mp4"
    result = upscale_video(anime_clip, out, OPTS, model=tiny_model())
    assert result.reused == 0
    return out


def _frames(path: Path) -> tuple[list[float], list[np.ndarray]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        got = [(float(f.pts * s.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(s)]
    return [t for t, _ in got], [a for _, a in got]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255**2 / mse) if mse else float("inf")


def _assert_close_to(path: Path, reference: Path, *, min_db: float = 40.0) -> None:
    """Same frame count and timestamps, and every frame within `min_db` of the reference's."""
    t, frames = _frames(path)
    t_ref, ref = _frames(reference)
    assert len(frames) == len(ref) == sum(s.frames for s in ANIME)
    assert np.allclose(t, t_ref, atol=1e-4)
    worst = min(_psnr(a, b) for a, b in zip(frames, ref))
    assert worst >= min_db, f"a frame is at {worst:.1f} dB"


def test_held_drawings_reuse_the_previous_output(anime_clip: Path, without: Path, tmp_path: Path) -> None:
    out = tmp_path / "dedup.mp4"
    result = upscale_video(anime_clip, out, dataclasses.replace(OPTS, dedup=True), model=tiny_model())
    det = HeldFrameDetector()
    expected = [det.is_held(f) for f in decode(anime_clip)]
    assert result.reused == sum(expected) >= 12  # exactly the frames the detector holds skip the network
    assert result.frames == len(expected)
    _assert_close_to(out, without)
    # A reused output is the previous frame's output again (up to the output encoder's noise).
    _, frames = _frames(out)
    for i, held in enumerate(expected):
        if held:
            assert _psnr(frames[i], frames[i - 1]) >= 45


def test_a_slow_pan_reuses_nothing(media: Path, tmp_path: Path) -> None:
    frames = render(media / "images" / "anime", [Shot(24, pan_px=0.25)], width=W, height=H)
    clip = encode(frames, tmp_path / "pan.mp4", crf=20)
    result = upscale_video(clip, tmp_path / "pan_x2.mp4", dataclasses.replace(OPTS, dedup=True), model=tiny_model())
    assert result.reused == 0 and result.frames == 24


def test_segmented_runs_dedup_each_segment(anime_clip: Path, without: Path, tmp_path: Path) -> None:
    model = tiny_model_file(tmp_path)
    opts = dataclasses.replace(OPTS, dedup=True, model=str(model))
    out = tmp_path / "chunked.mp4"
    result = upscale_video_chunked(anime_clip, out, opts, ChunkOptions(devices=("cpu", "cpu"), segment_seconds=0.5,
                                                                       work_dir=tmp_path))
    # Each segment starts afresh (its first frame runs the network), so at most as many as in one run.
    det = HeldFrameDetector()
    in_one_run = sum(det.is_held(f) for f in decode(anime_clip))
    assert 0 < result.reused <= in_one_run
    _assert_close_to(out, without)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["chunked.mp4", model.name])  # job folder gone


def test_the_summary_says_how_many_were_reused(anime_clip: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import vidsr.engine.cpu_memory as cpu_memory
    from vidsr.cli.main import main

    monkeypatch.setattr(cpu_memory, "keep_freed_memory", lambda: True)  # leave this test process's malloc alone
    model = tiny_model_file(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["upscale", str(anime_clip), "-o", str(tmp_path / "up.mp4"), "-m", str(model), "--device", "cpu",
              "--dedup", "--preset", "ultrafast"])
    assert exit_.value.code == 0
    det = HeldFrameDetector()
    held = sum(det.is_held(f) for f in decode(anime_clip))
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"640x360, 36 frame(s), {held} reused, " in line, line


def test_the_job_key_includes_dedup(anime_clip: Path, tmp_path: Path) -> None:
    """A rerun with or without --dedup must not pick up the other's finished segments."""
    from vidsr.engine.chunked import _key
    from vidsr.engine.video_plan import plan_video

    chunks = ChunkOptions(devices=("cpu",))
    plan = plan_video(anime_clip, tmp_path / "out.mp4", OPTS, 2)
    keys = {_key(plan, dataclasses.replace(OPTS, dedup=d), chunks, {"cpu": "fp32"}, "w") for d in (False, True)}
    assert len(keys) == 2
