"""The exported EMA generator loads in `vidsr upscale --model` and computes what the trained module does."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

from vidsr.train import Trainer, load_train_config, with_overrides
from vidsr.train.data import image_tensor as read_image

# torchvision 0.29 deprecates its image codecs (the trainer filters this for the process; pytest re-enables it)
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


@pytest.fixture(scope="module")
def trained(media: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, tuple[Path, ...]]:
    cfg = with_overrides(load_train_config("tiny_test"), data=[media / "images" / "anime"],
                         holdout=["bg_meadow.jpg"])
    cfg = dataclasses.replace(cfg, stages=(dataclasses.replace(cfg.stage("net"), ema_decay=0.5),))
    out = tmp_path_factory.mktemp("export")
    with Trainer(cfg, "net", out, device="cpu") as trainer:
        result = trainer.run()
        module = trainer.ema.module
    assert result.finished and len(result.exports) == 2
    return module, result.exports


@pytest.fixture(scope="module")
def tiny_png(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    img = read_image(media / "images" / "anime" / "bg_club.jpg")[:, 300:340, 500:556]
    path = tmp_path_factory.mktemp("img") / "tiny.png"
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)
    return path


def _expected(module: torch.nn.Module, png: Path) -> np.ndarray:
    x = torch.from_numpy(np.asarray(Image.open(png).convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = module.float().cpu()(x).clamp(0, 1)
    return (y[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


@pytest.mark.parametrize("kind", [".safetensors", ".pth"])
def test_export_upscales_like_the_trained_module(trained, tiny_png: Path, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    module, exports = trained
    path = next(p for p in exports if p.suffix == kind)
    out = tmp_path / "up.png"
    res = run_cli("upscale", str(tiny_png), "--model", str(path), "-o", str(out), "--device", "cpu", "-q")
    assert res.returncode == 0, res.stderr
    got = np.asarray(Image.open(out).convert("RGB"))
    want = _expected(module, tiny_png)
    assert got.shape == (160, 224, 3) == want.shape
    # The CLI runs the net channels_last (another summation order): a value exactly between two
    # codes may round the other way, nothing more.
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= diff.size // 1000
    # and the trained net is not a no-op nearest upscale, so equality means something
    nearest = np.asarray(Image.open(tiny_png).convert("RGB")).repeat(4, 0).repeat(4, 1)
    assert np.abs(got.astype(int) - nearest.astype(int)).mean() > 1


def test_pth_holds_params_ema(trained) -> None:  # type: ignore[no-untyped-def]
    module, exports = trained
    raw = torch.load(next(p for p in exports if p.suffix == ".pth"), weights_only=True)
    assert list(raw) == ["params_ema"]
    assert all(torch.equal(raw["params_ema"][k], v) for k, v in module.state_dict().items())
