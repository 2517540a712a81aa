"""The high-order pipeline: shapes, reproducibility, recorded parameters, codec stage placement."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidsr.degrade import HighOrderDegradation, SampleParams, load_config, ops
from vidsr.degrade.degradation_config import DegradationConfig
from vidsr.errors import InputError, OptionError
from degrade_by_hand import degrade_by_hand


@pytest.fixture(scope="module")
def hr(media: Path) -> torch.Tensor:
    """Four 64x64 crops of a real anime background, ``[4, 3, 64, 64]`` in [0, 1]."""
    with Image.open(media / "images" / "anime" / "bg_meadow.jpg") as img:
        arr = np.asarray(img.convert("RGB").resize((256, 144), Image.BICUBIC))
    t = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255
    return torch.stack([t[:, :64, :64], t[:, 64:128, :64], t[:, :64, 128:192], t[:, 80:144, 192:256]])


def with_codec(cfg: DegradationConfig, prob: float, place: str = "final") -> DegradationConfig:
    return dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, prob=prob, place=place))


@pytest.fixture(scope="module", params=["per_sample", "per_batch"])
def cfg(request: pytest.FixtureRequest) -> DegradationConfig:
    """The general config, in each draw mode (the tests below hold in both)."""
    return dataclasses.replace(load_config("realesrgan_video"), draw=request.param)


@pytest.fixture(scope="module")
def per_sample() -> DegradationConfig:
    return dataclasses.replace(load_config("realesrgan_video"), draw="per_sample")


def test_images_become_8bit_lr_images(hr: torch.Tensor, cfg: DegradationConfig) -> None:
    lr, params = HighOrderDegradation(cfg, seed=0)(hr, 4)
    assert lr.shape == (4, 3, 16, 16) and lr.dtype == hr.dtype
    assert lr.min() >= 0 and lr.max() <= 1
    assert torch.equal(lr, ops.quantize(lr))
    assert len(params) == 4 and all(isinstance(p, dict) for p in params)
    # Degraded, not destroyed: still correlated with a plain downscale of the input.
    plain = ops.resize(hr, (16, 16), "area")
    for a, b in zip(lr, plain):
        assert torch.corrcoef(torch.stack([a.reshape(-1), b.reshape(-1)]))[0, 1] > 0.5


def test_same_seed_same_output_and_params_other_seed_differs(hr: torch.Tensor, cfg: DegradationConfig) -> None:
    c = with_codec(cfg, 0.5)
    a, pa = HighOrderDegradation(c, seed=7)(hr, 4)
    b, pb = HighOrderDegradation(c, seed=7)(hr, 4)
    d, pd = HighOrderDegradation(c, seed=8)(hr, 4)
    assert torch.equal(a, b) and pa == pb
    assert not torch.equal(a, d) and pa != pd
    # Successive calls draw new parameters.
    pipe = HighOrderDegradation(c, seed=7)
    pipe(hr, 4)
    assert pipe(hr, 4)[1] != pa


def test_recorded_params_replay_exactly_including_noise_and_codec(hr: torch.Tensor, cfg: DegradationConfig) -> None:
    batch = torch.cat([hr, hr.flip(-1)])
    pipe = HighOrderDegradation(with_codec(cfg, 0.5), seed=3)
    lr, params = pipe(batch, 4)
    assert any(p["codec"] is not None for p in params) and any(p["codec"] is None for p in params)
    again = HighOrderDegradation(with_codec(cfg, 0.5), seed=999).apply(batch, params, scale=4)
    assert torch.equal(lr, again)
    typed = [SampleParams.from_dict(p) for p in params]
    assert [t.to_dict() for t in typed] == params


def test_recorded_params_are_what_was_applied(hr: torch.Tensor, per_sample: DegradationConfig) -> None:
    """Rebuild each LR image by hand from its recorded parameters, one operation after another."""
    lr, params = HighOrderDegradation(with_codec(per_sample, 0.0), seed=11)(hr, 4)
    for i, raw in enumerate(params):
        x = degrade_by_hand(hr[i:i + 1], SampleParams.from_dict(raw), (16, 16))
        assert torch.equal(ops.quantize(x), lr[i:i + 1]), i


def test_parameters_are_drawn_per_sample_within_the_config(per_sample: DegradationConfig) -> None:
    cfg = per_sample
    pipe = HighOrderDegradation(cfg, seed=0)
    params = pipe.sample(200)
    first = [p.first for p in params if p.first is not None]
    assert len(first) == 200
    assert len({p.noise.seed for p in first}) == 200
    assert {p.resize.direction for p in first} == {"up", "down", "keep"}
    for o in first:
        lo, hi = cfg.first_order.resize.range
        assert lo <= o.resize.factor <= hi
        assert o.jpeg_quality is not None and 30 <= o.jpeg_quality <= 95
        rng = cfg.first_order.noise.gaussian_sigma if o.noise.kind == "gaussian" else cfg.first_order.noise.poisson_scale
        assert rng[0] <= o.noise.level <= rng[1]
    second_blurred = sum(p.second is not None and p.second.kernel is not None for p in params) / 200
    assert second_blurred == pytest.approx(0.8, abs=0.08)
    sinc = sum(p.final.sinc.kind == "sinc" for p in params) / 200
    assert sinc == pytest.approx(0.8, abs=0.08)
    assert sum(p.final.resize_first for p in params) / 200 == pytest.approx(0.5, abs=0.1)
    assert sum(p.codec is not None for p in params) / 200 == pytest.approx(cfg.codec.prob, abs=0.1)


def test_codec_in_place_of_the_final_jpeg_on_synthesised_clips(hr: torch.Tensor, cfg: DegradationConfig) -> None:
    lr, params = HighOrderDegradation(with_codec(cfg, 1.0, "final"), seed=5)(hr, 4)
    assert lr.shape == (4, 3, 16, 16)
    for p in map(SampleParams.from_dict, params):
        assert p.codec is not None and p.codec_place == "final"
        assert p.final.jpeg_quality is None
        assert p.motion is not None and p.motion.frames == cfg.codec.frames and 0 <= p.motion.ref < p.motion.frames


def test_codec_after_the_final_stage(hr: torch.Tensor, cfg: DegradationConfig) -> None:
    lr, params = HighOrderDegradation(with_codec(cfg, 1.0, "end"), seed=5)(hr, 4)
    assert lr.shape == (4, 3, 16, 16)
    for p in map(SampleParams.from_dict, params):
        assert p.codec_place == "end" and p.final.jpeg_quality is not None


def test_clips_keep_their_frames_which_share_parameters(hr: torch.Tensor, cfg: DegradationConfig) -> None:
    clips = torch.stack([hr[:3], hr[1:]])  # [2, 3, 3, 64, 64]
    lr, params = HighOrderDegradation(with_codec(cfg, 1.0), seed=2)(clips, 4)
    assert lr.shape == (2, 3, 3, 16, 16)
    assert all(p["motion"] is None and p["codec"] is not None for p in params)
    # A clip of one repeated frame: same parameters, but fresh noise per frame.
    still = hr[:1].expand(3, -1, -1, -1)[None]
    noisy, _ = HighOrderDegradation(with_codec(cfg, 0.0), seed=2)(still, 4)
    assert not torch.equal(noisy[0, 0], noisy[0, 1])
    assert ops.psnr(noisy[0, :1], noisy[0, 1:2]).item() > 20


def test_anime_config_degrades_less_but_compresses_more(hr: torch.Tensor) -> None:
    anime = load_config("anime_video")
    general = load_config("realesrgan_video")
    assert anime.first_order.blur.sigma[1] < general.first_order.blur.sigma[1]
    assert anime.first_order.noise.gaussian_sigma[1] < general.first_order.noise.gaussian_sigma[1]
    assert anime.codec.prob > general.codec.prob
    assert anime.codec.crf["libx264"][1] > general.codec.crf["libx264"][1]
    lr, _ = HighOrderDegradation(anime, seed=0)(hr, 2)
    assert lr.shape == (4, 3, 32, 32)


def test_bad_inputs_are_refused(hr: torch.Tensor, cfg: DegradationConfig) -> None:
    pipe = HighOrderDegradation(cfg, seed=0)
    with pytest.raises(InputError):
        pipe(hr[..., :63], 4)
    with pytest.raises(InputError):
        pipe((hr * 255).to(torch.uint8), 4)
    with pytest.raises(OptionError):
        pipe.apply(hr, pipe.sample(3), scale=4)
    with pytest.raises(OptionError):
        HighOrderDegradation(cfg, seed=0, generator=torch.Generator())
