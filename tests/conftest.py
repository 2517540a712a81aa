"""Shared fixtures: the real media committed under tests/data, and small clips cut from it.

Under CI (the ``CI`` environment variable set), a test that skips for a missing file,
tool or dev dependency fails the run: only skips whose reason starts with ``hardware:``
(a GPU or hardware encoder this machine lacks) are allowed.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
# The bundled sample (samples/README.md): 3 s of a real NASA clip with AAC stereo.
EARTH = REPO / "samples" / "earth_3s.mp4"
HARDWARE_SKIP = "hardware:"


@pytest.fixture(scope="session")
def media() -> Path:
    """Real media, laid out as videos/, images/anime/, images/photo/, audio/ (tests/data/README.md)."""
    return DATA


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    """imageio-ffmpeg's static binary: the tests never depend on whatever ffmpeg is on PATH."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(exe: str, *args: str) -> None:
    subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory, media: Path, ffmpeg_exe: str) -> Path:
    """0.4 s of real video at 96x54 with two real AAC tracks (jpn, eng), audio stream-copied."""
    out = tmp_path_factory.mktemp("clips") / "tiny.mp4"
    ffmpeg(ffmpeg_exe,
           "-i", str(EARTH),
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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not os.environ.get("CI") or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    bad = [r for r in skipped if not _skip_reason(r).startswith(HARDWARE_SKIP)]
    if bad:
        for r in bad:
            print(f"\nCI: skip not allowed: {r.nodeid}: {_skip_reason(r)}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)
