"""Training configs: the shipped ones load, mistakes are named, fine-tuning loads strictly."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from vidsr.errors import InputNotFoundError, ModelError, OptionError
from vidsr.models import SRVGGNetCompact, load_model
from vidsr.train import NetworkConfig, load_train_config, with_overrides, with_pretrained
from vidsr.train.generator import build_generator, load_into, pretrained_state_dict
from vidsr.train.train_config import CONFIG_DIR


@pytest.mark.parametrize("name,arch,scale", [("compact_x4", "compact", 4), ("compact_x2", "compact", 2),
                                             ("rrdb_x4plus", "rrdb", 4), ("tiny_test", "compact", 4)])
def test_shipped_configs_load(name: str, arch: str, scale: int) -> None:
    cfg = load_train_config(name)
    assert (cfg.network.arch, cfg.network.scale) == (arch, scale)
    net, gan = cfg.stages[0], cfg.stages[-1]
    assert (net.name, gan.name) == ("net", "gan")
    assert (net.losses.l1, net.losses.perceptual, net.losses.gan) == (1.0, 0.0, 0.0)
    assert net.lr_g == 2e-4 and net.ema_decay == 0.999
    assert gan.lr_g == gan.lr_d == 1e-4 and gan.losses.gan == 0.1
    if name != "tiny_test":
        assert gan.losses.perceptual == 1.0
        assert dict(gan.losses.perceptual_layers) == {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0,
                                                      "conv4_4": 1.0, "conv5_4": 1.0}
        assert cfg.data.gt_size == 256 and cfg.discriminator.num_feat == 64


def _write(tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load((CONFIG_DIR / "tiny_test.yml").read_text())
    data["feed"]["degradation"] = str(CONFIG_DIR / "degrade" / "tiny_test.yml")
    change(data)
    path = tmp_path / "cfg.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_key_is_named_with_its_path(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d["stages"][1]["losses"].update(percepual=1.0))
    with pytest.raises(OptionError, match=r"stages\[1\]\.losses\.percepual"):
        load_train_config(path)


def test_gan_stage_needs_a_discriminator_learning_rate(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d["stages"][1].pop("lr_d"))
    with pytest.raises(OptionError, match="lr_d"):
        load_train_config(path)


def test_crop_size_must_suit_the_discriminator(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d["data"].update(gt_size=36))
    with pytest.raises(OptionError, match="multiple of 8"):
        load_train_config(path)


def test_unknown_name_lists_the_shipped_configs() -> None:
    with pytest.raises(InputNotFoundError, match="compact_x4"):
        load_train_config("no_such_config")


def test_overrides_replace_data_and_steps() -> None:
    cfg = with_overrides(load_train_config("tiny_test"), data=["a", "b"], steps=7, holdout=["x.png"])
    assert cfg.data.paths == ("a", "b") and cfg.data.holdout == ("x.png",)
    assert all(s.steps == 7 for s in cfg.stages)


def test_finetuning_loads_official_weights_strictly() -> None:
    cfg = load_train_config("compact_x4")
    net = build_generator(cfg.network)
    state = pretrained_state_dict("animevideov3")
    load_into(net, state, "animevideov3")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    tiny = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)
    with pytest.raises(ModelError, match="does not fit"):
        load_into(tiny, state, "animevideov3")


def test_x2_fine_tunes_the_official_x4_net_through_its_resize() -> None:
    # animevideov3-x2 is the x4 net with a bicubic half-size resize: --pretrained builds the same
    cfg = load_train_config("compact_x2")
    want = load_model("animevideov3-x2").module
    x = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(0))
    for name in ("animevideov3-x2", "animevideov3"):
        net_cfg = with_pretrained(cfg.network, name)
        assert (net_cfg.scale, net_cfg.net_scale, net_cfg.pretrained) == (2, 4, name)
        net = build_generator(net_cfg)
        load_into(net, pretrained_state_dict(name), name)
        assert torch.allclose(net(x), want(x), atol=1e-6) and net(x).shape == (1, 3, 24, 32)
    # a native x2 net cannot take the weights, and says how to
    with pytest.raises(ModelError, match="--pretrained"):
        load_into(build_generator(cfg.network), pretrained_state_dict("animevideov3-x2"), "animevideov3-x2")
    with pytest.raises(ModelError, match="x2, the config's network x4"):
        with_pretrained(load_train_config("compact_x4").network, "animevideov3-x2")
    with pytest.raises(OptionError, match="net_scale"):
        NetworkConfig(arch="compact", scale=4, num_feat=8, num_conv=2, net_scale=2)
