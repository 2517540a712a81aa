"""A segmented run killed or interrupted mid-way, as a user's terminal would do it.

`python -m vidsr upscale ... --devices cpu,cpu` runs in its own process group (like a
shell job); the signal is sent once the first segment is recorded in the job folder.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import EARTH, ffmpeg

from vidsr.engine.chunked import ChunkOptions, upscale_video_chunked
from vidsr.engine.jobdir import job_folder
from vidsr.engine.options import UpscaleOptions
from vidsr.io.encode import EncodeSettings

FRAMES = 30
# Lossless and one frame per network call: the same frames whatever the interruptions.
ARGS = ("-m", "animevideov3-x2", "--segment-seconds", "0.05", "--preset", "ultrafast", "--crf", "0",
        "--pix-fmt", "yuv444p", "--batch", "1", "--quiet")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Path:
    """30 frames of the real NASA clip at 32x18, a keyframe every 3 (10 segments), with its AAC track."""
    out = tmp_path_factory.mktemp("signals") / "clip.mp4"
    ffmpeg(ffmpeg_exe, "-i", str(EARTH), "-frames:v", str(FRAMES), "-t", str(FRAMES / 30), "-vf", "scale=32:18",
           "-c:v", "libx264", "-preset", "fast", "-g", "3", "-keyint_min", "3", "-c:a", "copy", str(out))
    return out


def command(clip: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vidsr", "upscale", str(clip), "-o", str(out), *ARGS, *extra]


# One torch thread per process: the runs stay quick on a busy 2-core machine (workers use one each anyway).
ENV = {**{k: v for k, v in os.environ.items() if k != "VIDSR_DEBUG"}, "OMP_NUM_THREADS": "1"}


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def reference(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same upscale (ARGS and the CLI's defaults), never interrupted, in this process."""
    out = tmp_path_factory.mktemp("reference") / "ref.mkv"
    opts = UpscaleOptions(model="animevideov3-x2", batch=1, progress=False,
                          encode=EncodeSettings(preset="ultrafast", crf=0, pix_fmt="yuv444p"))
    upscale_video_chunked(clip, out, opts, ChunkOptions(devices=("cpu",), segment_seconds=0.05))
    return out


def start(clip: Path, out: Path, work: Path) -> subprocess.Popen:
    return subprocess.Popen(command(clip, out, "--devices", "cpu,cpu", "--work-dir", str(work)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)  # its own session and process group, as a shell job has


def wait_for_first_segment(proc: subprocess.Popen, job: Path) -> None:
    deadline = time.monotonic() + 300
    while not (job / "seg_00000.json").exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no segment finished"
        time.sleep(0.02)


def session_alive(sid: int) -> list[int]:
    """Processes of the session that still run (zombies waiting for a parent to reap them do not).

    The session rather than the process group: workers make groups of their own.
    """
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                alive.append(int(entry.name))
    return alive


def wait_session_gone(sid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while session_alive(sid):
        assert time.monotonic() < deadline, f"still running: {session_alive(sid)}"
        time.sleep(0.05)


def frames(path: Path) -> tuple[list[float], list[np.ndarray]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        decoded = [(float(f.pts * s.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(s)]
    return [t for t, _ in decoded], [a for _, a in decoded]


def test_killed_run_leaves_no_output_and_resumes_to_the_same_frames(clip: Path, reference: Path,
                                                                   tmp_path: Path) -> None:
    work = tmp_path / "scratch"
    work.mkdir()
    (work / "mine.txt").write_text("a user's file")
    out = tmp_path / "out.mkv"
    proc = start(clip, out, work)
    wait_for_first_segment(proc, job_folder(out, work))
    proc.send_signal(signal.SIGKILL)  # the parent alone: its workers must not carry on orphaned
    proc.wait()
    wait_session_gone(proc.pid, 15)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "scratch"] == []

    r = run(command(clip, out, "--devices", "cpu,cpu", "--work-dir", str(work)))
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr
    got_t, got = frames(out)
    ref_t, ref = frames(reference)
    assert len(got) == len(ref) == FRAMES
    assert np.allclose(got_t, ref_t, atol=1e-3)
    assert all(np.array_equal(a, b) for a, b in zip(got, ref))
    assert sorted(p.name for p in work.iterdir()) == ["mine.txt"]  # the job folder went, the user's file stayed


def test_ctrl_c_stops_workers_and_exits_quickly(clip: Path, tmp_path: Path) -> None:
    work = tmp_path / "scratch"
    out = tmp_path / "out.mkv"
    proc = start(clip, out, work)
    job = job_folder(out, work)
    wait_for_first_segment(proc, job)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    sent = time.monotonic()
    lines = []
    for line in proc.stderr:  # as they come, until the process ends
        lines.append((time.monotonic() - sent, line))
    proc.wait(timeout=30)
    stderr = "".join(line for _, line in lines)
    # Workers stopped and the run ended within 5 s; the interpreter's own teardown (torch's
    # included) comes after that line, and takes longer only on a machine busy with other work.
    told = [t for t, line in lines if "vidsr: interrupted" in line]
    assert told and told[0] < 5, stderr
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    wait_session_gone(proc.pid, 5)  # no worker or encoder left
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["scratch"]
    assert len(list(job.glob("seg_*.json"))) >= 1  # finished segments kept
    assert not list(job.glob(".seg_*"))
