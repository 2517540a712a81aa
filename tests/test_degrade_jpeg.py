"""The device JPEG (pure torch) against libjpeg itself, on real crops: the issue's bar, and more."""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from vidsr.degrade import HighOrderDegradation, load_config, ops
from vidsr.degrade.torch_jpeg import jpeg_torch, quant_tables
from vidsr.errors import OptionError
from vidsr.yaml_config import to_plain

QUALITIES = (30, 50, 70, 95)


@pytest.fixture(scope="module")
def crops(media: Path) -> torch.Tensor:
    """Twelve 64x64 crops of real anime frames and photographs, ``[12, 3, 64, 64]`` float in [0, 1]."""
    out = []
    for path in sorted((media / "images").glob("*/*")):
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"))
        h, w = arr.shape[:2]
        for top, left in ((h // 3, w // 3), (h // 2, 2 * w // 3)):
            out.append(torch.from_numpy(arr[top:top + 64, left:left + 64].copy()).permute(2, 0, 1))
    return torch.stack(out[:12]).float() / 255


def pillow_jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Pillow's libjpeg round trip (its defaults: baseline, 4:2:0, islow DCT, fancy upsampling)."""
    out = []
    for img in (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as dec:
            out.append(torch.from_numpy(np.asarray(dec.convert("RGB")).copy()))
    return torch.stack(out).permute(0, 3, 1, 2).float() / 255


def test_device_jpeg_matches_libjpeg_on_real_crops(crops: torch.Tensor) -> None:
    for q in QUALITIES:
        ours = jpeg_torch(crops, q)
        for reference, theirs in (("torchvision", ops.jpeg(crops, q, codec="libjpeg")),
                                  ("pillow", pillow_jpeg(crops, q))):
            between = ops.psnr(ours, theirs)
            assert between.mean() >= 35 and between.min() >= 35, (reference, q, between.tolist())
            # and both damage the clean crop alike
            loss_ours, loss_theirs = ops.psnr(ours, crops).mean(), ops.psnr(theirs, crops).mean()
            assert abs(loss_ours - loss_theirs) <= 0.5, (reference, q, loss_ours.item(), loss_theirs.item())
            # More than the bar: libjpeg's integer DCTs and rounding give libjpeg-turbo's very pixels.
            assert (ours == theirs).float().mean() >= 0.999, (reference, q)
        assert ops.psnr(ours, crops).mean() < 45  # it is lossy: not a comparison of two copies of the input


def test_odd_sizes_and_per_image_qualities(crops: torch.Tensor) -> None:
    odd = crops[:4, :, :37, :53].contiguous()
    qs = [30, 95, 50, 70]
    ours = jpeg_torch(odd, qs)
    assert ours.shape == odd.shape and torch.equal((ours * 255).round() / 255, ours)
    for i, q in enumerate(qs):
        assert torch.equal(ours[i:i + 1], jpeg_torch(odd[i:i + 1], q))  # a batch changes nothing
        theirs = pillow_jpeg(odd[i:i + 1], q)
        assert ops.psnr(ours[i:i + 1], theirs).item() >= 35, q
    # the same crop at quality 30 is much worse than at 95
    assert ops.psnr(ours[0:1], odd[0:1]) < ops.psnr(jpeg_torch(odd[0:1], 95), odd[0:1]) - 3


def test_quantisation_tables_are_libjpegs() -> None:
    for q in (5, 30, 50, 75, 95, 100):
        buf = io.BytesIO()
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, "JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf) as img:
            tables = img.quantization  # type: ignore[attr-defined]
        ours = quant_tables(torch.tensor([q]))[0]
        assert [list(tables[0]), list(tables[1])] == [ours[0].flatten().tolist(), ours[1].flatten().tolist()], q


def test_the_pipeline_uses_the_configured_codec(crops: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counted(x: torch.Tensor, quality: object) -> torch.Tensor:
        calls.append(x.shape[0])
        return jpeg_torch(x, quality)  # type: ignore[arg-type]

    monkeypatch.setattr(ops, "jpeg_torch", counted)
    cfg = load_config("realesrgan_video")
    cfg = dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, prob=0.0))
    assert cfg.jpeg == "auto"
    outs, used = {}, {}
    for codec in ("torch", "libjpeg", "auto"):
        calls.clear()
        with HighOrderDegradation(dataclasses.replace(cfg, jpeg=codec), seed=4, codec_workers=1) as deg:
            outs[codec], _ = deg(crops[:4], scale=4)
        used[codec] = sum(calls)
    assert used["torch"] >= 4 and used["libjpeg"] == 0 and used["auto"] == 0  # auto on a CPU: libjpeg-turbo
    assert torch.equal(outs["torch"], outs["libjpeg"]) and torch.equal(outs["auto"], outs["libjpeg"])


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="quality"):
        jpeg_torch(torch.rand(2, 3, 8, 8), [50, 0])
    with pytest.raises(OptionError, match="qualities"):
        jpeg_torch(torch.rand(2, 3, 8, 8), [50, 60, 70])
    with pytest.raises(OptionError, match="3, H, W"):
        jpeg_torch(torch.rand(2, 1, 8, 8), 50)
    with pytest.raises(OptionError, match="codec"):
        ops.jpeg(torch.rand(1, 3, 8, 8), 50, codec="nvjpeg")  # type: ignore[arg-type]
    plain = to_plain(load_config("anime_video"))
    plain["jpeg"] = "nvjpeg"
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(plain))
    with pytest.raises(OptionError, match="jpeg must be one of"):
        load_config(tmp_path / "bad.yml")
