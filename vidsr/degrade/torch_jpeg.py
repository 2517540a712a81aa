"""JPEG compression in pure torch, batched, on any device, following libjpeg step by step.

What a baseline libjpeg(-turbo) encoder and decoder do at their defaults (what Pillow and
torchvision's ``encode_jpeg``/``decode_jpeg`` use), reproduced with tensor operations so
that a batch of images at per-image qualities is compressed on the training device in a
few kernels, with no copy to the host:

* encoder: RGB -> YCbCr in libjpeg's 16-bit fixed point (``jccolor.c``); 4:2:0 chroma by
  2x2 averaging with libjpeg's alternating rounding bias (``jcsample.c``), the edges
  replicated as libjpeg pads them; 8x8 DCT; quantisation by the IJG standard tables
  scaled by quality exactly as ``jpeg_set_quality`` scales them (baseline, clamped to
  1..255), rounding half away from zero;
* decoder: dequantisation, 8x8 inverse DCT, level shift and rounding; chroma upsampled
  by libjpeg's "fancy" triangle filter with its integer rounding (``jdsample.c``);
  YCbCr -> RGB in fixed point (``jdcolor.c``).

Everything is libjpeg's integer arithmetic, the DCTs included: its default accurate
integer DCT and inverse DCT (``JDCT_ISLOW``), each 1-D pass done as one matrix product
(exact in float64) and a rounding shift. So on real crops the output is libjpeg-turbo's,
bit for bit on nearly every pixel (see tests/test_degrade_jpeg.py). Entropy coding is
lossless and skipped.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from vidsr.errors import OptionError

# IJG standard quantisation tables (JPEG spec Annex K), in natural (row-major) order, as in jcparam.c.
_LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)
_CHROMA_TABLE = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
) + (99,) * 32

_SCALEBITS = 16
_HALF = 1 << (_SCALEBITS - 1)


def _fix(x: float) -> int:
    """libjpeg's FIX(): a constant in 16-bit fixed point."""
    return int(x * (1 << _SCALEBITS) + 0.5)


def quality_scaling(quality: torch.Tensor) -> torch.Tensor:
    """libjpeg's ``jpeg_quality_scaling``: quality 1..100 -> percentage scale of the tables."""
    q = quality.clamp(1, 100)
    return torch.where(q < 50, torch.div(5000, q, rounding_mode="floor"), 200 - 2 * q)


def quant_tables(quality: torch.Tensor) -> torch.Tensor:
    """``[N, 2, 8, 8]`` luma and chroma tables for integer qualities ``[N]``, as ``jpeg_set_quality(q, TRUE)``."""
    scale = quality_scaling(quality.long()).reshape(-1, 1, 1)
    base = torch.tensor([_LUMA_TABLE, _CHROMA_TABLE], dtype=torch.long, device=quality.device)
    tables = torch.div(base[None] * scale + 50, 100, rounding_mode="floor").clamp(1, 255)
    return tables.reshape(-1, 2, 8, 8)


# libjpeg's accurate integer DCTs (jfdctint.c, jidctint.c: Loeffler-Ligtenberg-Moschytz with
# 13-bit constants, JDCT_ISLOW, the default of its encoder and decoder). Each 1-D pass is a
# linear map with integer coefficients followed by a rounding right shift per output, so a
# pass is one matrix product (exact in float64: every value stays far below 2**53) and a
# rounding shift: the same integers as libjpeg, in a few large tensor operations.
_CONST_BITS, _PASS1_BITS = 13, 2
_C = {"0_298631336": 2446, "0_390180644": 3196, "0_541196100": 4433, "0_765366865": 6270, "0_899976223": 7373,
      "1_175875602": 9633, "1_501321110": 12299, "1_847759065": 15137, "1_961570560": 16069, "2_053119869": 16819,
      "2_562915447": 20995, "3_072711026": 25172}


def _odd(t4: int, t5: int, t6: int, t7: int) -> tuple[int, int, int, int]:
    """The odd part both DCTs share (figure 8 of the LL&M paper, as in libjpeg)."""
    z1, z2, z3, z4 = t4 + t7, t5 + t6, t4 + t6, t5 + t7
    z5 = (z3 + z4) * _C["1_175875602"]
    t4, t5, t6, t7 = (t4 * _C["0_298631336"], t5 * _C["2_053119869"], t6 * _C["3_072711026"],
                      t7 * _C["1_501321110"])
    z1, z2 = z1 * -_C["0_899976223"], z2 * -_C["2_562915447"]
    z3, z4 = z3 * -_C["1_961570560"] + z5, z4 * -_C["0_390180644"] + z5
    return t4 + z1 + z3, t5 + z2 + z4, t6 + z2 + z3, t7 + z1 + z4


def _fdct_1d(d: list[int], first: bool) -> list[int]:
    """jpeg_fdct_islow on one row (``first``) or column, before each output's rounding shift."""
    t0, t7, t1, t6 = d[0] + d[7], d[0] - d[7], d[1] + d[6], d[1] - d[6]
    t2, t5, t3, t4 = d[2] + d[5], d[2] - d[5], d[3] + d[4], d[3] - d[4]
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    dc_scale = 1 << _PASS1_BITS if first else 1  # pass 1 shifts these left; pass 2 rounds them below
    z1 = (t12 + t13) * _C["0_541196100"]
    o7, o5, o3, o1 = _odd(t4, t5, t6, t7)
    return [(t10 + t11) * dc_scale, o1, z1 + t13 * _C["0_765366865"], o3, (t10 - t11) * dc_scale, o5,
            z1 - t12 * _C["1_847759065"], o7]


def _idct_1d(c: list[int]) -> list[int]:
    """jpeg_idct_islow on one column or row of (dequantised) coefficients, before the rounding shift."""
    z1 = (c[2] + c[6]) * _C["0_541196100"]
    t2, t3 = z1 - c[6] * _C["1_847759065"], z1 + c[2] * _C["0_765366865"]
    t0, t1 = (c[0] + c[4]) << _CONST_BITS, (c[0] - c[4]) << _CONST_BITS
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    o0, o1, o2, o3 = _odd(c[7], c[5], c[3], c[1])
    return [t10 + o3, t11 + o2, t12 + o1, t13 + o0, t13 - o0, t12 - o1, t11 - o2, t10 - o3]


def _matrix(flow: object) -> torch.Tensor:
    """The ``[8, 8]`` integer matrix of a linear 1-D flow (its outputs for each unit input)."""
    cols = [flow([1 if i == j else 0 for i in range(8)]) for j in range(8)]  # type: ignore[operator]
    return torch.tensor(cols, dtype=torch.float64).T


@functools.cache
def _passes_cpu() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each pass: its matrix and the right shift of each output."""
    fwd = _CONST_BITS
    return {
        "fdct1": (_matrix(lambda d: _fdct_1d(d, True)),
                  torch.tensor([0, fwd - _PASS1_BITS, fwd - _PASS1_BITS, fwd - _PASS1_BITS, 0,
                                fwd - _PASS1_BITS, fwd - _PASS1_BITS, fwd - _PASS1_BITS], dtype=torch.float64)),
        "fdct2": (_matrix(lambda d: _fdct_1d(d, False)),
                  torch.tensor([_PASS1_BITS] + [fwd + _PASS1_BITS] * 3 + [_PASS1_BITS]
                               + [fwd + _PASS1_BITS] * 3, dtype=torch.float64)),
        "idct1": (_matrix(_idct_1d), torch.full((8,), _CONST_BITS - _PASS1_BITS, dtype=torch.float64)),
        "idct2": (_matrix(_idct_1d), torch.full((8,), _CONST_BITS + _PASS1_BITS + 3, dtype=torch.float64)),
    }


@functools.lru_cache(maxsize=16)
def _pass_tensors(name: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A pass's transposed matrix, rounding offsets and 2**-shift, on ``device``."""
    m, shift = _passes_cpu()[name]
    half = torch.where(shift > 0, torch.pow(2.0, shift - 1), torch.zeros_like(shift))
    return m.T.contiguous().to(device), half.to(device), torch.pow(2.0, -shift).to(device)


def _pass(x: torch.Tensor, name: str) -> torch.Tensor:
    """One 1-D pass along the last dimension of float64 integers: ``DESCALE(M x, shift)``
    (a rounding right shift: multiplying by a power of two is exact)."""
    mt, half, inv = _pass_tensors(name, x.device)
    return torch.floor_((x @ mt).add_(half).mul_(inv))


def _rgb_to_ycc(rgb: torch.Tensor) -> torch.Tensor:
    """int32 RGB ``[N, 3, H, W]`` in 0..255 -> int32 YCbCr, as jccolor.c's ``rgb_ycc_convert``."""
    r, g, b = rgb.unbind(1)
    off = (128 << _SCALEBITS) + _HALF - 1  # libjpeg's rounding "fudge" for Cb and Cr
    out = torch.empty_like(rgb)
    torch.bitwise_right_shift(_fix(0.29900) * r + _fix(0.58700) * g + _fix(0.11400) * b + _HALF, _SCALEBITS,
                              out=out[:, 0])
    torch.bitwise_right_shift(-_fix(0.16874) * r - _fix(0.33126) * g + _fix(0.5) * b + off, _SCALEBITS,
                              out=out[:, 1])
    torch.bitwise_right_shift(_fix(0.5) * r - _fix(0.41869) * g - _fix(0.08131) * b + off, _SCALEBITS,
                              out=out[:, 2])
    return out


def _ycc_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """int32 YCbCr -> int32 RGB clamped to 0..255, as jdcolor.c's ``ycc_rgb_convert``."""
    y, cb, cr = ycc.unbind(1)
    cb, cr = cb - 128, cr - 128
    out = torch.empty_like(ycc)
    torch.add(y, (_fix(1.40200) * cr + _HALF) >> _SCALEBITS, out=out[:, 0])
    torch.add(y, (-_fix(0.34414) * cb - _fix(0.71414) * cr + _HALF) >> _SCALEBITS, out=out[:, 1])
    torch.add(y, (_fix(1.77200) * cb + _HALF) >> _SCALEBITS, out=out[:, 2])
    return out.clamp_(0, 255)


def _pad_edges(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Replicate the last row and column of ``[N, C, h0, w0]`` up to ``h`` x ``w`` (libjpeg's edge expansion)."""
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    idx_h = torch.arange(h, device=x.device).clamp_(max=x.shape[-2] - 1)
    idx_w = torch.arange(w, device=x.device).clamp_(max=x.shape[-1] - 1)
    return x.index_select(-2, idx_h).index_select(-1, idx_w)


def _ceil(n: int, m: int) -> int:
    return -(-n // m) * m


def _downsample_h2v2(c: torch.Tensor) -> torch.Tensor:
    """2x2 chroma averaging of ``[N, 2, H, W]`` (H, W even), bias 1, 2, 1, 2... along each row (jcsample.c)."""
    s = c[..., 0::2, 0::2] + c[..., 0::2, 1::2] + c[..., 1::2, 0::2] + c[..., 1::2, 1::2]
    bias = 1 + (torch.arange(s.shape[-1], device=c.device) % 2)
    return (s + bias) >> 2


def _upsample_h2v2_fancy(c: torch.Tensor) -> torch.Tensor:
    """libjpeg's triangle-filter 2x upsampling of ``[N, 2, h, w]`` int32 chroma (jdsample.c ``h2v2_fancy_upsample``).

    Each output is 9/16 of the nearest input, 3/16 of each of the next nearest in
    either direction and 1/16 of the diagonal, edges replicated, with libjpeg's
    integer rounding (+8 and +7 alternating).
    """
    p = F.pad(c.float(), (1, 1, 1, 1), mode="replicate").to(c.dtype)  # replicate is not implemented for ints
    mid = p[..., 1:-1, :]
    above = 3 * mid + p[..., :-2, :]  # output rows 2i: the row above is the next nearest
    below = 3 * mid + p[..., 2:, :]  # output rows 2i+1
    cols = torch.stack([above, below], dim=-2).flatten(-3, -2)  # [N, 2, 2h, w + 2]
    this = cols[..., 1:-1]
    left = (3 * this + cols[..., :-2] + 8) >> 4
    right = (3 * this + cols[..., 2:] + 7) >> 4
    return torch.stack([left, right], dim=-1).flatten(-2)


def _blocks(plane: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` (H, W multiples of 8) -> ``[N, C * H/8 * W/8, 64]``, each block row-major."""
    n, c, h, w = plane.shape
    return plane.reshape(n, c, h // 8, 8, w // 8, 8).permute(0, 1, 2, 4, 3, 5).reshape(n, -1, 64)


def _unblocks(blocks: torch.Tensor, c: int, h: int, w: int) -> torch.Tensor:
    n = blocks.shape[0]
    return blocks.reshape(n, c, h // 8, w // 8, 8, 8).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


def _code(plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """What a plane ``[N, C, H, W]`` (int32, sides multiples of 8) goes through, as libjpeg does it:
    level shift, integer DCT, quantisation, dequantisation, integer inverse DCT, level shift
    and clamp; ``table`` ``[N, 8, 8]``."""
    n, c, h, w = plane.shape
    x = _blocks(plane.to(torch.float64) - 128).reshape(n, -1, 8, 8)  # [N, blocks, row, col]
    coef = _pass(_pass(x, "fdct1").transpose(-1, -2), "fdct2").transpose(-1, -2)  # 8x the DCT, rows: v
    # jcdctmgr.c: (|x| + d/2) / d with d = 8 q, the sign put back.
    d = 8 * table.to(torch.float64).reshape(n, 1, 8, 8)
    k = torch.floor((coef.abs() + d / 2) / d).copysign_(coef)
    # jidctint.c: columns first, then rows; the result is centred on 128 and clamped.
    out = _pass(_pass((k * (d / 8)).transpose(-1, -2), "idct1").transpose(-1, -2), "idct2")
    return _unblocks(out.reshape(n, -1, 64), c, h, w).add_(128).clamp_(0, 255).to(torch.int32)


def jpeg_torch(x: torch.Tensor, quality: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
    """JPEG round trip of ``[N, 3, H, W]`` float images in [0, 1] at a shared or per-image quality.

    Returns the decoded images, same shape, dtype and device, values multiples of 1/255,
    as libjpeg's baseline 4:2:0 encoder and decoder would give them (see the module doc).
    """
    if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise OptionError(f"JPEG needs float images [N, 3, H, W], got {tuple(x.shape)} {x.dtype}")
    n, _, h, w = x.shape
    qs = torch.as_tensor(quality, dtype=torch.long).reshape(-1)
    if qs.numel() == 1:
        qs = qs.expand(n)
    if qs.numel() != n:
        raise OptionError(f"expected 1 or {n} JPEG qualities, got {qs.numel()}")
    if n and (int(qs.min()) < 1 or int(qs.max()) > 100):
        raise OptionError(f"JPEG quality must be in [1, 100], got {qs.tolist()}")
    if n == 0:
        return x.clone()
    tables = quant_tables(qs.to(x.device))
    rgb = (x.clamp(0, 1) * 255).round().to(torch.int32)
    ycc = _rgb_to_ycc(rgb)

    # Luma: padded to whole blocks by edge replication (jcsample.c expand_right_edge, jcprepct.c).
    out = torch.empty_like(ycc)
    out[:, :1] = _code(_pad_edges(ycc[:, :1], _ceil(h, 8), _ceil(w, 8)), tables[:, 0])[..., :h, :w]

    # Chroma: full-resolution rows replicated to an even count and columns to whole MCUs (16),
    # averaged 2x2, then the subsampled rows replicated to whole blocks, as libjpeg pads them.
    hc, wc = (h + 1) // 2, (w + 1) // 2
    chroma = _downsample_h2v2(_pad_edges(ycc[:, 1:], _ceil(h, 2), _ceil(w, 16)))
    chroma = _code(_pad_edges(chroma, _ceil(hc, 8), chroma.shape[-1]), tables[:, 1])
    out[:, 1:] = _upsample_h2v2_fancy(chroma[..., :hc, :wc])[..., :h, :w]
    return _ycc_to_rgb(out).to(x.dtype) / 255
