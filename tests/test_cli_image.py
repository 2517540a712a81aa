"""`vidsr upscale IMAGE`: the output keeps the image's format (gray, alpha, 16 bits, orientation)."""
from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

ANIME = ("images", "anime")


def _source(media: Path, name: str, box: tuple[int, int, int, int]) -> Image.Image:
    with Image.open(media.joinpath(*ANIME, name)) as im:
        return im.crop(box)


def _area_down(x: np.ndarray, k: int) -> np.ndarray:
    """Box-average k x k blocks of float [H, W, C]: real images with genuinely 16-bit values."""
    h, w, c = x.shape
    return x[: h // k * k, : w // k * k].reshape(h // k, k, w // k, k, c).mean(axis=(1, 3))


def _write_png16(path: Path, samples: np.ndarray, *, icc: bytes | None = None, orientation: int = 1) -> None:
    """uint16 [H, W, 3] or [H, W] -> a 16-bit PNG, written with PyAV (Pillow cannot for RGB)."""
    fmt = "rgb48be" if samples.ndim == 3 else "gray16be"
    ctx = av.CodecContext.create("png", "w")
    ctx.width, ctx.height, ctx.pix_fmt = samples.shape[1], samples.shape[0], fmt
    ctx.time_base = Fraction(1, 1)
    frame = av.VideoFrame.from_ndarray(samples, format=fmt)
    frame.pts = 0
    path.write_bytes(b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)]))
    chunks = b""
    if icc is not None:
        chunks += _png_chunk(b"iCCP", b"test\0\0" + zlib.compress(icc))
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        chunks += _png_chunk(b"eXIf", exif.tobytes().removeprefix(b"Exif\0\0"))
    data = path.read_bytes()
    path.write_bytes(data[:33] + chunks + data[33:])  # right after IHDR


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _read_av(path: Path) -> tuple[str, np.ndarray]:
    """(pix_fmt as stored, native uint16 samples) of a PNG, decoded by FFmpeg."""
    with av.open(str(path)) as c:
        f = next(c.decode(video=0))
    name = f.format.name
    if name.startswith("gray16"):
        return name, f.to_ndarray(format="gray16le").astype(np.uint16)
    return name, f.to_ndarray(format="rgb48le").astype(np.uint16)


@lru_cache(maxsize=1)
def _network():
    from vidsr.models import load_model

    return load_model("animevideov3").module.eval()


def _reference(rgb: np.ndarray) -> np.ndarray:
    """The x4 network on float RGB [H, W, 3] in [0,1], as float in [0,1]."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
        return _network()(x).clamp(0, 1)[0].permute(1, 2, 0).double().numpy()


def _upscale(src: Path, out: Path, *args: str) -> str:
    r = run_cli("upscale", str(src), "-o", str(out), "--device", "cpu", "--quiet", *args)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([src.name, out.name])  # no partial files
    return r.stderr


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_upscale_image(media: Path, tmp_path: Path, suffix: str) -> None:
    src = tmp_path / f"in{suffix}"
    with Image.open(media / "images" / "anime" / "bg_meadow.jpg") as im:
        im.crop((600, 300, 640, 330)).save(src)
    out = tmp_path / f"big{suffix}"
    r = run_cli("upscale", str(src), "-s", "4", "-o", str(out), "--device", "cpu", "--quiet")
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im:
        assert im.size == (160, 120)
        assert im.format == {".png": "PNG", ".jpg": "JPEG", ".webp": "WEBP"}[suffix]


def test_upscale_rgba_png_keeps_alpha(media: Path, tmp_path: Path) -> None:
    src = tmp_path / "sprite.png"
    with Image.open(media / "images" / "anime" / "sylvie_blue_normal.png") as im:
        assert im.mode == "RGBA"
        im.crop((0, 0, 24, 32)).save(src)
    out = tmp_path / "sprite_x2.png"
    r = run_cli("upscale", str(src), "-s", "2", "--device", "cpu", "--quiet")
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im, Image.open(src) as small:
        assert im.mode == "RGBA" and im.size == (48, 64)
        a_small = np.asarray(small)[..., 3]
        a_big = np.asarray(im)[..., 3]
        assert a_big.min() == a_small.min() and a_big.max() == a_small.max()


def test_rgba_webp_keeps_alpha_without_dark_fringe(media: Path, tmp_path: Path) -> None:
    """A sprite shrunk x4 and upscaled back: its rim is closer to the original than the bare network's.

    The colour under the sprite's transparent pixels is black; fed to the network as is, it
    darkens the semi-transparent rim.
    """
    full = np.asarray(_source(media, "sylvie_green_smile.png", (40, 0, 296, 256))).astype(np.float64) / 255
    premult = _area_down(np.concatenate([full[..., :3] * full[..., 3:], full[..., 3:]], axis=2), 4)
    a_small = premult[..., 3:]
    rgb_small = np.where(a_small > 0, premult[..., :3] / np.maximum(a_small, 1e-12), 0)  # black when clear
    src = tmp_path / "small.png"
    Image.fromarray(np.round(np.concatenate([rgb_small, a_small], axis=2) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "big.webp"
    _upscale(src, out, "-s", "4")
    with Image.open(out) as im:
        assert im.format == "WEBP" and im.mode == "RGBA" and im.size == (256, 256)
        got = np.asarray(im).astype(np.float64) / 255
    with Image.open(src) as im:
        small = np.asarray(im).astype(np.float64) / 255
    bare = _reference(small[..., :3])
    rim = (full[..., 3] > 0.02) & (full[..., 3] < 0.98)

    def rim_error(rgb: np.ndarray) -> float:  # over white, where a dark fringe shows
        return float(np.mean(((rgb - full[..., :3]) * full[..., 3:])[rim] ** 2))

    assert rim.sum() > 500
    assert np.abs(got[..., 3] - full[..., 3]).mean() < 0.05
    assert rim_error(got[..., :3]) < 0.8 * rim_error(bare)


def test_rgba_to_jpeg_is_composited_onto_white(media: Path, tmp_path: Path) -> None:
    src = tmp_path / "sprite.png"
    _source(media, "sylvie_blue_normal.png", (40, 40, 120, 80)).save(src)  # transparent corner, opaque body
    out = tmp_path / "sprite.jpg"
    stderr = _upscale(src, out, "-s", "2")
    assert "transparency" in stderr and "white" in stderr
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (160, 80)
        big = np.asarray(im)
    with Image.open(src) as im:
        clear = np.asarray(im)[..., 3] == 0
        opaque = np.asarray(im)[..., 3] == 255
    assert clear[:4, :4].all() and opaque.any()
    assert big[:8, :8].min() >= 250                          # transparent corner -> white, not black
    assert big[np.kron(opaque, np.ones((2, 2), bool))].mean() < 200  # the sprite itself is still there


def test_gray_png_stays_gray(media: Path, tmp_path: Path) -> None:
    gray = _source(media, "bg_meadow.jpg", (600, 300, 640, 330)).convert("L")
    src = tmp_path / "gray.png"
    gray.save(src)
    out = tmp_path / "big.png"
    _upscale(src, out, "-s", "4")
    with Image.open(out) as im:
        assert im.mode == "L" and im.size == (160, 120)
        got = np.asarray(im).astype(np.float64)
    g = np.asarray(gray).astype(np.float64) / 255
    ref = _reference(np.repeat(g[..., None], 3, axis=2)) @ np.array([0.299, 0.587, 0.114]) * 255
    assert np.abs(got - ref).max() <= 1.01


def test_png16_rgb_stays_16bit(media: Path, tmp_path: Path) -> None:
    """No 8-bit step: the output is the float network's output rounded to 16 bits.

    The PNG also carries an ICC profile and an eXIf orientation, which Pillow reads while PyAV
    decodes the samples: both must survive the 16-bit path.
    """
    with Image.open(media.joinpath(*ANIME, "bg_meadow.jpg")) as im:
        icc = im.info["icc_profile"]
        crop = np.asarray(im.crop((600, 300, 760, 420))).astype(np.float64) / 255
    x16 = np.round(_area_down(crop, 4) * 65535).astype(np.uint16)  # 40x30, genuinely 16-bit values
    assert (x16 % 257 != 0).mean() > 0.9
    src = tmp_path / "deep.png"
    _write_png16(src, x16, icc=icc, orientation=8)  # shown rotated 90 degrees counter-clockwise
    out = tmp_path / "deep_x4.png"
    _upscale(src, out)
    pix_fmt, got = _read_av(out)
    assert pix_fmt == "rgb48be" and got.shape == (160, 120, 3)
    assert (got % 257 != 0).mean() > 0.9
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == icc
        assert im.getexif().get(0x0112, 1) == 1
    x16 = np.ascontiguousarray(np.rot90(x16, 1))
    ref16 = _reference(x16 / 65535) * 65535
    assert np.abs(got - ref16).max() <= 2                    # 8-bit steps would be up to 128
    ref8 = np.round(_reference(np.round(x16 / 257) / 255) * 255)
    assert np.abs(got / 257 - ref8).mean() < 1              # and it tracks the 8-bit result


def test_png16_gray_with_exif_orientation(media: Path, tmp_path: Path) -> None:
    """16-bit gray PNG (Pillow's I;16): stays gray16, and its eXIf orientation is applied."""
    gray = np.asarray(_source(media, "bg_meadow.jpg", (600, 300, 760, 420)).convert("L")).astype(np.float64)
    x16 = np.round(_area_down(gray[..., None] / 255, 4)[..., 0] * 65535).astype(np.uint16)  # 30 rows, 40 cols
    src = tmp_path / "gray16.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(x16).save(src, exif=exif)
    with Image.open(src) as im:
        assert im.mode == "I;16"
    out = tmp_path / "gray16_x2.png"
    _upscale(src, out, "-s", "2")
    pix_fmt, got = _read_av(out)
    assert pix_fmt == "gray16be" and got.shape == (80, 60)  # rotated: 60 wide, 80 high
    with Image.open(out) as im:
        assert im.getexif().get(0x0112, 1) == 1
    upright = np.rot90(x16, -1).astype(np.float64)
    coarse = np.kron(upright, np.ones((2, 2)))  # nearest-neighbour x2, just to check the orientation
    assert np.abs(got - coarse).mean() < 0.25 * np.abs(got - np.rot90(coarse, 2)).mean()
    assert (got % 257 != 0).mean() > 0.9


def test_jpeg_exif_orientation_applied_once(media: Path, tmp_path: Path) -> None:
    with Image.open(media.joinpath(*ANIME, "bg_meadow.jpg")) as im:
        icc = im.info["icc_profile"]
        crop = im.crop((600, 300, 640, 330))
    exif = Image.Exif()
    exif[0x0112] = 6
    src = tmp_path / "phone.jpg"
    crop.save(src, exif=exif, icc_profile=icc, quality=95)
    out = tmp_path / "phone_x4.jpg"
    _upscale(src, out)
    with Image.open(out) as im:
        assert im.size == (120, 160)                          # 40x30 shown rotated: 30x40, x4
        assert im.getexif().get(0x0112, 1) == 1               # nothing left for a viewer to rotate again
        assert im.info.get("icc_profile") == icc
        got = np.asarray(im).astype(np.float64)
    with Image.open(src) as im:
        small = im.convert("RGB")
    right = np.asarray(small.transpose(Image.Transpose.ROTATE_270).resize((120, 160), Image.Resampling.BICUBIC))
    wrong = np.asarray(small.transpose(Image.Transpose.ROTATE_90).resize((120, 160), Image.Resampling.BICUBIC))
    assert np.abs(got - right).mean() < 0.5 * np.abs(got - wrong).mean()


def test_existing_output_kept_then_replaced_atomically(media: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    _source(media, "bg_meadow.jpg", (600, 300, 616, 312)).save(src)
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    r = run_cli("upscale", str(src), "-o", str(out), "--device", "cpu", "--quiet")
    assert r.returncode == 1 and "--overwrite" in r.stderr
    assert out.read_bytes() == b"precious"
    _upscale(src, out, "--overwrite")
    with Image.open(out) as im:
        assert im.size == (64, 48)


def test_unwritable_image_suffix_is_one_line(media: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    _source(media, "bg_meadow.jpg", (600, 300, 616, 312)).save(src)
    r = run_cli("upscale", str(src), "-o", str(tmp_path / "out.gif"), "--device", "cpu", "--quiet")
    assert r.returncode == 1
    assert r.stderr.startswith("vidsr: error:") and "'.gif'" in r.stderr and ".png" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_files_round_trip(tmp_path: Path, suffix: str, channels: int) -> None:
    """What the 16-bit writers produce, the reader takes back unchanged (no CLI: the io layer alone)."""
    from vidsr.io.image import read_image, write_image

    samples = np.random.default_rng(channels).integers(0, 65536, (6, 9, channels)).astype(np.uint16)
    path = tmp_path / f"deep{suffix}"
    write_image(path, samples, format_path=path)
    back = read_image(path)
    assert back.bits == 16 and back.has_alpha == (channels in (2, 4))
    if suffix == ".tif" and channels == 2:  # TIFF gray+alpha is written as RGBA, which Pillow can open
        assert np.array_equal(back.pixels, samples[..., [0, 0, 0, 1]])
    else:
        assert back.gray == (channels < 3) and np.array_equal(back.pixels, samples)
