"""Faults: a failure in any stage (decode, device, encode, Ctrl-C) stops every pipeline thread at
once and leaves no output; out-of-memory anywhere on the device path is recovered; a slow
encoder is waited for; a killed or interrupted `vidsr upscale` leaves nothing at the output path.

Failures are injected into the real pipeline (real clip, real network, real encoder): the
encoder process is killed or frozen with signals, Ctrl-C is delivered as Python delivers a
SIGINT, and errors are raised where the real ones would come from.
"""
from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import EARTH, ffmpeg
from tiny_model import one_torch_thread, tiny_model, tiny_model_file

from vidsr.cli.main import main
from vidsr.engine.device import OutOfMemoryError, is_oom
from vidsr.engine.frame_pipeline import BufferPool, run_pipeline
from vidsr.engine.threads import Crew, StopPipeline
from vidsr.engine.upscaler import FrameUpscaler
from vidsr.errors import EncoderError
from vidsr.io.decode import FrameReader, iter_frames
from vidsr.io.encode import FfmpegProcessEncoder, PyAVEncoder
from vidsr.io.probe import probe_video
from vidsr.models import ModelDescriptor

CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Path:
    """2 s of the NASA clip at 64x36, 30 fps (60 frames), with its AAC track."""
    out = tmp_path_factory.mktemp("faults") / "clip.mp4"
    ffmpeg(ffmpeg_exe, "-i", str(EARTH), "-t", "2", "-vf", "scale=64:36", "-c:v", "libx264", "-preset", "ultrafast",
           "-c:a", "copy", str(out))
    return out


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_file(tmp_path_factory.mktemp("model"))


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, list[str]]:
    """`vidsr ARGS` in this process: (exit status, stderr lines)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, capsys.readouterr().err.strip().splitlines()


def pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("vidsr-")]


def frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


class Fault:
    """Fires on the n-th call of whatever it wraps, and remembers when."""

    def __init__(self, nth: int) -> None:
        self.nth, self.calls, self.at = nth, 0, None

    def due(self) -> bool:
        self.calls += 1
        if self.calls == self.nth:
            self.at = time.monotonic()
            return True
        return False


def _inject(case: str, monkeypatch: pytest.MonkeyPatch) -> Fault:
    if case == "decode":
        fault = Fault(10)
        real = FrameReader._to_array

        def to_array(self, frame):  # type: ignore[no-untyped-def]
            if fault.due():
                raise RuntimeError("injected decoder failure")
            return real(self, frame)

        monkeypatch.setattr(FrameReader, "_to_array", to_array)
    elif case in ("device", "device-with-frozen-encoder"):
        frozen: list[int] = []
        fault = Fault(2 if case == "device" else 3)
        real_process = FrameUpscaler.process

        def process(self, x):  # type: ignore[no-untyped-def]
            if fault.due():
                if frozen:
                    time.sleep(0.3)  # long enough for the encode thread to block on the full pipe
                    fault.at = time.monotonic()
                raise RuntimeError("CUDA error: an illegal memory access was encountered (injected)")
            return real_process(self, x)

        monkeypatch.setattr(FrameUpscaler, "process", process)
        if case == "device-with-frozen-encoder":
            # The encoder stops reading (as a stalled disk or a stuck process would): once its pipe is
            # full the encode thread blocks in write(), where only killing the process can free it.
            real_write = FfmpegProcessEncoder.write

            def write(self, frames):  # type: ignore[no-untyped-def]
                if not frozen:
                    os.kill(self._proc.pid, signal.SIGSTOP)
                    frozen.append(self._proc.pid)
                return real_write(self, frames)

            monkeypatch.setattr(FfmpegProcessEncoder, "write", write)
    elif case == "encode-ffmpeg":
        fault = Fault(2)
        real_write = FfmpegProcessEncoder.write

        def write(self, frames):  # type: ignore[no-untyped-def]
            if fault.due():
                self._proc.kill()  # the encoder dies mid-run
                self._proc.wait()
            return real_write(self, frames)

        monkeypatch.setattr(FfmpegProcessEncoder, "write", write)
    elif case == "encode-pyav":
        fault = Fault(2)
        real_pyav = PyAVEncoder.write

        def write(self, frames):  # type: ignore[no-untyped-def]
            if fault.due():
                raise EncoderError("encoding failed: No space left on device (injected)")
            return real_pyav(self, frames)

        monkeypatch.setattr(PyAVEncoder, "write", write)
    else:  # Ctrl-C: Python raises KeyboardInterrupt in the main thread, wherever it is
        fault = Fault(2)
        backend = case.removeprefix("ctrl-c-")
        target = FfmpegProcessEncoder if backend == "ffmpeg" else PyAVEncoder
        real_target = target.write

        def write(self, frames):  # type: ignore[no-untyped-def]
            if fault.due():
                _thread.interrupt_main()
            return real_target(self, frames)

        monkeypatch.setattr(target, "write", write)
    return fault


CASES = {
    "decode": ("ffmpeg", 1, "injected decoder failure"),
    "device": ("ffmpeg", 1, "illegal memory access"),
    "device-with-frozen-encoder": ("ffmpeg", 1, "illegal memory access"),
    "encode-ffmpeg": ("ffmpeg", 1, "ffmpeg stopped"),
    "encode-pyav": ("pyav", 1, "No space left"),
    "ctrl-c-ffmpeg": ("ffmpeg", 130, "vidsr: interrupted"),
    "ctrl-c-pyav": ("pyav", 130, "vidsr: interrupted"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_failure_in_any_stage_stops_every_thread_at_once(case: str, clip: Path, model_file: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    backend, status, message = CASES[case]
    fault = _inject(case, monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    code, err = cli(capsys, "upscale", str(clip), "-o", str(out / "result.mp4"), "--model", str(model_file),
                    "--device", "cpu", "--batch", "4", "--preset", "ultrafast", "--encoder", backend, "--quiet")
    ended = time.monotonic()
    assert fault.at is not None, "the fault never fired"
    assert ended - fault.at < 1.0, f"took {ended - fault.at:.2f} s to stop"
    assert pipeline_threads() == []
    assert code == status
    assert len(err) == 1 and message in err[0], err
    assert list(out.iterdir()) == []


def test_failure_frees_the_buffers(clip: Path, tmp_path: Path) -> None:
    """Once a failed run has returned, nothing holds its frame buffers any more."""
    import gc
    import weakref

    info = probe_video(clip)
    up = FrameUpscaler(tiny_model(), device=CPU, dtype=torch.float32, out_size=(128, 72))
    buffers: list[weakref.ref] = []
    real_empty = torch.empty

    def tracked_empty(*args, **kwargs):  # type: ignore[no-untyped-def]
        t = real_empty(*args, **kwargs)
        buffers.append(weakref.ref(t))
        return t

    def sink(frames: np.ndarray) -> None:
        raise EncoderError("injected encoder failure")

    torch.empty = tracked_empty  # only the pools allocate through torch.empty in this run
    try:
        with pytest.raises(EncoderError):
            run_pipeline(lambda: iter_frames(clip, info.color), up, sink, batch=4, frame_shape=(36, 64, 3))
    finally:
        torch.empty = real_empty
    gc.collect()
    assert len(buffers) >= 8  # both pools, 4 buffers each
    assert [r for r in buffers if r() is not None] == []
    assert pipeline_threads() == []


def test_out_of_memory_at_upload_is_recovered(clip: Path, model_file: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                              caplog: pytest.LogCaptureFixture) -> None:
    real_upload = FrameUpscaler.upload
    fault = Fault(3)

    def upload(self, frames):  # type: ignore[no-untyped-def]
        if fault.due():
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return real_upload(self, frames)

    monkeypatch.setattr(FrameUpscaler, "upload", upload)
    out = tmp_path / "out.mp4"
    code, err = cli(capsys, "upscale", str(clip), "-o", str(out), "--model", str(model_file), "--device", "cpu",
                    "--batch", "4", "--preset", "ultrafast", "--quiet")
    assert fault.at is not None
    assert code == 0, err
    assert frame_count(out) == frame_count(clip) == 60
    assert "out of memory uploading" in caplog.text


def test_out_of_memory_at_upload_gives_the_same_frames(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = probe_video(clip)
    frames = list(iter_frames(clip, info.color))[:10]

    def run() -> list[np.ndarray]:
        up = FrameUpscaler(tiny_model(), device=CPU, dtype=torch.float32, out_size=(128, 72))
        got: list[np.ndarray] = []
        n = run_pipeline(lambda: iter(frames), up, lambda a: got.extend(a.copy()), batch=4, frame_shape=(36, 64, 3))
        assert n == len(got) == 10
        return got

    expected = run()
    real_upload = FrameUpscaler.upload
    fault = Fault(1)

    def upload(self, frames):  # type: ignore[no-untyped-def]
        if fault.due():
            raise OutOfMemoryError("CUDA out of memory (injected)")
        return real_upload(self, frames)

    monkeypatch.setattr(FrameUpscaler, "upload", upload)
    got = run()
    assert fault.at is not None
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))


class _FailsAbove(torch.nn.Module):
    """A real network whose library workspace allocation fails above `limit` pixels per call."""

    def __init__(self, inner: torch.nn.Module, limit: int, message: str) -> None:
        super().__init__()
        self.inner, self.limit, self.message, self.failures = inner, limit, message, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] * x.shape[-2] * x.shape[-1] > self.limit:
            self.failures += 1
            raise RuntimeError(self.message)
        return self.inner(x)


@pytest.mark.parametrize("message", [
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "CUDA error: out of memory",
])
def test_library_workspace_failures_are_recovered(clip: Path, message: str) -> None:
    info = probe_video(clip)
    frames = list(iter_frames(clip, info.color))[:6]
    base = tiny_model()
    reference = FrameUpscaler(base, device=CPU, dtype=torch.float32, out_size=(128, 72))
    expected = [reference(torch.from_numpy(f)[None])[0].numpy() for f in frames]
    flaky = _FailsAbove(base.module, limit=2 * 36 * 64, message=message)
    model = ModelDescriptor(name="flaky", architecture=base.architecture, module=flaky, scale=2, num_params=0,
                            source="test")
    up = FrameUpscaler(model, device=CPU, dtype=torch.float32, out_size=(128, 72))
    got: list[np.ndarray] = []
    n = run_pipeline(lambda: iter(frames), up, lambda a: got.extend(a.copy()), batch=6, frame_shape=(36, 64, 3))
    assert n == len(got) == 6
    assert flaky.failures >= 1 and up.micro_batch <= 2
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_other_runtime_errors_are_not_taken_for_out_of_memory() -> None:
    assert not is_oom(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not is_oom(RuntimeError("cuDNN error: CUDNN_STATUS_BAD_PARAM"))
    assert is_oom(OutOfMemoryError("CUDA out of memory"))


def test_a_slow_encoder_is_waited_for_and_a_failure_ends_the_wait() -> None:
    crew = Crew()
    pool = BufferPool(crew, 1, (4,), dtype=torch.uint8, pinned=False)
    held = pool.take()
    # The encoder gives its buffer back long after the old 600 s limit would matter to it; what
    # counts is that take() waits for it, however long, rather than calling it an error.
    threading.Timer(0.3, pool.give, args=(held,)).start()
    start = time.monotonic()
    assert pool.take() is held
    assert time.monotonic() - start >= 0.25
    # Once the run has failed elsewhere, a wait for a buffer ends at once.
    threading.Timer(0.1, crew.fail, args=(EncoderError("encoder died"),)).start()
    start = time.monotonic()
    with pytest.raises(StopPipeline):
        pool.take()
    assert time.monotonic() - start < 0.5
    assert isinstance(crew.error, EncoderError)


# -- killing the process ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Path:
    """12 s (360 frames) of the NASA clip at 64x36: long enough to be stopped mid-run."""
    out = tmp_path_factory.mktemp("long") / "long.mp4"
    ffmpeg(ffmpeg_exe, "-stream_loop", "3", "-i", str(EARTH), "-vf", "scale=64:36", "-c:v", "libx264",
           "-preset", "ultrafast", "-c:a", "copy", str(out))
    return out


def _start_upscale(src: Path, out: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "VIDSR_DEBUG"}
    return subprocess.Popen([sys.executable, "-m", "vidsr", "upscale", str(src), "-o", str(out), "--device", "cpu",
                             "--batch", "1", "--preset", "ultrafast", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_until_encoding(proc: subprocess.Popen, folder: Path) -> None:
    """Until the encoder has started writing its temporary file: the run is under way."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(p.name.startswith(".result.video-") for p in folder.iterdir()):
            return
        if proc.poll() is not None:
            pytest.fail(f"vidsr ended before it could be stopped: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("vidsr never started encoding")


def test_ctrl_c_mid_run_stops_quickly_and_leaves_nothing(long_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.mp4"
    proc = _start_upscale(long_clip, out)
    _wait_until_encoding(proc, tmp_path)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _stdout, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 3.0
    assert proc.returncode == 130
    assert stderr.strip().splitlines() == ["vidsr: interrupted"]
    assert list(tmp_path.iterdir()) == []  # no output, and no temporary file either


def test_killed_run_leaves_nothing_at_the_output_and_a_rerun_cleans_up(long_clip: Path, tmp_path: Path,
                                                                     model_file: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "result.mp4"
    proc = _start_upscale(long_clip, out)
    _wait_until_encoding(proc, tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    assert not out.exists()
    assert all(p.name.startswith(".result.") for p in tmp_path.iterdir())  # only temporary names
    code, err = cli(capsys, "upscale", str(long_clip), "-o", str(out), "--model", str(model_file), "--device", "cpu",
                    "--frames", "3", "--preset", "ultrafast", "--quiet")
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["result.mp4"]  # the killed run's leftovers are gone
    assert frame_count(out) == 3
