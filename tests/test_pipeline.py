"""The overlapped pipeline on CPU: same frames as a sequential run, tiling, OOM recovery, flat memory."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidsr.engine.device import OutOfMemoryError
from vidsr.engine.device_formatter import DeviceFormatter
from vidsr.engine.frame_pipeline import run_pipeline
from vidsr.engine.upscaler import FrameUpscaler, SpeedOptions
from vidsr.io.color import ColorInfo
from vidsr.io.decode import iter_frames
from vidsr.io.probe import probe_video
from vidsr.models import ModelDescriptor, SRVGGNetCompact, load_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def anime() -> ModelDescriptor:
    return load_model("animevideov3")


def _upscaler(model: ModelDescriptor, w: int, h: int, scale: float = 2, **speed: int) -> FrameUpscaler:
    out = (int(w * scale), int(h * scale))
    return FrameUpscaler(model, device=CPU, dtype=torch.float32, out_size=out, speed=SpeedOptions(**speed))


def test_pipeline_matches_sequential_bit_exact(anime: ModelDescriptor, tiny_clip: Path) -> None:
    info = probe_video(tiny_clip)
    frames = list(iter_frames(tiny_clip, info.color))
    up = _upscaler(anime, info.width, info.height)
    got: list[np.ndarray] = []
    n = run_pipeline(lambda: iter(frames), up, lambda a: got.extend(a.copy()), batch=3,
                     frame_shape=(info.height, info.width, 3))
    assert n == len(frames) == len(got) > 3
    expected = []
    for i in range(0, len(frames), 3):  # the same network, same batches, no threads
        expected.extend(up(torch.from_numpy(np.stack(frames[i:i + 3]))).numpy())
    for a, b in zip(got, expected):
        assert np.array_equal(a, b)


def _real_crop(media: Path, size: int = 72) -> np.ndarray:
    with Image.open(media / "images" / "anime" / "bg_meadow.jpg") as im:
        return np.asarray(im.convert("RGB").crop((500, 300, 500 + size, 300 + size))).copy()


def test_tiled_matches_untiled(anime: ModelDescriptor, media: Path) -> None:
    rgb = torch.from_numpy(_real_crop(media))[None]
    whole = _upscaler(anime, 72, 72, scale=4)
    tiled = _upscaler(anime, 72, 72, scale=4, tile=32)  # default 16 px of context
    x = whole.to_float(whole.upload(rgb))
    with torch.inference_mode():
        a = whole._network(x)
        b = tiled._network(x)
    assert tiled.tile == 32
    assert (a - b).abs().max().item() <= 1 / 255


class _OomAbove(torch.nn.Module):
    """A real network that fails like a full GPU when handed more than `limit` pixels at once."""

    def __init__(self, inner: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.inner, self.limit, self.failures = inner, limit, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] * x.shape[-2] * x.shape[-1] > self.limit:
            self.failures += 1
            raise OutOfMemoryError("CUDA out of memory (injected by the test)")
        return self.inner(x)


def test_out_of_memory_is_recovered(anime: ModelDescriptor, media: Path) -> None:
    crop = _real_crop(media, 64)
    frames = [np.roll(crop, k, axis=1) for k in range(5)]
    reference = _upscaler(anime, 64, 64)
    expected = [reference(torch.from_numpy(f)[None])[0].numpy() for f in frames]

    # Not even one whole 64x64 frame fits; a 32 px tile with its 16 px of context (48x48) does.
    flaky = _OomAbove(anime.module, limit=56 * 56)
    model = ModelDescriptor(name="flaky", architecture=anime.architecture, module=flaky, scale=anime.scale,
                            num_params=anime.num_params, source="test")
    up = _upscaler(model, 64, 64)
    got: list[np.ndarray] = []
    n = run_pipeline(lambda: iter(frames), up, lambda a: got.extend(a.copy()), batch=4,
                     frame_shape=(64, 64, 3))
    assert n == len(got) == 5
    assert flaky.failures >= 3 and up.micro_batch == 1 and up.tile == 32
    for a, b in zip(got, expected):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_memory_stays_flat_on_a_long_stream() -> None:
    torch.manual_seed(0)
    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2).eval()
    model = ModelDescriptor(name="tiny", architecture="SRVGGNetCompact", module=net, scale=2,
                            num_params=0, source="test")
    up = _upscaler(model, 32, 32)
    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    rss: dict[int, int] = {}
    seen = [0]

    def sink(a: np.ndarray) -> None:
        seen[0] += len(a)
        if seen[0] in (800, 4000):
            rss[seen[0]] = _rss_bytes()

    n = run_pipeline(lambda: (frame for _ in range(4000)), up, sink, batch=8, frame_shape=(32, 32, 3))
    assert n == 4000
    # 3200 more frames are 3200 x 12 KiB = 37.5 MiB of output; none of it may stay resident.
    assert rss[4000] - rss[800] < 8 * 2**20, (rss[4000] - rss[800]) / 2**20


@pytest.mark.parametrize("matrix,full", [("SMPTE170M", False), ("ITU709", False), ("ITU709", True)])
def test_device_yuv420_matches_swscale(media: Path, matrix: str, full: bool) -> None:
    import av

    rgb = _real_crop(media, 64)
    color = ColorInfo(matrix=matrix, full_range=full, primaries=1, trc=1)
    fmt = DeviceFormatter.for_encoder("yuv420p", 64, 64, color)
    ours = fmt(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0].numpy()
    ref = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace=matrix, dst_color_range="JPEG" if full else "MPEG",
        interpolation="BICUBIC").to_ndarray()
    assert ours.shape == ref.shape
    luma = slice(0, 64)
    assert np.abs(ours[luma].astype(int) - ref[luma].astype(int)).max() <= 1
    # Chroma differs only by siting/filter (box average vs swscale's bicubic): a few code values at most.
    assert np.abs(ours[64:].astype(int) - ref[64:].astype(int)).mean() < 1.5
