"""The batched pipeline (``draw: per_batch``): what a batch shares, replay, and its batched operations.

Determinism, exact replay of recorded parameters (codec included), codec placement and
clips are also run in this mode by test_degrade_pipeline.py, whose config fixture
covers both draw modes.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from degrade_by_hand import degrade_by_hand

from vidsr.bench import OpCounter
from vidsr.degrade import HighOrderDegradation, SampleParams, _batched, load_config, ops
from vidsr.degrade._batched import _blur as batched_blur
from vidsr.degrade._batched import _Frames, add_noise
from vidsr.degrade.degradation_config import DegradationConfig
from vidsr.degrade.high_order import NoiseParams, OrderParams, _noise
from vidsr.degrade.kernels import KernelParams, make_kernel, make_kernels, random_kernel_params_batch


@pytest.fixture(scope="module")
def hr(media: Path) -> torch.Tensor:
    """Eight 64x64 crops of a real anime background and a real photograph, ``[8, 3, 64, 64]``."""
    crops = []
    for path in (media / "images" / "anime" / "bg_meadow.jpg",
                 media / "images" / "photo" / "lomiri1604_Bridge_by_Sander_Klootwijk.jpg"):
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB").resize((256, 144), Image.BICUBIC))
        t = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255
        crops += [t[:, :64, :64], t[:, 64:128, :64], t[:, :64, 128:192], t[:, 80:144, 192:256]]
    return torch.stack(crops)


@pytest.fixture(scope="module")
def cfg() -> DegradationConfig:
    c = load_config("realesrgan_video")
    assert c.draw == "per_batch"
    return c


def with_codec(cfg: DegradationConfig, prob: float, place: str = "final") -> DegradationConfig:
    return dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, prob=prob, place=place))


def test_a_batch_shares_its_resizes_noise_kind_and_final_order(cfg: DegradationConfig) -> None:
    n = 300
    params = HighOrderDegradation(cfg, seed=0).sample(n)
    for order, oc in (("first", cfg.first_order), ("second", cfg.second_order)):
        orders: list[OrderParams] = [getattr(p, order) for p in params]
        assert len({o.resize for o in orders}) == 1  # direction, factor and mode
        assert len({o.noise.kind for o in orders}) == 1
        # Per sample: seeds, levels within the kind's range, gray noise, kernels, JPEG qualities.
        assert len({o.noise.seed for o in orders}) == n
        kind = orders[0].noise.kind
        lo, hi = oc.noise.gaussian_sigma if kind == "gaussian" else oc.noise.poisson_scale
        levels = [o.noise.level for o in orders]
        assert all(lo <= v <= hi for v in levels) and len(set(levels)) == n
        assert sum(o.noise.gray for o in orders) / n == pytest.approx(oc.noise.gray_prob, abs=0.08)
        assert sum(o.kernel is not None for o in orders) / n == pytest.approx(oc.blur.prob, abs=0.08)
        assert len({o.kernel for o in orders if o.kernel is not None}) > n // 2
        if oc.jpeg_quality is not None:
            qs = [o.jpeg_quality for o in orders]
            assert all(oc.jpeg_quality[0] <= q <= oc.jpeg_quality[1] for q in qs)  # type: ignore[operator]
            assert len(set(qs)) > 20
    assert len({(p.final.resize_first, p.final.mode) for p in params}) == 1
    assert sum(p.final.sinc.kind == "sinc" for p in params) / n == pytest.approx(cfg.final.sinc_prob, abs=0.08)
    assert sum(p.codec is not None for p in params) / n == pytest.approx(cfg.codec.prob, abs=0.08)
    for p in params:
        assert (p.final.jpeg_quality is None) == (p.codec is not None and p.codec_place == "final")
        assert (p.motion is not None) == (p.codec is not None)


def test_batch_draws_follow_the_config_across_batches(cfg: DegradationConfig) -> None:
    pipe = HighOrderDegradation(cfg, seed=1)
    batches = [pipe.sample(2) for _ in range(600)]
    assert all(b[0].first.resize == b[1].first.resize for b in batches)  # type: ignore[union-attr]
    firsts = [b[0].first for b in batches]
    for direction, prob in cfg.first_order.resize.probs.items():
        share = sum(o.resize.direction == direction for o in firsts) / len(firsts)  # type: ignore[union-attr]
        assert share == pytest.approx(prob, abs=0.06), direction
    lo, hi = cfg.first_order.resize.range
    for o in firsts:
        assert o is not None
        f = o.resize.factor
        assert {"up": 1 <= f <= hi, "down": lo <= f <= 1, "keep": f == 1}[o.resize.direction]
    gaussian = sum(o.noise.kind == "gaussian" for o in firsts)  # type: ignore[union-attr]
    assert gaussian / 600 == pytest.approx(0.5, abs=0.07)
    assert sum(b[0].final.resize_first for b in batches) / 600 == pytest.approx(0.5, abs=0.07)
    assert {b[0].final.mode for b in batches} == set(cfg.final.modes)


def test_recorded_params_rebuilt_by_hand(hr: torch.Tensor, cfg: DegradationConfig) -> None:
    """Each LR image rebuilt from its own recorded parameters with the single-image operations."""
    lr, raw = HighOrderDegradation(with_codec(cfg, 0.0), seed=4)(hr, 4)
    for i, p in enumerate(map(SampleParams.from_dict, raw)):
        x = degrade_by_hand(hr[i:i + 1], p, (16, 16))
        # The batch pads its kernels to one size: float rounding may move a level here and there.
        assert ops.psnr(ops.quantize(x), lr[i:i + 1]).item() > 40, i


def test_a_sample_degrades_alike_in_any_batch(hr: torch.Tensor, cfg: DegradationConfig) -> None:
    pipe = HighOrderDegradation(with_codec(cfg, 0.5), seed=6)
    lr, params = pipe(hr, 4)
    assert any(p["codec"] is not None for p in params) and any(p["codec"] is None for p in params)
    reordered = pipe.apply(hr.flip(0), params[::-1], scale=4).flip(0)
    alone = torch.cat([pipe.apply(hr[i:i + 1], params[i:i + 1], scale=4) for i in range(len(params))])
    for other in (reordered, alone):
        assert ops.psnr(other, lr).min().item() > 40


def test_per_sample_draws_through_the_batched_path_equal_the_per_sample_pipeline(
        hr: torch.Tensor, cfg: DegradationConfig) -> None:
    """Samples that share nothing are degraded one group each, exactly as the per-sample pipeline does."""
    per_sample = with_codec(dataclasses.replace(cfg, draw="per_sample"), 0.5)
    params = HighOrderDegradation(per_sample, seed=2).sample(len(hr))
    expected = HighOrderDegradation(per_sample, seed=0).apply(hr, params, scale=4)
    got = HighOrderDegradation(with_codec(cfg, 0.5), seed=0).apply(hr, params, scale=4)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("method", ["conv", "fft"])
def test_blur_with_a_batch_of_kernels_equals_per_sample_blur(hr: torch.Tensor, method: str) -> None:
    cfg = load_config("realesrgan_video").first_order.blur
    params = random_kernel_params_batch(torch.Generator().manual_seed(3), cfg, len(hr))
    assert len({p.size for p in params}) > 1
    stack = make_kernels(params).float()  # zero-padded to the largest side
    batched = ops.blur(hr, stack, method=method)
    for i, p in enumerate(params):
        single = ops.blur(hr[i:i + 1], make_kernel(p, pad_to=None).float())
        assert (batched[i:i + 1] - single).abs().max().item() < 1e-6, (i, p.kind, p.size)


def test_blur_of_samples_with_several_frames_and_no_kernel(hr: torch.Tensor) -> None:
    counts = [3, 1, 2, 2]
    frames = _Frames(counts, hr.device)
    x = hr[:sum(counts)]
    kernels: list[KernelParams | None] = [KernelParams(kind="iso", size=7, sigma_x=1.0, sigma_y=1.0, theta=0.0), None,
                                          KernelParams(kind="sinc", size=13, omega=math.pi / 3),
                                          KernelParams(kind="pulse", size=21)]
    out = batched_blur(x, frames, kernels)
    for i, k in enumerate(kernels):
        sl = slice(frames.starts[i], frames.starts[i] + counts[i])
        if k is None or k.kind == "pulse":
            assert torch.equal(out[sl], x[sl])
        else:
            expected = ops.blur(x[sl], make_kernel(k, pad_to=None).float()).clamp(0, 1)
            assert (out[sl] - expected).abs().max().item() < 1e-6
    # Samples with equal frame counts go as images of T*C channels, one kernel each.
    even = _Frames([2, 2, 2], hr.device)
    ks = kernels[:1] * 3
    assert (batched_blur(x[:6], even, ks) - batched_blur(x[:6], _Frames([1] * 6, hr.device), ks * 2)).abs().max() < 1e-6


def test_batched_noise_is_each_samples_own_noise(hr: torch.Tensor) -> None:
    """The same noise, bit for bit, as the per-sample pipeline draws from each recorded seed."""
    counts = [2, 1, 3, 1, 1]
    frames = _Frames(counts, hr.device)
    x = hr[:sum(counts)]
    noises = [NoiseParams(kind="gaussian", level=12.0, gray=False, seed=1),
              NoiseParams(kind="poisson", level=1.5, gray=True, seed=2),
              NoiseParams(kind="poisson", level=0.7, gray=False, seed=3),
              NoiseParams(kind="gaussian", level=4.0, gray=True, seed=4),
              NoiseParams(kind="poisson", level=2.0, gray=False, seed=5)]
    for subset in (noises, [n for n in noises if n.kind == "gaussian"], [n for n in noises if n.kind == "poisson"]):
        idx = [noises.index(n) for n in subset]
        fr = _Frames([counts[i] for i in idx], hr.device)
        xs = torch.cat([x[frames.starts[i]:frames.starts[i] + counts[i]] for i in idx])
        out = add_noise(xs, fr, subset)
        for j, n in enumerate(subset):
            sl = slice(fr.starts[j], fr.starts[j] + fr.counts[j])
            assert torch.equal(out[sl], _noise(xs[sl], n)), n


def test_batched_gaussian_noise_variance_is_sigma_squared() -> None:
    x = torch.full((4, 3, 128, 128), 0.5)
    sigmas = [2.0, 5.0, 10.0, 20.0]
    gray = [False, True, False, True]
    noises = [NoiseParams(kind="gaussian", level=s, gray=g, seed=10 + i) for i, (s, g) in enumerate(zip(sigmas, gray))]
    d = add_noise(x, _Frames([1] * 4, x.device), noises) - x
    var = d.reshape(4, -1).var(dim=1)
    assert torch.allclose(var, (torch.tensor(sigmas) / 255) ** 2, rtol=0.05)
    for i, g in enumerate(gray):
        if g:
            assert torch.equal(d[i, 0], d[i, 1]) and torch.equal(d[i, 1], d[i, 2])
        else:
            assert torch.corrcoef(d[i].reshape(3, -1))[0, 1].abs() < 0.05


def test_mixed_batches_of_stills_and_clips_and_threads_change_nothing(hr: torch.Tensor,
                                                                     cfg: DegradationConfig) -> None:
    c = with_codec(cfg, 0.5)
    still = [True, False] * 4
    params = HighOrderDegradation(c, seed=8).sample(8, still=still)
    for p, s in zip(params, still):
        assert (p.motion is not None) == (s and p.codec is not None)
    # The trainer's split: stills and codec-free samples as images, the codec's clips as clips.
    images = [i for i, p in enumerate(params) if still[i] or p.codec is None]
    clips = [i for i in range(8) if i not in images]
    assert images and clips
    clip_hr = torch.stack([torch.stack([hr[(i + t) % 8] for t in range(3)]) for i in clips])
    for place in ("final", "end"):
        cp = with_codec(cfg, 0.5, place)
        outs = []
        for workers in (1, 3):
            with HighOrderDegradation(cp, seed=8, codec_workers=workers) as pipe:
                ps = pipe.sample(8, still=still)
                a = pipe.apply(hr[images], [ps[i] for i in images], scale=4)
                b = pipe.apply(clip_hr, [ps[i] for i in clips], scale=4)
            outs.append((a, b))
        assert outs[0][0].shape == (len(images), 3, 16, 16) and outs[0][1].shape == (len(clips), 3, 3, 16, 16)
        assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_per_sample_draws_of_a_whole_batch_equal_draws_one_by_one(cfg: DegradationConfig) -> None:
    per_sample = dataclasses.replace(cfg, draw="per_sample")
    still = [True, False, True, True, False]
    at_once = HighOrderDegradation(per_sample, seed=5).sample(5, still=still)
    pipe = HighOrderDegradation(per_sample, seed=5)
    assert at_once == [pipe.sample(1, still=s)[0] for s in still]


def test_the_batched_mode_dispatches_far_fewer_operations(hr: torch.Tensor, cfg: DegradationConfig) -> None:
    """The point of the mode: on a GPU, every operation is a kernel launch paid on the host."""
    counts = {}
    for mode in ("per_sample", "per_batch"):
        pipe = HighOrderDegradation(with_codec(dataclasses.replace(cfg, draw=mode), 0.0), seed=0)
        counter = OpCounter()
        with counter:
            for _ in range(3):
                pipe(torch.cat([hr, hr]), 4)
        counts[mode] = counter.count
    assert counts["per_batch"] * 3 < counts["per_sample"], counts


def test_cpu_pieces_change_nothing_but_memory(hr: torch.Tensor, cfg: DegradationConfig,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = HighOrderDegradation(with_codec(cfg, 0.5), seed=9)
    params = pipe.sample(len(hr))
    whole = pipe.apply(hr, params, scale=4)
    monkeypatch.setattr(_batched, "_CPU_CHUNK_BYTES", 3 * 64 * 64 * 4 * 3)  # 3 frames a piece
    pieces = pipe.apply(hr, params, scale=4)
    assert torch.equal(pieces, pipe.apply(hr, params, scale=4))
    # Pieces pad their kernels to their own largest size: at most float rounding apart.
    assert ops.psnr(pieces, whole).min().item() > 40
