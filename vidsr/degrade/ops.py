"""Degradation operations on batched image tensors.

Every function here is pure: it takes images ``x`` of shape ``[N, C, H, W]`` (float,
values in [0, 1], any device) and returns a new tensor of the same dtype and device;
anything random comes from an explicit ``torch.Generator``. Per-sample parameters may be
a Python scalar (shared by all N images) or a length-N sequence/1-D tensor.

Nothing here imports PIL, so the module runs where only torch and torchvision exist.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Literal

import torch
import torch.nn.functional as F

from vidsr.degrade.torch_jpeg import jpeg_torch
from vidsr.errors import OptionError

ResizeMode = Literal["area", "bilinear", "bicubic", "nearest"]
PerSample = float | Sequence[float] | torch.Tensor

# ITU-R BT.601 luma weights, as torchvision's rgb_to_grayscale (which Real-ESRGAN uses).
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _check_images(x: torch.Tensor) -> None:
    if x.dim() != 4 or not x.is_floating_point():
        raise OptionError(f"expected float images [N, C, H, W], got {tuple(x.shape)} {x.dtype}")


def _per_sample(value: PerSample, n: int, like: torch.Tensor) -> torch.Tensor | float:
    """``value`` as an ``[n, 1, 1, 1]`` tensor on ``like``'s device and dtype; a Python number stays one.

    Keeping scalars on the host saves a host-to-device copy per call, which on a GPU is
    what per-sample operations cost most.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    elif t.numel() != n:
        raise OptionError(f"expected 1 or {n} per-sample values, got {t.numel()}")
    return t.reshape(n, 1, 1, 1)


def _pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    # Reflection (as cv2.filter2D and Real-ESRGAN) needs the pad smaller than the image;
    # tiny intermediate images fall back to edge replication rather than failing.
    h, w = x.shape[-2:]
    mode = "reflect" if max(pad[0], pad[1]) < w and max(pad[2], pad[3]) < h else "replicate"
    return F.pad(x, pad, mode=mode)


# From this kernel side on, FFT convolution beats direct convolution on CPUs: its cost does
# not grow with the kernel's k^2 taps. Not on GPUs: cuDNN is fast there, while cuFFT makes
# a new plan for every new image size, and degraded images come in many sizes.
_FFT_MIN_KERNEL = 9


def _smooth_size(n: int) -> int:
    """The smallest m >= n with no prime factor above 5: sizes FFTs are fast at."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


# Images per FFT call are capped so that a call's spectra (about this many bytes) stay in
# the CPU's caches: one call over a large batch is memory-bound, and was measured 1.3x
# (3 channels) to 2x (15) slower than the same work in cache-sized pieces.
_FFT_CHUNK_BYTES = 2 << 20


def _fft_blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Reflect-padded correlation of ``[N, C, H, W]`` with ``[k, k]`` or ``[N, k, k]`` kernels, by FFT."""
    n, c, h, w = x.shape
    pad = (kernel.shape[-1] // 2,) * 4
    per_image = c * _smooth_size(h + 2 * pad[0]) * _smooth_size(w + 2 * pad[0]) * x.element_size()
    step = max(1, _FFT_CHUNK_BYTES // per_image)
    if n <= step:
        return _fft_correlate(_pad(x, pad), kernel)
    out = torch.empty_like(x)
    for i in range(0, n, step):
        part = kernel if kernel.dim() == 2 else kernel[i:i + step]
        _fft_correlate(_pad(x[i:i + step], pad), part, out=out[i:i + step])
    return out


def _fft_correlate(xp: torch.Tensor, kernel: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Valid correlation of padded images ``[N, C, Hp, Wp]`` with ``[k, k]`` or ``[N, k, k]`` kernels."""
    k = kernel.shape[-1]
    hp, wp = xp.shape[-2:]
    fh, fw = _smooth_size(hp), _smooth_size(wp)
    # Correlation is convolution with the flipped kernel; circular wrap-around only touches
    # the first k - 1 rows and columns, which the valid crop drops.
    kf = torch.fft.rfft2(kernel.flip(-2, -1), s=(fh, fw))
    if kernel.dim() == 3:
        kf = kf[:, None]
    xf = torch.fft.rfft2(xp, s=(fh, fw))
    valid = torch.fft.irfft2(xf * kf, s=(fh, fw))[..., k - 1:hp, k - 1:wp]
    return valid.contiguous() if out is None else out.copy_(valid)


BlurMethod = Literal["auto", "conv", "fft"]


def blur(x: torch.Tensor, kernel: torch.Tensor, *, method: BlurMethod = "auto") -> torch.Tensor:
    """Convolve each image with a kernel, reflect-padded so the size is kept.

    x: ``[N, C, H, W]`` float. kernel: ``[k, k]`` shared by all images, or ``[N, k, k]``
    one per image (k odd; kernels of different sizes are zero-padded to one size, which
    changes nothing but the work). Kernels are applied as correlation, as cv2.filter2D
    does; the kernels of this package are all point-symmetric, so that is also a
    convolution. Per-image kernels run as one ``conv2d`` with ``groups=N*C`` on the batch
    reshaped to ``[1, N*C, H, W]`` (Real-ESRGAN's ``filter2D``), or as one batched FFT.
    ``method``: ``auto`` takes the FFT on CPUs for kernels of 9 taps a side and more.
    """
    _check_images(x)
    if method not in ("auto", "conv", "fft"):
        raise OptionError(f"blur method must be auto, conv or fft, got {method!r}")
    n, c, h, w = x.shape
    k = kernel.shape[-1]
    if k % 2 == 0 or kernel.shape[-2] != k or kernel.dim() not in (2, 3):
        raise OptionError(f"kernel must be [k, k] or [N, k, k] with an odd side, got {tuple(kernel.shape)}")
    if kernel.dim() == 3 and kernel.shape[0] != n:
        raise OptionError(f"got {kernel.shape[0]} kernels for {n} images")
    kernel = kernel.to(device=x.device, dtype=x.dtype)
    if method == "fft" or (method == "auto" and k >= _FFT_MIN_KERNEL and x.device.type == "cpu"):
        return _fft_blur(x, kernel)
    xp = _pad(x, (k // 2,) * 4)
    if kernel.dim() == 2:
        out = F.conv2d(xp.reshape(n * c, 1, *xp.shape[-2:]), kernel[None, None])
        return out.reshape(n, c, h, w)
    weight = kernel[:, None].repeat_interleave(c, dim=0)  # [n*c, 1, k, k]
    out = F.conv2d(xp.reshape(1, n * c, *xp.shape[-2:]), weight, groups=n * c)
    return out.reshape(n, c, h, w)


def resize(x: torch.Tensor, size: tuple[int, int], mode: ResizeMode) -> torch.Tensor:
    """Resize to ``size = (height, width)`` without antialiasing, as Real-ESRGAN does.

    ``area`` is average pooling when shrinking and nearest-neighbour when enlarging;
    bicubic may overshoot [0, 1], so callers clamp.
    """
    _check_images(x)
    if size[0] < 1 or size[1] < 1:
        raise OptionError(f"resize target must be at least 1x1, got {size}")
    if tuple(x.shape[-2:]) == tuple(size):
        return x.clone()
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(x, size=size, mode=mode, align_corners=False)
    if mode in ("area", "nearest"):
        return F.interpolate(x, size=size, mode=mode)
    raise OptionError(f"resize mode must be area, bilinear, bicubic or nearest, got {mode!r}")


def _gray_weights(gray: bool | Sequence[bool] | torch.Tensor, n: int, like: torch.Tensor) -> bool | torch.Tensor:
    """A Python bool (all or none gray, decided on the host) or an ``[n, 1, 1, 1]`` 0/1 tensor."""
    if isinstance(gray, bool):
        return gray
    flags = [bool(g) for g in (gray.reshape(-1).tolist() if isinstance(gray, torch.Tensor) else gray)]
    if len(flags) == 1:
        flags = flags * n
    if len(flags) != n:
        raise OptionError(f"expected 1 or {n} gray flags, got {len(flags)}")
    if all(flags) or not any(flags):
        return flags[0]
    return torch.tensor(flags, dtype=like.dtype, device=like.device).reshape(n, 1, 1, 1)


def _mix(gray_w: bool | torch.Tensor, colour: Callable[[], torch.Tensor],
         gray: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Per image, colour noise or one gray field for all channels; only the kinds in use are drawn."""
    if isinstance(gray_w, bool):
        return gray() if gray_w else colour()  # gray: [N, 1, H, W], broadcast over the channels
    return colour() * (1 - gray_w) + gray() * gray_w


def add_gaussian_noise(x: torch.Tensor, sigma: PerSample, gray: bool | Sequence[bool] | torch.Tensor = False,
                       *, generator: torch.Generator | None = None, clip: bool = True) -> torch.Tensor:
    """Add zero-mean Gaussian noise of standard deviation ``sigma / 255``.

    ``gray`` selects, per image, one noise field shared by all channels (luminance noise)
    instead of independent noise per channel. The generator must live on ``x``'s device.
    """
    _check_images(x)
    n, c, h, w = x.shape
    std = _per_sample(sigma, n, x) / 255.0
    gray_w = _gray_weights(gray, n, x)
    noise = _mix(gray_w,
                 lambda: torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype),
                 lambda: torch.randn((n, 1, h, w), generator=generator, device=x.device, dtype=x.dtype))
    out = x + noise * std
    return out.clamp(0, 1) if clip else out


def _distinct_levels(q: torch.Tensor) -> torch.Tensor:
    """Per image of ``q`` (values k/255), the number of distinct 8-bit levels, as ``[N]`` float."""
    n = q.shape[0]
    idx = (q.reshape(n, -1) * 255).round().long().clamp(0, 255)
    # Marking the levels present instead of torch.unique per image: a few kernels for the
    # batch and no wait for the device (bincount and unique both need one).
    present = torch.zeros(n, 256, dtype=torch.bool, device=q.device).scatter_(1, idx, True)
    return present.sum(dim=1).to(q.dtype)


def shot_noise_photons(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, photons)``: each image of ``img`` quantised to 8 bits, and its photon count per unit (``[N, 1, 1, 1]``).

    Shot noise is ``poisson(q * photons) / photons - q``. As Real-ESRGAN: the count is the
    next power of two above the image's number of distinct levels, so flat (few-level)
    images get relatively stronger noise.
    """
    q = (img * 255).round().clamp(0, 255) / 255
    vals = 2 ** torch.ceil(torch.log2(_distinct_levels(q).clamp(min=1)))
    return q, vals.reshape(-1, 1, 1, 1)


def _shot_noise(img: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Poisson noise of an image quantised to 8 bits, with Real-ESRGAN's photon count."""
    q, vals = shot_noise_photons(img)
    return torch.poisson(q * vals, generator=generator) / vals - q


def luma(x: torch.Tensor) -> torch.Tensor:
    """``[N, 1, H, W]`` BT.601 luma of RGB images (the mean of other channel counts)."""
    if x.shape[1] == 3:
        weights = torch.tensor(_GRAY_WEIGHTS, device=x.device, dtype=x.dtype).reshape(1, 3, 1, 1)
        return (x * weights).sum(dim=1, keepdim=True)
    return x.mean(dim=1, keepdim=True)


def add_poisson_noise(x: torch.Tensor, scale: PerSample, gray: bool | Sequence[bool] | torch.Tensor = False,
                      *, generator: torch.Generator | None = None, clip: bool = True) -> torch.Tensor:
    """Add Poisson (shot) noise multiplied by ``scale``, in colour or on luminance only."""
    _check_images(x)
    n = x.shape[0]
    s = _per_sample(scale, n, x)
    gray_w = _gray_weights(gray, n, x)
    noise = _mix(gray_w, lambda: _shot_noise(x, generator), lambda: _shot_noise(luma(x), generator))
    out = x + noise * s
    return out.clamp(0, 1) if clip else out


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float [0, 1] -> uint8, rounding to the nearest level."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to the 256 levels of 8-bit video, staying float in [0, 1]."""
    return (x * 255).round().clamp(0, 255) / 255


JpegCodec = Literal["auto", "torch", "libjpeg"]
JPEG_CODECS: tuple[str, ...] = ("auto", "torch", "libjpeg")


def _use_torch(codec: str, x: torch.Tensor) -> bool:
    """``auto``: the device JPEG where the images are on an accelerator, libjpeg-turbo (the same
    output, faster on a CPU) where they are on the CPU."""
    return codec == "torch" or (codec == "auto" and x.device.type != "cpu")


def jpeg_many(images: Sequence[torch.Tensor], qualities: Sequence[int], *, codec: JpegCodec = "auto",
              executor: Executor | None = None) -> list[torch.Tensor]:
    """JPEG-compress groups of images of any size, each group at its own quality.

    ``images[i]`` is ``[N_i, 3, H_i, W_i]`` float in [0, 1] on any device, compressed at
    ``qualities[i]``; results come back on the same device. ``codec``: ``torch``
    (:func:`vidsr.degrade.torch_jpeg.jpeg_torch`, on the images' device, one call per group),
    ``libjpeg`` (libjpeg-turbo on the CPU through torchvision; with an ``executor``, the
    images are encoded and decoded in its threads, which libjpeg-turbo runs without the
    GIL), or ``auto`` (default): ``torch`` for images on a GPU, ``libjpeg`` on the CPU.
    Both give the same pixels (``torch`` does libjpeg's integer arithmetic); what differs
    is where it runs and how fast: libjpeg-turbo's SIMD code is faster on a CPU, the
    tensor version saves a GPU the round trip to the host.

    Why a real codec's arithmetic and not Real-ESRGAN's differentiable approximation
    (DiffJPEG): the network must learn what real encoders do, with their colour
    conversion, 4:2:0 chroma subsampling, rounding and integer quality, and the trainer
    never back-propagates through the degradation, so differentiability buys nothing.

    Why not nvjpeg on CUDA: torchvision's CUDA encoder keeps full-resolution chroma
    (4:4:4). Measured on an H100, nvjpeg's output at quality 90 was 9 dB closer to the
    input than libjpeg's, so the same seed would have meant much milder JPEG damage on a
    GPU than on a CPU, and milder than the 4:2:0 JPEGs found in the wild.
    """
    if len(images) != len(qualities):
        raise OptionError(f"got {len(qualities)} qualities for {len(images)} image groups")
    _check_codec(codec)
    for x, q in zip(images, qualities):
        _check_jpeg_input(x, q)
    if all(_use_torch(codec, x) for x in images):
        return [jpeg_torch(x, int(q)) for x, q in zip(images, qualities)]
    if codec != "libjpeg":  # auto, some groups on the CPU: each where it is
        return [jpeg(x, int(q), codec=codec, executor=executor) for x, q in zip(images, qualities)]
    u8 = [to_uint8(x).cpu() for x in images]
    flat = [img for group in u8 for img in group.unbind(0)]
    qs = [int(q) for group, q in zip(u8, qualities) for _ in range(group.shape[0])]
    decoded = _round_trips(flat, qs, executor)
    out: list[torch.Tensor] = []
    i = 0
    for x in images:
        m = x.shape[0]
        out.append(torch.stack(decoded[i:i + m]).to(device=x.device, dtype=x.dtype) / 255 if m else x.clone())
        i += m
    return out


def _check_codec(codec: str) -> None:
    if codec not in JPEG_CODECS:
        raise OptionError(f"JPEG codec must be one of {list(JPEG_CODECS)}, got {codec!r}")


def _check_jpeg_input(x: torch.Tensor, quality: int) -> None:
    _check_images(x)
    if x.shape[1] != 3:
        raise OptionError(f"JPEG needs 3-channel images, got {x.shape[1]} channels")
    if not 1 <= int(quality) <= 100:
        raise OptionError(f"JPEG quality must be in [1, 100], got {quality}")


@functools.cache
def _jpeg_ops() -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    import torchvision.io  # noqa: F401  (loads torchvision's image operators)

    # The operators behind torchvision.io.encode_jpeg/decode_jpeg, called directly: those
    # wrappers warn (deprecated since torchvision 0.29) on every call, and filtering that
    # warning is process-wide state that encoder threads must not race on.
    return torch.ops.image.encode_jpeg, torch.ops.image.decode_jpeg


def _round_trip(image: torch.Tensor, quality: int) -> torch.Tensor:
    encode, decode = _jpeg_ops()
    return decode(encode(image, quality), 0, False)  # 0: ImageReadMode.UNCHANGED; no EXIF rotation


# Below this many pixels a round trip costs about what handing it to a thread does (measured
# on 2 cores: a break-even near 96x96, threads 1.5x faster at 128x128, serial 1.4x at 64x64).
_JPEG_THREAD_MIN_PIXELS = 96 * 96


def _round_trips(images: Sequence[torch.Tensor], qualities: Sequence[int],
                 executor: Executor | None) -> list[torch.Tensor]:
    """Encode and decode ``[3, H, W]`` uint8 CPU images, in ``executor``'s threads when worth it."""
    if executor is None or len(images) < 2 or images[0][0].numel() < _JPEG_THREAD_MIN_PIXELS:
        return [_round_trip(img, q) for img, q in zip(images, qualities)]
    return list(executor.map(_round_trip, images, qualities))


def jpeg(x: torch.Tensor, quality: int | Sequence[int], *, codec: JpegCodec = "auto",
         executor: Executor | None = None) -> torch.Tensor:
    """JPEG-compress each image of ``[N, 3, H, W]`` at a shared or per-image integer quality.

    ``codec="torch"``: the whole batch on its own device in one pass
    (:func:`vidsr.degrade.torch_jpeg.jpeg_torch`). ``codec="libjpeg"``: one conversion to 8 bits
    and one copy to the host for the batch, then one libjpeg-turbo round trip per image
    (in ``executor``'s threads if given), and one copy back. ``auto``: ``torch`` on a GPU,
    ``libjpeg`` on the CPU; the same pixels either way (see :func:`jpeg_many`).
    """
    _check_images(x)
    _check_codec(codec)
    n = x.shape[0]
    qs = [int(quality)] * n if isinstance(quality, (int, float)) else [int(q) for q in quality]
    if len(qs) != n:
        raise OptionError(f"expected 1 or {n} JPEG qualities, got {len(qs)}")
    if n == 0:
        return x.clone()
    for q in set(qs):
        _check_jpeg_input(x, q)
    if _use_torch(codec, x):
        return jpeg_torch(x, qs)
    decoded = _round_trips(to_uint8(x).cpu().unbind(0), qs, executor)
    return torch.stack(decoded).to(device=x.device, dtype=x.dtype) / 255


def _gaussian_1d(radius: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    ax = torch.arange(radius, dtype=torch.float64) - radius // 2
    k = torch.exp(-0.5 * (ax / sigma) ** 2)
    return (k / k.sum()).to(device=like.device, dtype=like.dtype)


def _banded(k1d: torch.Tensor, out_len: int) -> torch.Tensor:
    """``[out_len + k - 1, out_len]`` matrix M with ``(x @ M)[j] = sum_i x[j + i] k1d[i]``."""
    k = k1d.numel()
    m = torch.zeros(out_len + k - 1, out_len, device=k1d.device, dtype=k1d.dtype)
    rows = torch.arange(out_len, device=k1d.device)[None, :] + torch.arange(k, device=k1d.device)[:, None]
    cols = torch.arange(out_len, device=k1d.device)[None, :].expand(k, out_len)
    m[rows, cols] = k1d[:, None].expand(k, out_len)
    return m


def _separable_blur(x: torch.Tensor, k1d: torch.Tensor) -> torch.Tensor:
    # A 1-D pass as a product with a banded matrix: more arithmetic than a convolution, but
    # BLAS runs it several times faster than conv2d runs a single-channel 51-tap kernel.
    n, c, h, w = x.shape
    r = k1d.numel() // 2
    xp = _pad(x, (r, r, r, r))
    y = xp @ _banded(k1d, w)  # [n, c, h + 2r, w]
    return _banded(k1d, h).transpose(0, 1) @ y


def usm_sharpen(x: torch.Tensor, *, radius: int = 50, sigma: float = 0.0, weight: float = 0.5,
                threshold: float = 10.0) -> torch.Tensor:
    """Unsharp masking as Real-ESRGAN sharpens its ground truth (``USMSharp``).

    x: ``[N, C, H, W]`` float in [0, 1]. The Gaussian has side ``radius`` (made odd) and,
    when ``sigma`` is 0, OpenCV's derived ``0.3 ((side - 1) / 2 - 1) + 0.8``. Detail
    ``x - blur(x)`` is added with ``weight`` only where it exceeds ``threshold`` (0..255
    scale), through a mask softened by the same Gaussian so no hard edges appear.
    """
    _check_images(x)
    side = radius + 1 if radius % 2 == 0 else radius
    if sigma <= 0:
        sigma = 0.3 * ((side - 1) * 0.5 - 1) + 0.8
    # The 2-D Gaussian is separable: two 1-D passes cost 2*side taps per pixel instead of side^2.
    k1d = _gaussian_1d(side, sigma, x)
    residual = x - _separable_blur(x, k1d)
    mask = (residual.abs() * 255 > threshold).to(x.dtype)
    soft_mask = _separable_blur(mask, k1d)
    sharp = (x + weight * residual).clamp(0, 1)
    return soft_mask * sharp + (1 - soft_mask) * x


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of images in [0, 1], per leading index (``[N]``)."""
    mse = ((a - b) ** 2).reshape(a.shape[0], -1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp(min=1e-12))


def high_frequency_energy(x: torch.Tensor) -> torch.Tensor:
    """Mean squared response to a discrete Laplacian, per image (``[N]``): a measure of fine detail."""
    _check_images(x)
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=x.device, dtype=x.dtype)
    n, c, h, w = x.shape
    r = F.conv2d(x.reshape(n * c, 1, h, w), lap[None, None])
    return (r**2).reshape(n, -1).mean(dim=1)

