"""Still images in and out (Pillow), with EXIF orientation applied on the way in."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vidsr.errors import InputError, OptionError
from vidsr.io.probe import check_input_file

_SAVE_OPTIONS = {
    ".jpg": {"format": "JPEG", "quality": 95, "subsampling": 0},
    ".jpeg": {"format": "JPEG", "quality": 95, "subsampling": 0},
    ".png": {"format": "PNG"},
    ".webp": {"format": "WEBP", "lossless": True},
    ".bmp": {"format": "BMP"},
    ".tif": {"format": "TIFF"},
    ".tiff": {"format": "TIFF"},
}


def read_image(path: Path) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Return (rgb uint8 [H,W,3], alpha uint8 [H,W] or None, original Pillow mode)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    check_input_file(path)
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from exc
    mode = im.mode
    alpha = None
    if "A" in im.getbands() or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3].copy()
        im = rgba
    rgb = np.asarray(im.convert("RGB")).copy()
    return rgb, alpha, mode


def write_image(path: Path, rgb: np.ndarray, alpha: np.ndarray | None, mode: str, *, format_path: Path) -> None:
    """Write to `path`, choosing the format from `format_path`'s suffix (so a temp name can be used)."""
    from PIL import Image

    opts = _SAVE_OPTIONS.get(format_path.suffix.lower())
    if opts is None:
        raise OptionError(f"cannot write images as {format_path.suffix!r}; use one of {', '.join(_SAVE_OPTIONS)}")
    im = Image.fromarray(rgb, "RGB")
    if alpha is not None and opts["format"] != "JPEG":
        im.putalpha(Image.fromarray(alpha, "L"))
    elif mode in ("L", "I;16", "I", "F"):
        im = im.convert("L")
    im.save(path, **opts)
