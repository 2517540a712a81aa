"""Fine-tuning: `vidsr train --pretrained` starts both stages from given weights, x4 and x2 as the official x2."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml
from conftest import run_cli

from vidsr.models import SRVGGNetCompact, load_model, save_safetensors
from vidsr.models._resize import ResizedOutput
from vidsr.train import Trainer, load_train_config, with_overrides, with_pretrained
from vidsr.train.train_config import CONFIG_DIR

# torchvision 0.29 deprecates its image codecs (the trainer filters this for the process; pytest re-enables it)
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


@pytest.fixture(scope="module")
def tiny_x4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained-looking tiny_test-shaped x4 compact net (random weights, not a fresh init) as a file."""
    torch.manual_seed(7)
    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_safetensors(net, tmp_path_factory.mktemp("weights") / "tiny_x4.safetensors")


def test_both_stages_start_from_the_pretrained_weights(media: Path, tmp_path: Path, tiny_x4: Path) -> None:
    cfg = with_overrides(load_train_config("tiny_test"), data=[media / "images" / "anime"], holdout=["bg_meadow.jpg"])
    cfg = dataclasses.replace(cfg, network=with_pretrained(cfg.network, str(tiny_x4)))
    want = load_model(tiny_x4).module.state_dict()
    for stage in ("net", "gan"):  # the GAN stage alone (no L1 export yet) also starts from them
        with Trainer(cfg, stage, tmp_path / stage, device="cpu") as trainer:
            got = trainer.g_module.state_dict()
            assert all(torch.equal(got[k], v) for k, v in want.items()), stage
            assert all(torch.equal(trainer.ema.module.state_dict()[k], v) for k, v in want.items())


def test_cli_fine_tunes_a_x2_net_as_the_official_x2_export(media: Path, tmp_path: Path, tiny_x4: Path) -> None:
    data = yaml.safe_load((CONFIG_DIR / "tiny_test.yml").read_text())
    data["name"] = "tiny_x2"
    data["network"]["scale"] = 2
    data["feed"]["degradation"] = str(CONFIG_DIR / "degrade" / "tiny_test.yml")
    config = tmp_path / "tiny_x2.yml"
    config.write_text(yaml.safe_dump(data))
    res = run_cli("train", "--config", str(config), "--pretrained", str(tiny_x4), "--data",
                  str(media / "images" / "anime"), "--holdout", "bg_meadow.jpg", "--steps", "1",
                  "--out", str(tmp_path / "run"), "--device", "cpu", "-q")
    assert res.returncode == 0, res.stderr
    saved = yaml.safe_load((tmp_path / "run" / "config.yml").read_text())
    assert saved["network"]["net_scale"] == 4 and saved["network"]["pretrained"] == str(tiny_x4)
    final = load_model(tmp_path / "run" / "tiny_x2.safetensors")  # both stages done, the GAN stage's EMA
    assert final.scale == 2 and isinstance(final.module, ResizedOutput) and final.module.factor == 0.5
    start = load_model(tiny_x4).module.state_dict()
    tuned = final.module.net.state_dict()
    drift = max((tuned[k] - v).abs().max().item() for k, v in start.items())
    assert 0 < drift < 0.01  # fine-tuned from the file: moved, but only a little in 2 steps
