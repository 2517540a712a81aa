"""`vidsr degrade`: contact sheets from real images and video, and its user errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image, ImageFilter

from vidsr.cli.degrade_cmd import degrade
from vidsr.engine.crop import most_detailed_window
from vidsr.errors import InputError, InputNotFoundError, OptionError, OutputExistsError


def tiles(sheet: Path, columns: int, count: int, side: int = 64) -> list[np.ndarray]:
    """The image part of each cell, cut from the sheet (cells are equal; tiles sit at the top-left + 6 px)."""
    arr = np.asarray(Image.open(sheet).convert("RGB"))
    rows = -(-count // columns)
    cell_h, cell_w = arr.shape[0] // rows, arr.shape[1] // columns
    return [arr[(i // columns) * cell_h + 6:(i // columns) * cell_h + 6 + side,
                (i % columns) * cell_w + 6:(i % columns) * cell_w + 6 + side] for i in range(count)]


def test_contact_sheet_of_an_image(media: Path, tmp_path: Path) -> None:
    out = tmp_path / "sheet.png"
    image = media / "images" / "anime" / "sylvie_blue_smile.png"  # RGBA sprite
    degrade(image, output=out, n=5, config="anime_video", seed=1, scale=4, crop=64, frames=5, start=0.0,
            codec_prob=0.5, columns=3, overwrite=False)
    sheet = Image.open(out)
    assert sheet.format == "PNG" and sheet.mode == "RGB"
    cells = tiles(out, 3, 6)  # the HR crop, then 5 draws
    assert all(c.shape == (64, 64, 3) for c in cells)
    # Each draw differs from the input and from the others.
    for i in range(1, 6):
        assert not np.array_equal(cells[0], cells[i])
    assert len({c.tobytes() for c in cells}) == 6
    # Draws are shown as LR blocks of 4x4 identical pixels.
    block = cells[1][:4, :4].reshape(-1, 3)
    assert (block == block[0]).all()
    # Same seed, same sheet.
    again = tmp_path / "again.png"
    degrade(image, output=again, n=5, config="anime_video", seed=1, scale=4, crop=64, frames=5, start=0.0,
            codec_prob=0.5, columns=3, overwrite=False)
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))


def test_contact_sheet_of_video_frames(media: Path, tmp_path: Path) -> None:
    out = tmp_path / "video.png"
    degrade(media / "videos" / "bikes_640x272_3s.mp4", output=out, n=2, config="realesrgan_video", seed=0,
            scale=2, crop=64, frames=3, start=1.0, codec_prob=1.0, columns=3, overwrite=False)
    assert Image.open(out).size[0] >= 3 * 64


def test_user_errors(media: Path, tmp_path: Path) -> None:
    kwargs = dict(n=1, config="realesrgan_video", seed=0, scale=4, crop=64, frames=3, start=0.0, codec_prob=None,
                  columns=4, overwrite=False)
    with pytest.raises(InputNotFoundError):
        degrade(tmp_path / "missing.png", output=tmp_path / "o.png", **kwargs)  # type: ignore[arg-type]
    image = media / "images" / "photo" / "lomiri1604_Wine_by_Jakkub_Mede.jpg"
    with pytest.raises(OptionError):
        degrade(image, output=tmp_path / "o.jpg", **kwargs)  # type: ignore[arg-type]
    existing = tmp_path / "exists.png"
    existing.write_bytes(b"")
    with pytest.raises(OutputExistsError):
        degrade(image, output=existing, **kwargs)  # type: ignore[arg-type]
    not_an_image = tmp_path / "text.png"
    not_an_image.write_text("hello", encoding="utf-8")
    with pytest.raises(InputError):
        degrade(not_an_image, output=tmp_path / "o.png", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(OptionError):
        degrade(image, output=tmp_path / "o.png", **{**kwargs, "codec_prob": 2.0})  # type: ignore[arg-type]


def test_command_line(media: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.png"
    image = str(media / "images" / "photo" / "lomiri1604_Bridge_by_Sander_Klootwijk.jpg")
    r = run_cli("degrade", image, "-o", str(out), "-n", "2", "--crop", "64", "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert out.is_file() and "wrote" in r.stderr
    r = run_cli("degrade", image, "-o", str(out), "-n", "2", "--crop", "64")
    assert r.returncode == 1 and r.stderr.startswith("vidsr: error:") and "--overwrite" in r.stderr


def test_crop_goes_where_the_detail_is(media: Path, tmp_path: Path) -> None:
    """A wall with a small figure off-centre: the degraded square shows the figure, not the empty wall."""
    with Image.open(media / "images" / "photo" / "lomiri1604_Bridge_by_Sander_Klootwijk.jpg") as im:
        wall = im.convert("RGB").resize((480, 320)).filter(ImageFilter.GaussianBlur(20))
    with Image.open(media / "images" / "anime" / "sylvie_green_smile.png") as im:
        figure = im.convert("RGBA").resize((36, 76))
    wall.paste(figure, (40, 200), figure)
    src = tmp_path / "wall.png"
    wall.save(src)
    out = tmp_path / "sheet.png"
    degrade(src, output=out, n=1, config="anime_video", seed=0, scale=4, crop=128, frames=1, start=0.0,
            codec_prob=0.0, columns=2, overwrite=False)
    shown = tiles(out, 2, 2, side=128)[0]
    canvas = np.asarray(wall)
    left, top = most_detailed_window(torch.from_numpy(canvas.copy()).permute(2, 0, 1).float() / 255, 128, 128)
    assert np.array_equal(shown, canvas[top:top + 128, left:left + 128])  # the square degraded is the one picked
    assert left <= 40 and top <= 200 and left + 128 >= 76 and top + 128 >= 276  # and it holds the whole figure
    centre = canvas[96:224, 176:304]

    def detail(x: np.ndarray) -> float:
        return float(np.abs(np.diff(x.astype(np.float64), axis=1)).mean())

    assert detail(shown) > 5 * detail(centre)  # where the old centre crop saw an almost blank square
