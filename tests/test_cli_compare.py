"""`vidsr compare`: panels cut back out of the picture equal each model's own output; crops find detail."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import EARTH, ffmpeg
from PIL import Image, ImageFilter

from vidsr.cli.main import main
from vidsr.engine.comparison import CONTEXT, compare
from vidsr.engine.crop import Crop, most_detailed_window
from vidsr.errors import OptionError
from vidsr.models import load_model


def vidsr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    return int(exit_.value.code or 0), capsys.readouterr().err


def panels(picture: Path, boxes: list[tuple[int, int, int, int]]) -> list[np.ndarray]:
    arr = np.asarray(Image.open(picture).convert("RGB")).astype(np.int16)
    return [arr[top:bottom, left:right] for left, top, right, bottom in boxes]


def reference(name: str | None, x: np.ndarray, box: tuple[int, int, int, int], scale: int) -> np.ndarray:
    """The whole picture through the model at its native scale (None: Pillow's bicubic), cut to `box` x scale."""
    left, top, right, bottom = (v * scale for v in box)
    if name is None:
        big = Image.fromarray(x).resize((x.shape[1] * scale, x.shape[0] * scale), Image.Resampling.BICUBIC)
        return np.asarray(big).astype(np.int16)[top:bottom, left:right]
    t = torch.from_numpy(x.astype(np.float32) / 255).permute(2, 0, 1)[None]
    model = load_model(name)
    assert model.scale == scale
    with torch.no_grad():
        y = model.module(t)
    y = y.clamp(0, 1)[0, :, top:bottom, left:right].permute(1, 2, 0)
    return (y * 255).round().to(torch.int16).numpy()


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Path:
    """A real anime background, small enough that the crop's context is the whole picture."""
    path = tmp_path_factory.mktemp("compare") / "meadow.png"
    with Image.open(media / "images" / "anime" / "bg_meadow.jpg") as im:
        im.convert("RGB").resize((320, 180), Image.Resampling.LANCZOS).crop((110, 66, 150, 96)).save(path)
    return path


def test_panels_are_each_models_output(small_image: Path, tmp_path: Path) -> None:
    """Two architectures (compact and RRDB): each panel, cut back out of the PNG, is that model's own output."""
    out = tmp_path / "compare.png"
    result = compare(small_image, out, models=["animevideov3", "x4plus-anime"], crop="20x14+12+8", device="cpu")
    assert [p.model for p in result.panels] == [None, "animevideov3", "x4plus-anime"]
    assert [p.label for p in result.panels] == ["input, bicubic x4", "animevideov3", "x4plus-anime"]
    assert result.panel_size == (80, 56) and result.scale == 4 and str(result.crop) == "20x14+12+8"
    assert [p.name for p in tmp_path.iterdir()] == ["compare.png"]  # no temporary file left
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (result.width, result.height)
    cut = panels(out, [p.box for p in result.panels])
    x = np.asarray(Image.open(small_image).convert("RGB"))
    assert x.shape[0] <= 14 + 2 * CONTEXT and x.shape[1] <= 20 + 2 * CONTEXT  # context = the whole picture
    for name, panel in zip([None, "animevideov3", "x4plus-anime"], cut):
        ref = reference(name, x, (12, 8, 32, 22), 4)
        assert panel.shape == ref.shape == (56, 80, 3)
        diff = np.abs(panel - ref)
        # Pillow resamples in fixed point: within one code value of the float bicubic.
        assert diff.max() <= 1 and diff.mean() < (0.3 if name is None else 0.05), (name, diff.max(), diff.mean())
    # The panels show different things, so a swapped or repeated panel would fail above.
    assert min(np.abs(a - b).mean() for i, a in enumerate(cut) for b in cut[i + 1:]) > 1


def test_video_frame_and_mixed_scales(tmp_path: Path, ffmpeg_exe: str, media: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "bikes.mp4"
    ffmpeg(ffmpeg_exe, "-i", str(media / "videos" / "bikes_640x272_3s.mp4"), "-frames:v", "8",
           "-vf", "scale=64:28", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", str(clip))
    with av.open(str(clip)) as c:
        decoded = [f.reformat(format="rgb24", src_colorspace="SMPTE170M", src_color_range="MPEG",
                              dst_color_range="JPEG", interpolation="BICUBIC").to_ndarray() for f in c.decode(video=0)]
    out = tmp_path / "frame5.png"
    result = compare(clip, out, models=["animevideov3", "animevideov3-x2"], frame=5, crop="32x16+16+6",
                     device="cpu")
    assert result.frame == 5 and result.time == pytest.approx(5 / 25, abs=1e-3)
    assert result.scale == 4  # the largest native scale; the x2 model is resized to it, as `upscale -s 4` does
    assert "resized" in result.panels[2].label and result.panels[1].label == "animevideov3"
    cut = panels(out, [p.box for p in result.panels])
    assert all(c.shape == (64, 128, 3) for c in cut)
    ref = reference("animevideov3", decoded[5], (16, 6, 48, 22), 4)
    assert np.abs(cut[1] - ref).max() <= 1
    assert np.abs(cut[1] - reference("animevideov3", decoded[0], (16, 6, 48, 22), 4)).mean() > 2  # not frame 0

    # The command writes the same picture.
    code, err = vidsr(capsys, "compare", str(clip), "-m", "animevideov3", "-m", "animevideov3-x2", "--frame", "5",
                      "--crop", "32x16+16+6", "--device", "cpu", "-o", str(tmp_path / "same.png"))
    assert code == 0 and "wrote" in err, err
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(tmp_path / "same.png")))

    code, err = vidsr(capsys, "compare", str(clip), "-m", "animevideov3", "-m", "animevideov3-x2", "--time", "0.2",
                      "-s", "2", "--device", "cpu", "-o", str(tmp_path / "cli.png"))
    assert code == 0, err
    with Image.open(tmp_path / "cli.png") as im:
        assert im.width >= 3 * 64 and im.height >= 28 * 2  # three panels of the whole 64x28 frame at x2


def wall_with_figure(media: Path) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A real photo blurred flat (the wall) with a small real figure pasted off-centre; and the figure's box."""
    with Image.open(media / "images" / "photo" / "lomiri1604_Wine_by_Jakkub_Mede.jpg") as im:
        wall = im.convert("RGB").resize((512, 384)).filter(ImageFilter.GaussianBlur(25))
    with Image.open(media / "images" / "anime" / "sylvie_blue_smile.png") as im:
        figure = im.convert("RGBA").resize((40, 84))
    wall.paste(figure, (420, 260), figure)
    return wall, (420, 260, 460, 344)


def contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def test_most_detailed_window(media: Path) -> None:
    wall, figure = wall_with_figure(media)
    x = torch.from_numpy(np.asarray(wall).copy()).permute(2, 0, 1).float() / 255
    left, top = most_detailed_window(x, 128, 128)
    assert contains((left, top, left + 128, top + 128), figure)
    # Centred on the figure, as far as the picture's edge allows.
    assert abs((left + 64) - 440) <= 24 and abs((top + 64) - 302) <= 24
    # A flat picture keeps the centre crop; a window as large as the picture is the picture.
    assert most_detailed_window(torch.full((3, 100, 200), 0.5), 50, 40) == (75, 30)
    assert most_detailed_window(x, 512, 384) == (0, 0)


def test_default_crop_finds_the_detail(media: Path, tmp_path: Path) -> None:
    wall, figure = wall_with_figure(media)
    src = tmp_path / "wall.png"
    wall.save(src)
    result = compare(src, tmp_path / "c.png", models=["animevideov3"], crop="96x96", device="cpu")
    assert contains(result.crop.box(), figure)
    result = compare(src, tmp_path / "d.png", models=["animevideov3"], device="cpu")  # default size
    assert (result.crop.width, result.crop.height) == (96, 96)  # 384 output pixels at x4
    assert contains(result.crop.box(), figure)


def test_crop_syntax() -> None:
    assert Crop.parse("96x64+3+4") == Crop(96, 64, 3, 4) and str(Crop(96, 64, 3, 4)) == "96x64+3+4"
    assert Crop.parse("96X64") == Crop(96, 64)
    for bad in ("96", "96x", "ax64+1+2", "96x64+1", "0x10", "-5x5+0+0"):
        with pytest.raises(OptionError):
            Crop.parse(bad)


@pytest.mark.parametrize("args,expected", [
    (("--time", "0.1", "--frame", "1"), "not both"),
    (("--crop", "30x20+20+0"), "outside"),
    (("--crop", "9x9+0+0", "--time", "1"), "is an image"),
    (("-m", "no-such-model"), "no-such-model"),
])
def test_user_errors_are_one_line(args: tuple[str, ...], expected: str, small_image: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, err = vidsr(capsys, "compare", str(small_image), "-m", "animevideov3", *args, "--device", "cpu",
                      "-o", str(tmp_path / "c.png"))
    assert code == 1 and len(err.strip().splitlines()) == 1 and err.startswith("vidsr: error:"), err
    assert expected in err
    assert list(tmp_path.iterdir()) == []


def test_existing_output_and_suffix(small_image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "c.png"
    existing.write_bytes(b"keep")
    code, err = vidsr(capsys, "compare", str(small_image), "-m", "animevideov3", "-o", str(existing))
    assert code == 1 and "--overwrite" in err and existing.read_bytes() == b"keep"
    code, err = vidsr(capsys, "compare", str(small_image), "-m", "animevideov3", "-o", str(tmp_path / "c.jpg"))
    assert code == 1 and ".png" in err


def test_earth_sample_runs(tmp_path: Path) -> None:
    """The bundled sample, at its middle, with the default crop: what docs/compare.png shows (small models)."""
    result = compare(EARTH, tmp_path / "earth.png", models=["animevideov3", "animevideov3-x2"], scale=2,
                     device="cpu")
    assert result.time == pytest.approx(1.5, abs=0.05)
    assert result.crop.width == result.crop.height == 192
