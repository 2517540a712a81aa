"""Video-codec stage: real encoders through PyAV, clip shapes, quality ordering, motion synthesis."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidsr.degrade import load_config, ops
from vidsr.degrade.codec import (CodecParams, MotionParams, available_codecs, compress_clip, compress_clips,
                                 random_codec_params, random_motion_params, synthesize_motion)
from vidsr.errors import OptionError


@pytest.fixture(scope="module")
def photo(media: Path) -> torch.Tensor:
    """A real photograph, ``[3, 192, 192]`` float in [0, 1]."""
    with Image.open(media / "images" / "photo" / "lomiri1604_Wine_by_Jakkub_Mede.jpg") as img:
        arr = np.asarray(img.convert("RGB").resize((288, 288 * img.height // img.width), Image.BICUBIC))
    return torch.from_numpy(arr[:192, 48:240].copy()).permute(2, 0, 1).float() / 255


def moving_clip(photo: torch.Tensor, frames: int = 5, side: int = 48, seed: int = 0) -> torch.Tensor:
    """A small clip with real sub-pixel motion: pan the HR photo, then shrink it 4x."""
    g = torch.Generator().manual_seed(seed)
    dx, dy = (torch.rand(2, generator=g) * 6 - 3).tolist()
    hr = synthesize_motion(photo, MotionParams(frames=frames, ref=0, dx=dx, dy=dy, zoom=0.005))
    return ops.resize(hr, (side, side), "area")


def params(codec: str, **kw: object) -> CodecParams:
    base: dict[str, object] = dict(codec=codec, rate_control="crf", crf=28.0, preset="veryfast" if codec in (
        "libx264", "libx265") else None, gop=3, bframes=0 if codec == "libvpx-vp9" else 2, fps=25)
    base.update(kw)
    return CodecParams(**base)  # type: ignore[arg-type]


def test_the_configured_encoders_are_available() -> None:
    assert {"libx264", "libx265", "mpeg4"} <= set(available_codecs())


@pytest.mark.parametrize("codec", ["libx264", "libx265", "mpeg4", "libvpx-vp9"])
@pytest.mark.parametrize("size", [(37, 29), (64, 48)])
def test_codec_returns_t_frames_of_the_input_shape(photo: torch.Tensor, codec: str, size: tuple[int, int]) -> None:
    if codec not in available_codecs():
        pytest.skip(f"{codec} not in this PyAV build")
    clip = ops.resize(synthesize_motion(photo, MotionParams(frames=4, ref=1, dx=1.5, dy=-0.7, zoom=0.0)), size,
                      "area")
    out = compress_clip(clip, params(codec, crf=10.0 if codec == "mpeg4" else 30.0))
    assert out.shape == clip.shape == (4, 3, *size)
    assert out.dtype == clip.dtype and out.device == clip.device
    assert torch.equal(out, ops.quantize(out))  # decoded 8-bit frames
    psnr = ops.psnr(out, clip)
    assert (psnr > 20).all()  # still the same picture
    assert not torch.equal(out, ops.quantize(clip))  # but really compressed


def test_higher_crf_lowers_psnr_on_average(photo: torch.Tensor) -> None:
    clips = [moving_clip(photo, seed=s) for s in range(3)]
    for codec, low, high in (("libx264", 18.0, 40.0), ("libx265", 20.0, 42.0), ("mpeg4", 2.0, 20.0)):
        good = torch.cat([ops.psnr(compress_clip(c, params(codec, crf=low)), c) for c in clips]).mean()
        bad = torch.cat([ops.psnr(compress_clip(c, params(codec, crf=high)), c) for c in clips]).mean()
        assert bad < good - 2, codec


def test_lower_bitrate_lowers_psnr(photo: torch.Tensor) -> None:
    clip = moving_clip(photo, side=64)
    for codec in ("libx264", "mpeg4"):
        scores = [ops.psnr(compress_clip(clip, params(codec, rate_control="bitrate", crf=None, bitrate_bpp=bpp)),
                           clip).mean().item() for bpp in (0.1, 2.0)]
        assert scores[0] < scores[1] - 2, codec


def test_compression_is_deterministic_and_threads_change_nothing(photo: torch.Tensor) -> None:
    """Same clip and settings, same bytes: run after run, serial or threaded.

    Small odd-sized clips are where libx264's AVX-512 code and libx265 once varied run to run.
    """
    from concurrent.futures import ThreadPoolExecutor

    sizes = [(48, 48), (47, 50), (65, 68), (19, 19), (64, 64), (30, 41)]
    clips = [ops.resize(synthesize_motion(photo, MotionParams(frames=5, ref=0, dx=1.3 * i, dy=-0.6, zoom=0.004)),
                        size, "area") for i, size in enumerate(sizes)]
    ps = [params(codec, crf=crf, preset=preset, gop=4, bframes=2)
          for codec, crf, preset in (("libx264", 30.0, "veryfast"), ("libx264", 34.0, "medium"),
                                     ("libx265", 33.0, "veryfast"), ("libx264", 30.0, "ultrafast"),
                                     ("libx265", 30.0, "fast"), ("mpeg4", 12.0, None))]
    serial = compress_clips(clips, ps)
    with ThreadPoolExecutor(4) as ex:
        for _ in range(3):
            for a, b in zip(serial, compress_clips(clips, ps, ex)):
                assert torch.equal(a, b)
    for a, b in zip(serial, compress_clips(clips, ps)):
        assert torch.equal(a, b)


def test_inter_frame_coding_makes_frames_depend_on_their_neighbours(photo: torch.Tensor) -> None:
    clip = moving_clip(photo, frames=4, side=64)
    # mpeg4 at a fixed quantiser: an intra-only stream codes each frame exactly as on its own...
    intra = compress_clip(clip, params("mpeg4", crf=8.0, gop=1, bframes=0))
    alone = torch.cat([compress_clip(clip[t:t + 1], params("mpeg4", crf=8.0, gop=1, bframes=0)) for t in range(4)])
    assert torch.equal(intra, alone)
    # ...while with P- and B-frames the later frames are predictions from the others.
    inter = compress_clip(clip, params("mpeg4", crf=8.0, gop=4, bframes=1))
    assert torch.equal(inter[0], intra[0])
    assert not torch.equal(inter[1:], intra[1:])


def test_synthesized_motion_keeps_the_reference_frame_and_pans_by_whole_pixels(photo: torch.Tensor) -> None:
    clip = synthesize_motion(photo, MotionParams(frames=3, ref=1, dx=2.0, dy=0.0, zoom=0.0))
    assert clip.shape == (3, *photo.shape)
    assert torch.equal(clip[1], photo)
    # Frame ref+1 shows content 2 px further along x; frame ref-1 2 px back (bicubic at whole pixels is exact).
    assert torch.allclose(clip[2][:, 8:-8, 8:-10], photo[:, 8:-8, 10:-8], atol=1e-4)
    assert torch.allclose(clip[0][:, 8:-8, 10:-8], photo[:, 8:-8, 8:-10], atol=1e-4)
    zoomed = synthesize_motion(photo, MotionParams(frames=2, ref=0, dx=0.0, dy=0.0, zoom=0.05))
    assert not torch.allclose(zoomed[1], photo, atol=1e-2)
    with pytest.raises(OptionError):
        synthesize_motion(photo, MotionParams(frames=2, ref=2, dx=0.0, dy=0.0, zoom=0.0))


def test_random_codec_and_motion_params_stay_in_their_ranges() -> None:
    cfg = load_config("realesrgan_video").codec
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(300):
        p = random_codec_params(g, cfg)
        seen.add(p.codec)
        assert cfg.gop[0] <= p.gop <= cfg.gop[1]
        if p.rate_control == "crf":
            assert p.crf is not None and cfg.crf[p.codec][0] <= p.crf <= cfg.crf[p.codec][1]
        else:
            assert p.bitrate_bpp is not None and cfg.bitrate_bpp[0] <= p.bitrate_bpp <= cfg.bitrate_bpp[1]
        assert (p.preset is not None) == (p.codec in ("libx264", "libx265"))
        if p.codec == "libvpx-vp9":
            assert p.rate_control == "crf" and p.bframes == 0
        else:
            assert cfg.bframes[0] <= p.bframes <= cfg.bframes[1]
        m = random_motion_params(g, cfg)
        assert 0 <= m.ref < m.frames == cfg.frames
        assert (m.dx**2 + m.dy**2) ** 0.5 <= cfg.motion.pan[1] + 1e-9
    assert seen == {c for c, p in cfg.codec_probs.items() if p > 0}
    no_b = dataclasses.replace(cfg, bframes=(0, 0))
    assert random_codec_params(g, no_b).bframes == 0
