"""Degradation operations: blur, resize, noise, JPEG, USM, on small tensors and real photos."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vidsr.degrade import ops
from vidsr.degrade.kernels import gaussian_kernel, pulse_kernel, sinc_kernel
from vidsr.errors import OptionError


@pytest.fixture(scope="module")
def photos(media: Path) -> torch.Tensor:
    """Four 128x128 crops of real photographs, ``[4, 3, 128, 128]`` float in [0, 1]."""
    crops = []
    for name in ("lomiri1604_Wine_by_Jakkub_Mede.jpg", "lomiri1604_Bridge_by_Sander_Klootwijk.jpg"):
        with Image.open(media / "images" / "photo" / name) as img:
            arr = np.asarray(img.convert("RGB").resize((256, 256 * img.height // img.width), Image.BICUBIC))
        t = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255
        crops += [t[:, :128, :128], t[:, -128:, -128:]]
    return torch.stack(crops)


def test_blur_lowers_high_frequency_energy_of_real_images(photos: torch.Tensor) -> None:
    before = ops.high_frequency_energy(photos)
    after = ops.high_frequency_energy(ops.blur(photos, gaussian_kernel(13, 2.0).float()))
    assert after.shape == before.shape == (4,)
    assert (after < 0.25 * before).all()
    assert ops.blur(photos, gaussian_kernel(13, 2.0).float()).shape == photos.shape


def test_blur_per_sample_kernels_match_single_calls_and_pulse_is_identity(photos: torch.Tensor) -> None:
    kernels = torch.stack([gaussian_kernel(21, s).float() for s in (0.5, 1.0, 2.0, 3.0)])
    batched = ops.blur(photos, kernels)
    for i in range(4):
        assert torch.allclose(batched[i:i + 1], ops.blur(photos[i:i + 1], kernels[i]), atol=1e-6)
    assert torch.allclose(ops.blur(photos, pulse_kernel(21).float()), photos, atol=1e-6)
    # Small kernels take the direct-convolution path and must agree with the FFT path.
    small, big = gaussian_kernel(7, 1.0).float(), F.pad(gaussian_kernel(7, 1.0).float(), (2, 2, 2, 2))
    assert torch.allclose(ops.blur(photos, small), ops.blur(photos, big), atol=1e-5)


def test_blur_of_tiny_images_falls_back_to_edge_padding() -> None:
    x = torch.rand(2, 3, 5, 6)
    y = ops.blur(x, sinc_kernel(21, 1.0).float())
    assert y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic"])
def test_resize_sizes_and_area_is_box_averaging(mode: str) -> None:
    x = torch.rand(2, 3, 32, 48)
    assert ops.resize(x, (17, 61), mode).shape == (2, 3, 17, 61)
    assert ops.resize(x, (8, 12), mode).shape == (2, 3, 8, 12)
    if mode == "area":
        assert torch.allclose(ops.resize(x, (16, 24), "area"), F.avg_pool2d(x, 2), atol=1e-6)
    with pytest.raises(OptionError):
        ops.resize(x, (0, 4), mode)


def test_gaussian_noise_raises_variance_by_sigma_squared() -> None:
    x = torch.full((2, 3, 128, 128), 0.5)
    g = torch.Generator().manual_seed(1)
    sigmas = torch.tensor([5.0, 20.0])
    y = ops.add_gaussian_noise(x, sigmas, gray=False, generator=g)
    var = (y - x).reshape(2, -1).var(dim=1)
    expected = (sigmas / 255) ** 2
    assert torch.allclose(var, expected, rtol=0.05)
    # Colour noise is independent per channel.
    d = (y - x)[0]
    assert torch.corrcoef(d.reshape(3, -1))[0, 1].abs() < 0.05


def test_gray_gaussian_noise_is_shared_by_the_channels() -> None:
    x = torch.full((2, 3, 64, 64), 0.5)
    g = torch.Generator().manual_seed(2)
    y = ops.add_gaussian_noise(x, 10.0, gray=[True, False], generator=g)
    d = y - x
    assert torch.equal(d[0, 0], d[0, 1]) and torch.equal(d[0, 1], d[0, 2])
    assert not torch.equal(d[1, 0], d[1, 1])
    assert d[0].var().item() == pytest.approx((10 / 255) ** 2, rel=0.1)


def test_gaussian_noise_is_clipped_and_reproducible_from_its_generator() -> None:
    x = torch.rand(1, 3, 32, 32)
    a = ops.add_gaussian_noise(x, 30.0, generator=torch.Generator().manual_seed(5))
    b = ops.add_gaussian_noise(x, 30.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1


def test_poisson_noise_grows_with_scale_and_keeps_the_mean(photos: torch.Tensor) -> None:
    x = photos[:1]
    stds = []
    for scale in (0.5, 2.0):
        y = ops.add_poisson_noise(x, scale, gray=False, generator=torch.Generator().manual_seed(3), clip=False)
        d = y - x
        stds.append(d.std().item())
        assert abs(d.mean().item()) < 0.01
    assert stds[1] == pytest.approx(4 * stds[0], rel=0.1)  # noise is scale times the shot noise
    gray = ops.add_poisson_noise(x, 1.0, gray=True, generator=torch.Generator().manual_seed(3), clip=False) - x
    # Luminance noise is one field added to every channel (up to the 8-bit rounding of each channel).
    assert torch.corrcoef(gray[0].reshape(3, -1))[0, 1] > 0.9


def test_poisson_noise_is_signal_dependent() -> None:
    dark, bright = torch.full((1, 3, 128, 128), 0.05), torch.full((1, 3, 128, 128), 0.8)
    g = torch.Generator().manual_seed(4)
    v_dark = (ops.add_poisson_noise(dark, 1.0, generator=g, clip=False) - dark).var()
    v_bright = (ops.add_poisson_noise(bright, 1.0, generator=g, clip=False) - bright).var()
    # Shot-noise variance is proportional to the intensity.
    assert (v_bright / v_dark).item() == pytest.approx(0.8 / 0.05, rel=0.25)


def test_lower_jpeg_quality_lowers_psnr_on_average(photos: torch.Tensor) -> None:
    scores = {q: ops.psnr(ops.jpeg(photos, q), photos).mean().item() for q in (20, 50, 90)}
    assert scores[20] < scores[50] < scores[90]
    assert scores[90] > 30


def test_jpeg_per_image_quality_odd_sizes_and_8bit_output(photos: torch.Tensor) -> None:
    out = ops.jpeg(photos, [30, 95, 30, 95])
    assert out.shape == photos.shape and out.dtype == photos.dtype
    assert torch.equal(out[0:1], ops.jpeg(photos[0:1], 30))
    assert torch.equal(out[1:2], ops.jpeg(photos[1:2], 95))
    assert torch.equal(out, ops.quantize(out))
    odd = ops.jpeg_many([photos[:2, :, :37, :21], photos[2:, :, :9, :50]], [40, 70])
    assert odd[0].shape == (2, 3, 37, 21) and odd[1].shape == (2, 3, 9, 50)
    with pytest.raises(OptionError):
        ops.jpeg(photos, 0)


def test_usm_sharpen_adds_detail_only_where_there_is_some(photos: torch.Tensor) -> None:
    sharp = ops.usm_sharpen(photos)
    assert sharp.shape == photos.shape
    assert sharp.min() >= 0 and sharp.max() <= 1
    assert (ops.high_frequency_energy(sharp) > ops.high_frequency_energy(photos)).all()
    flat = torch.full((1, 3, 64, 64), 0.3)
    assert torch.allclose(ops.usm_sharpen(flat), flat, atol=1e-6)


def test_psnr_and_quantize() -> None:
    x = torch.rand(2, 3, 8, 8)
    q = ops.quantize(x)
    assert torch.equal(q, ops.quantize(q))
    assert ((q * 255) - (q * 255).round()).abs().max() < 1e-4
    assert ops.psnr(q, x).min() > 48
