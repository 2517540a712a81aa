"""The public Python API: what `import vidsr` offers, and the README's example, run as written."""
from __future__ import annotations

import inspect
import re
import shutil
from pathlib import Path

import pytest
from conftest import REPO
from PIL import Image

import vidsr


def readme_example() -> str:
    """The python block of the README's "Python API" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Python API section should hold one python example"
    return blocks[0]


def test_public_names() -> None:
    wanted = {"upscale", "compare", "UpscaleOptions", "SpeedOptions", "Window", "ChunkOptions", "EncodeSettings",
              "UpscaleResult", "BatchResult", "FileResult", "CompareResult", "upscale_video_chunked",
              "upscale_video", "upscale_image", "upscale_many", "VidsrError", "load_model"}
    assert wanted <= set(vidsr.__all__)
    for name in vidsr.__all__:
        assert getattr(vidsr, name) is not None, name
    # Options are keyword-only: everything after input and output.
    for fn, positional in ((vidsr.upscale, ["input", "output"]), (vidsr.compare, ["input", "output"])):
        params = inspect.signature(fn).parameters.values()
        assert [p.name for p in params if p.kind is not p.KEYWORD_ONLY] == positional, fn
    assert vidsr.upscale.__doc__ and vidsr.compare.__doc__


def test_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO / "samples", tmp_path / "samples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_example(), str(REPO / "README.md"), "exec"), namespace)

    result = namespace["result"]
    assert isinstance(result, vidsr.UpscaleResult)
    assert (result.width, result.height, result.frames) == (960, 540, 2)
    assert result.output == Path("earth_x2.mp4") and result.output.is_file()

    batch = namespace["batch"]
    assert isinstance(batch, vidsr.BatchResult) and batch.ok
    assert {f.input.name: f.status for f in batch.files} == {"earth_3s.mp4": "done", "README.md": "skipped"}
    assert Path("samples_x2/earth_3s.mp4").is_file() and [p.name for p in Path("samples_x2").iterdir()] == [
        "earth_3s.mp4"]

    picture = namespace["picture"]
    assert isinstance(picture, vidsr.CompareResult) and len(picture.panels) == 3
    with Image.open("compare.png") as im:
        assert im.size == (picture.width, picture.height)
    printed = capsys.readouterr().out
    assert "earth_x2.mp4 960x540 2 frames" in printed and "README.md skipped" in printed


def test_upscale_file_folder_and_list(tmp_path: Path, media: Path) -> None:
    """One file gives its result or raises; a list gives each file's status, failures included."""
    image = tmp_path / "in" / "crop.png"
    image.parent.mkdir()
    with Image.open(media / "images" / "anime" / "bg_club.jpg") as im:
        im.crop((600, 300, 632, 324)).save(image)
    one = vidsr.upscale(image, tmp_path / "one.png", scale=2, device="cpu", progress=False)
    assert isinstance(one, vidsr.UpscaleResult) and (one.width, one.height) == (64, 48)
    with pytest.raises(vidsr.InputNotFoundError):
        vidsr.upscale(tmp_path / "missing.mp4", device="cpu", progress=False)
    with pytest.raises(vidsr.OutputExistsError):
        vidsr.upscale(image, tmp_path / "one.png", device="cpu", progress=False)

    broken = tmp_path / "in" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    seen: list[str] = []
    batch = vidsr.upscale([image, broken], tmp_path / "out", scale=2, device="cpu", progress=False,
                          on_file=lambda f: seen.append(f.status))
    assert isinstance(batch, vidsr.BatchResult) and not batch.ok and seen == ["done", "failed"]
    assert [f.output for f in batch.done] == [tmp_path / "out" / "crop.png"]
    assert "cannot read image" in batch.failed[0].reason and batch.failed[0].input == broken
    again = vidsr.upscale(tmp_path / "in", tmp_path / "out", scale=2, device="cpu", progress=False)
    assert [(f.input.name, f.status) for f in again.files] == [("broken.jpg", "failed"), ("crop.png", "skipped")]
