"""Shared fixtures: where the real media is, and small clips cut from it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def media_root() -> Path:
    return Path(os.environ.get("VIDSR_MEDIA", REPO.parent / "shared" / "media"))


@pytest.fixture(scope="session")
def media() -> Path:
    root = media_root()
    if not root.is_dir():
        pytest.skip(f"real media not found at {root} (set VIDSR_MEDIA)")
    return root


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    from vidsr.io.encode import find_ffmpeg

    exe = find_ffmpeg()
    if exe is None:
        pytest.skip("no ffmpeg binary to build test clips")
    return exe


def ffmpeg(exe: str, *args: str) -> None:
    subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory, media: Path, ffmpeg_exe: str) -> Path:
    """0.4 s of real video at 96x54 with two real AAC tracks (jpn, eng), audio stream-copied."""
    out = tmp_path_factory.mktemp("clips") / "tiny.mp4"
    ffmpeg(ffmpeg_exe,
           "-i", str(media / "videos" / "earth_480x270_aac.mp4"),
           "-i", str(media / "videos" / "flat2d_480x352_aac_10s.mp4"),
           "-t", "0.4", "-map", "0:v", "-map", "0:a", "-map", "1:a",
           "-vf", "scale=96:54", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-c:a", "copy",
           "-metadata:s:a:0", "language=jpn", "-metadata:s:a:1", "language=eng", str(out))
    return out


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m vidsr ...` as a user would, capturing its exit code and output."""
    env = {k: v for k, v in os.environ.items() if k != "VIDSR_DEBUG"}
    return subprocess.run([sys.executable, "-m", "vidsr", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)
