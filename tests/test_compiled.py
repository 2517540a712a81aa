"""The compiled network on CPU (inductor through gcc): equal to eager on real frames, one shape for the
whole run (the last batch padded, then cropped), its artefacts in vidsr's cache folder, and the policy
that decides when a run compiles."""
from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from tiny_model import one_torch_thread, tiny_model

from vidsr.engine import compiled
from vidsr.engine.compiled import COMPILE_MIN_FRAMES, CompiledNetwork, cache_dir, compile_mode, wants_compile
from vidsr.engine.frame_pipeline import run_pipeline
from vidsr.engine.upscaler import FrameUpscaler, SpeedOptions
from vidsr.errors import OptionError
from vidsr.io.decode import iter_frames
from vidsr.io.probe import probe_video

CPU = torch.device("cpu")
CUDA = torch.device("cuda")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compile-cache")


@pytest.fixture(scope="module")
def compiled_run(cache: Path, media: Path) -> dict:
    """One compilation for the module: 7 real frames through the pipeline in batches of 4, compiled and eager."""
    clip = media / "videos" / "bikes_640x272_3s.mp4"
    info = probe_video(clip)
    frames = []
    for rgb in iter_frames(clip, info.color):
        # Tiny frames keep the CPU compile short; every 5th frame, so consecutive ones differ.
        frames.append(np.ascontiguousarray(rgb[::8, ::8][:32, :80]))
        if len(frames) == 35:
            break
    frames = frames[::5]
    model = tiny_model()
    speed = SpeedOptions(compile=True)
    env_before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with one_torch_thread(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDSR_CACHE_DIR", str(cache))
        up = FrameUpscaler(model, device=CPU, dtype=torch.float32, out_size=(160, 64), speed=speed)
        shapes: list[tuple[int, ...]] = []
        network = up.module
        assert isinstance(network, CompiledNetwork)

        def spy(x: torch.Tensor) -> torch.Tensor:
            shapes.append(tuple(x.shape))
            return network(x)

        up.module = spy
        got: list[np.ndarray] = []
        n = run_pipeline(lambda: iter(frames), up, lambda a: got.extend(a.copy()), batch=4,
                         frame_shape=frames[0].shape, pad_last_batch=True)
        env_inside = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        eager = FrameUpscaler(model, device=CPU, dtype=torch.float32, out_size=(160, 64))
        expected = list(eager(torch.from_numpy(np.stack(frames))).numpy())
    return {"n": n, "frames": frames, "got": got, "expected": expected, "shapes": shapes,
            "env_before": env_before, "env_inside": env_inside, "mode": network.mode}


def test_compiled_equals_eager_on_real_frames(compiled_run: dict) -> None:
    got, expected = compiled_run["got"], compiled_run["expected"]
    assert len(got) == len(expected) == 7
    for a, b in zip(got, expected):
        assert a.shape == b.shape == (64, 160, 3)
        assert psnr(a, b) >= 45
    assert compiled_run["mode"] == "default"  # no CUDA graphs on CPU


def test_last_batch_is_padded_to_one_shape_and_cropped(compiled_run: dict) -> None:
    # 7 frames in batches of 4: the network saw two full batches, the pipeline passed on exactly 7.
    assert compiled_run["n"] == 7 == len(compiled_run["got"])
    assert len(compiled_run["shapes"]) == 2 and len(set(compiled_run["shapes"])) == 1
    assert compiled_run["shapes"][0][0] == 4


def test_artefacts_cached_in_vidsr_folder_and_environment_restored(compiled_run: dict, cache: Path) -> None:
    written = [p for p in cache.rglob("*") if p.is_file()]
    assert written, "inductor wrote nothing to vidsr's cache folder"
    assert compiled_run["env_inside"] == compiled_run["env_before"]  # scoped to the compiling calls


def test_cache_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VIDSR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "vidsr" / "compile"
    monkeypatch.setenv("VIDSR_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine" / "compile"


def test_policy_compiles_long_cuda_runs_only() -> None:
    assert wants_compile(None, CUDA, COMPILE_MIN_FRAMES)
    assert wants_compile(None, CUDA, None)           # unknown length: assumed long
    assert not wants_compile(None, CUDA, COMPILE_MIN_FRAMES - 1)
    assert not wants_compile(None, CPU, 10**6)       # CPU: eager unless asked
    assert wants_compile(True, CPU, 1)
    assert not wants_compile(False, CUDA, 10**6)


def test_cuda_graphs_only_where_launches_bound() -> None:
    assert compile_mode(CUDA, torch.empty(4, 3, 270, 480)) == "reduce-overhead"
    assert compile_mode(CUDA, torch.empty(4, 3, 1080, 1920)) == "default"
    assert compile_mode(CPU, torch.empty(1, 3, 8, 8)) == "default"


def test_tensorrt_asked_without_it_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "tensorrt_available", lambda: False)
    with pytest.raises(OptionError, match=r"--trt needs torch-tensorrt.*vidsr\[trt\]"):
        compiled.wants_tensorrt(True, CUDA, compiled=True)
    with pytest.raises(OptionError, match="--trt needs a CUDA device"):
        compiled.wants_tensorrt(True, CPU, compiled=True)
    assert not compiled.wants_tensorrt(None, CUDA, compiled=True)   # auto: only when installed
    monkeypatch.setattr(compiled, "tensorrt_available", lambda: True)
    assert compiled.wants_tensorrt(None, CUDA, compiled=True)
    assert not compiled.wants_tensorrt(None, CUDA, compiled=False)
    assert not compiled.wants_tensorrt(False, CUDA, compiled=True)


def test_compiled_video_run_keeps_every_frame(cache: Path, tiny_clip: Path, tmp_path: Path,
                                              compiled_run: dict) -> None:
    """A whole run with --compile: 7 frames in batches of 4 (the last one padded), every frame out.
    Compiled after compiled_run, so inductor's artefacts come from the cache folder."""
    from vidsr.engine.options import UpscaleOptions
    from vidsr.engine.video import upscale_video
    from vidsr.io.decode import Window

    with one_torch_thread(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDSR_CACHE_DIR", str(cache))
        opts = UpscaleOptions(device="cpu", batch=4, speed=SpeedOptions(compile=True), progress=False,
                              window=Window(frames=7))
        result = upscale_video(tiny_clip, tmp_path / "out.mp4", opts, model=tiny_model())
    assert result.frames == 7
    with av.open(str(result.output)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 7


def test_expected_frames_from_header_and_window(media: Path) -> None:
    from vidsr.engine.compiled import expected_frames
    from vidsr.io.decode import Window

    info = probe_video(media / "videos" / "bikes_640x272_3s.mp4")  # 77 frames at 25 fps
    assert expected_frames(info, Window()) == 77
    assert expected_frames(info, Window(start=1.0)) == 52
    assert expected_frames(info, Window(duration=2.0)) == 50
    assert expected_frames(info, Window(start=2.0, frames=100)) == 27
    assert expected_frames(info, Window(frames=10)) == 10


def test_progress_bar_shows_the_compile_until_the_first_batch() -> None:
    import io

    from tqdm import tqdm

    from vidsr.engine.options import UpscaleOptions
    from vidsr.engine.progress import frame_counter

    with tqdm(total=8, file=io.StringIO()) as bar:
        progress = frame_counter(bar, UpscaleOptions(speed=SpeedOptions(compile=True)))
        assert "compiling the network" in (bar.postfix or "")
        progress(4)
        assert not bar.postfix and bar.n == 4
    with tqdm(total=8, file=io.StringIO()) as bar:
        frame_counter(bar, UpscaleOptions(speed=SpeedOptions(compile=False)))
        assert not bar.postfix
