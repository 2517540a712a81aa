"""Damaged input: every damaged clip either gives a decodable output or one line naming the problem.

Three real clips in three containers (MP4 with AAC, Matroska with AAC and SRT subtitles, WebM
with VP9 and Opus) are cut short at 9 points and have bytes overwritten at 6 random (seeded)
places each: 45 damaged files, each upscaled with `vidsr upscale`. Never an internal error,
never a traceback, never a file at the output path after a failure.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import EARTH, ffmpeg
from tiny_model import one_torch_thread, tiny_model_file

from vidsr.cli.main import main

CUTS = [i / 10 for i in range(1, 10)]
OVERWRITES = 6


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_file(tmp_path_factory.mktemp("model"))


def _build(kind: str, folder: Path, ffmpeg_exe: str) -> Path:
    """About 1 s of the NASA clip at 64x36, with its real audio, in the container `kind` names."""
    video = ["-vf", "scale=64:36", "-t", "1"]
    if kind == "mp4-aac":
        out = folder / "clip.mp4"
        # The index up front, as for streaming: a cut file still has it, so the cuts reach the decoder.
        ffmpeg(ffmpeg_exe, "-i", str(EARTH), *video, "-c:v", "libx264", "-preset", "veryfast", "-g", "10",
               "-c:a", "copy", "-movflags", "+faststart", str(out))
    elif kind == "mkv-subtitles":
        srt = folder / "subs.srt"
        srt.write_text("1\n00:00:00,100 --> 00:00:00,500\nHello\n\n2\n00:00:00,500 --> 00:00:00,900\nWorld\n")
        out = folder / "clip.mkv"
        ffmpeg(ffmpeg_exe, "-i", str(EARTH), "-i", str(srt), "-map", "0:v", "-map", "0:a", "-map", "1", *video,
               "-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-c:a", "copy", "-c:s", "srt",
               "-metadata:s:s:0", "language=eng", str(out))
    else:
        out = folder / "clip.webm"
        ffmpeg(ffmpeg_exe, "-i", str(EARTH), *video, "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
               "-b:v", "300k", "-g", "10", "-c:a", "libopus", "-b:a", "48k", str(out))
    return out


def _damaged(clip: Path, folder: Path, seed: int) -> list[Path]:
    data = clip.read_bytes()
    out = []
    for i, fraction in enumerate(CUTS):
        path = folder / f"cut{i}{clip.suffix}"
        path.write_bytes(data[: int(len(data) * fraction)])
        out.append(path)
    rng = np.random.default_rng(seed)
    for i in range(OVERWRITES):
        damaged = bytearray(data)
        length = int(rng.integers(16, 512))
        at = int(rng.integers(0, len(data) - length))
        damaged[at: at + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        path = folder / f"overwrite{i}_at{at}{clip.suffix}"
        path.write_bytes(bytes(damaged))
        out.append(path)
    return out


def _decodes(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.mark.parametrize("kind", ["mp4-aac", "mkv-subtitles", "webm"])
def test_damaged_clips_fail_cleanly_or_give_a_decodable_output(kind: str, tmp_path: Path, ffmpeg_exe: str,
                                                              model_file: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    clip = _build(kind, tmp_path, ffmpeg_exe)
    assert _decodes(clip) == 30
    problems, outcomes = [], []
    for src in _damaged(clip, tmp_path, seed=len(kind)):
        outdir = tmp_path / f"out_{src.stem}"
        outdir.mkdir()
        out = outdir / ("result.mkv" if kind == "webm" else f"result{clip.suffix}")
        try:
            main(["upscale", str(src), "-o", str(out), "--model", str(model_file), "--device", "cpu",
                  "--preset", "ultrafast", "--quiet"])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        err = [line for line in capsys.readouterr().err.strip().splitlines()
               if line and not line.startswith("vidsr: WARNING:")]
        left = sorted(p.name for p in outdir.iterdir())
        if code == 0:
            try:
                frames = _decodes(out)
            except av.error.FFmpegError as exc:
                frames, err = 0, [f"output does not decode: {exc}"]
            ok = frames > 0 and left == [out.name]
            outcomes.append(f"{src.name}: ok, {frames} frame(s)")
        else:
            ok = (len(err) == 1 and err[0].startswith("vidsr: error:") and "internal error" not in err[0]
                  and left == [])
            outcomes.append(f"{src.name}: {err[0] if err else 'no message'}")
        if not ok:
            problems.append(f"{src.name}: exit {code}, stderr {err}, left {left}")
    print("\n".join(outcomes))
    assert problems == [], "\n".join(problems)
