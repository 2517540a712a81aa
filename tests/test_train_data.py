"""Training data: patches, video clips, the degradation feed and its pool, the discriminator, metrics."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vidsr.degrade import HighOrderDegradation, load_config
from vidsr.errors import InputNotFoundError, OptionError
from vidsr.train import UNetDiscriminatorSN, load_train_config, psnr_y, ssim_y
from vidsr.train.data import PatchSampler, VideoSource, find_media, make_sources, split_holdout
from vidsr.train.degrade_feed import DegradationFeed, ShufflePool, degrade_patches
from vidsr.train.train_config import CONFIG_DIR

# torchvision 0.29 deprecates its image codecs (the trainer filters this for the process; pytest re-enables it)
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


TINY_DEGRADE = CONFIG_DIR / "degrade" / "tiny_test.yml"


def _sampler(files: list[Path], **changes) -> PatchSampler:  # type: ignore[no-untyped-def]
    cfg = dataclasses.replace(load_train_config("tiny_test").data, **changes)
    return PatchSampler(make_sources(files, cache_images=True), cfg)


def test_patches_are_a_pure_function_of_their_key(media: Path) -> None:
    files = find_media([media / "images" / "anime"])
    sampler = _sampler(files)
    a, b, c = sampler.sample((0, 0, 5, 1)), sampler.sample((0, 0, 5, 1)), sampler.sample((0, 0, 5, 2))
    assert a.frames.shape == (1, 3, 32, 32) and a.frames.dtype == torch.uint8
    assert torch.equal(a.frames, b.frames) and a.source == b.source
    assert not torch.equal(a.frames, c.frames)


def test_flips_come_from_the_same_crops(media: Path) -> None:
    files = [media / "images" / "anime" / "bg_club.jpg"]
    plain = _sampler(files, hflip=False, rot90=False)
    flipped = _sampler(files, hflip=True, rot90=True)
    seen_flip = 0
    for i in range(12):
        x, y = plain.sample((1, i)).frames[0], flipped.sample((1, i)).frames[0]
        variants = [x.flip(-1), x.flip(-2), x.transpose(-1, -2), x.flip(-1).flip(-2), x.flip(-1).transpose(-1, -2),
                    x.flip(-2).transpose(-1, -2), x.flip(-1).flip(-2).transpose(-1, -2)]
        assert torch.equal(y, x) or any(torch.equal(y, v) for v in variants)
        seen_flip += not torch.equal(y, x)
    assert seen_flip > 0


def test_transparent_sprites_are_composited_over_white(media: Path) -> None:
    files = [media / "images" / "anime" / "sylvie_green_smile.png"]
    img = make_sources(files, cache_images=False)[0].pixels()  # type: ignore[attr-defined]
    assert img.shape[0] == 3 and torch.equal(img[:, 0, 0], torch.tensor([255, 255, 255], dtype=torch.uint8))


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_video_clips_are_consecutive_frames(media: Path, backend: str) -> None:
    if backend == "decord":
        pytest.importorskip("decord")
    src = VideoSource(media / "videos" / "flat2d_480x352_aac_10s.mp4", backend=backend)
    clip = src.clip(40, 3)
    assert clip.shape == (3, 3, 352, 480) and clip.dtype == torch.uint8
    assert torch.equal(src.clip(41, 2), clip[1:])  # frame 41 is the clip's second frame
    assert not torch.equal(clip[0], clip[2])
    tail = src.clip(298, 4)  # 300 frames: the last one is held past the end
    assert torch.equal(tail[2], tail[3]) and torch.equal(tail[1], src.clip(299, 1)[0])


def test_decord_and_pyav_read_the_same_frames(media: Path) -> None:
    pytest.importorskip("decord")
    path = media / "videos" / "bikes_640x272_3s.mp4"
    assert torch.equal(VideoSource(path, backend="decord").clip(100, 3), VideoSource(path, backend="pyav").clip(100, 3))


def test_holdout_names_must_exist(media: Path) -> None:
    files = find_media([media / "images" / "anime"])
    train, held = split_holdout(files, ["bg_meadow.jpg", "sylvie_blue_smile"])
    assert sorted(p.name for p in held) == ["bg_meadow.jpg", "sylvie_blue_smile.png"]
    assert len(train) == len(files) - 2 and not set(train) & set(held)
    with pytest.raises(OptionError, match="nothing.png"):
        split_holdout(files, ["nothing.png"])
    with pytest.raises(InputNotFoundError):
        find_media([media / "no_such_folder"])


def test_video_patches_with_the_codec_stage_go_through_as_clips(media: Path) -> None:
    sampler = _sampler([media / "videos" / "flat2d_480x352_aac_10s.mp4"])
    patches = [sampler.sample((3, i)) for i in range(4)]
    assert all(p.frames.shape == (3, 3, 32, 32) and p.ref == 1 for p in patches)
    cfg = load_config(TINY_DEGRADE)
    cfg = dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, prob=1.0))
    with HighOrderDegradation(cfg, seed=0, codec_workers=1) as deg:
        gt, lr = degrade_patches(deg, patches, scale=4, device=torch.device("cpu"))
    assert gt.shape == (4, 3, 32, 32) and lr.shape == (4, 3, 8, 8) and lr.dtype == torch.uint8
    assert all(torch.equal(g, p.frames[p.ref]) for g, p in zip(gt, patches))


def test_feed_batches_do_not_depend_on_threads(media: Path) -> None:
    sampler = _sampler(find_media([media / "images" / "anime"]))
    cfg = load_config(TINY_DEGRADE)
    out = []
    for threads in (1, 2):
        with DegradationFeed(sampler, cfg, scale=4, chunk=2, device=torch.device("cpu"), seed=3, threads=threads,
                             codec_workers=2, prefetch=3, load_threads=2) as feed:
            out.append([feed.next() for _ in range(3)])
    for (g1, l1), (g2, l2) in zip(*out):
        assert torch.equal(g1, g2) and torch.equal(l1, l2)
    assert not torch.equal(out[0][0][0], out[0][1][0])


def test_shuffle_pool_mixes_and_keeps_every_sample_once() -> None:
    pool = ShufflePool(8, seed=0)
    for i in range(4):
        pool.add(torch.full((2, 1, 1, 1), i, dtype=torch.uint8), torch.full((2, 1, 1, 1), i, dtype=torch.uint8))
    seen = []
    for i in range(4, 12):
        gt, lr = pool.swap(torch.full((2, 1, 1, 1), i, dtype=torch.uint8),
                           torch.full((2, 1, 1, 1), i, dtype=torch.uint8), batch=2)
        assert torch.equal(gt, lr)
        seen += gt.flatten().tolist()
    assert sorted(seen + pool.gt.flatten().tolist()) == sorted([i for i in range(12) for _ in range(2)])
    assert seen != sorted(seen)  # batches mix samples from different times


def test_discriminator_judges_every_pixel_with_official_names() -> None:
    d = UNetDiscriminatorSN(3, num_feat=8)
    out = d(torch.rand(2, 3, 32, 48))
    assert out.shape == (2, 1, 32, 48)
    keys = set(d.state_dict())
    assert {"conv0.weight", "conv1.weight_orig", "conv1.weight_u", "conv1.weight_v", "conv9.bias"} <= keys
    with pytest.raises(ValueError, match="multiples of 8"):
        d(torch.rand(1, 3, 30, 32))


def test_psnr_and_ssim_on_y() -> None:
    torch.manual_seed(0)
    gt = torch.rand(2, 3, 32, 32)
    assert torch.all(ssim_y(gt, gt) > 0.9999)
    # a uniform offset of 0.01 in RGB moves Y by 0.01 * 219 on the 0..255 scale
    expected = 10 * torch.log10(torch.tensor(255.0**2 / (0.01 * 219) ** 2))
    assert torch.allclose(psnr_y((gt + 0.01), gt).float(), expected.expand(2), atol=1e-3)
    # noise: Y's sigma is 0.01 * |(65.481, 128.553, 24.966)| = 1.46 levels, so about 44.8 dB
    smooth = F.interpolate(torch.rand(2, 3, 4, 4), size=(32, 32), mode="bilinear", align_corners=False)
    little, lot = ((smooth + s * torch.randn_like(smooth)).clamp(0, 1) for s in (0.01, 0.1))
    assert torch.allclose(psnr_y(little, smooth, 4).float(), torch.tensor([44.8, 44.8]), atol=0.5)
    assert torch.all(ssim_y(little, smooth) > 0.98) and torch.all(ssim_y(lot, smooth) < 0.7)
