"""`vidsr train`: user errors come out as one line and exit status 1."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import run_cli

from vidsr.train.train_config import CONFIG_DIR


def _config_with_perceptual(tmp_path: Path) -> Path:
    data = yaml.safe_load((CONFIG_DIR / "tiny_test.yml").read_text())
    data["feed"]["degradation"] = str(CONFIG_DIR / "degrade" / "tiny_test.yml")
    data["stages"] = data["stages"][1:]
    data["stages"][0]["losses"]["perceptual"] = 1.0
    path = tmp_path / "percep.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_missing_vgg_weights_is_a_clear_error(media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An empty hub cache, and a proxy that refuses, so no machine can download the weights.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    res = run_cli("train", "--config", str(_config_with_perceptual(tmp_path)), "--data",
                  str(media / "images" / "anime"), "--out", str(tmp_path / "run"), "--device", "cpu", "-q")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("vidsr: error: the perceptual loss needs VGG19")
    assert "--vgg-weights" in lines[0] and "Traceback" not in res.stderr


def test_vgg_weights_path_that_does_not_exist(media: Path, tmp_path: Path) -> None:
    res = run_cli("train", "--config", str(_config_with_perceptual(tmp_path)), "--data",
                  str(media / "images" / "anime"), "--out", str(tmp_path / "run"), "--device", "cpu",
                  "--vgg-weights", str(tmp_path / "nope.pth"), "-q")
    assert res.returncode == 1
    assert res.stderr.strip() == f"vidsr: error: --vgg-weights {tmp_path / 'nope.pth'}: no such file"


def test_missing_data_folder(tmp_path: Path) -> None:
    res = run_cli("train", "--config", "tiny_test", "--data", str(tmp_path / "none"), "--out",
                  str(tmp_path / "run"), "--device", "cpu", "-q")
    assert res.returncode == 1
    assert res.stderr.strip() == f"vidsr: error: training data not found: {tmp_path / 'none'}"
