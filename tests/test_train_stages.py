"""Both stages run end to end on real images with a tiny network, and training learns."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from vidsr.models import load_model
from vidsr.train import Trainer, load_train_config, replace_stage, train, with_overrides
from vidsr.train.losses import _vgg19_features

# torchvision 0.29 deprecates its image codecs (the trainer filters this for the process; pytest re-enables it)
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def tiny_config(media: Path):  # type: ignore[no-untyped-def]
    return with_overrides(load_train_config("tiny_test"), data=[media / "images" / "anime"],
                          holdout=["bg_meadow.jpg"])


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_both_stages_run_and_export(media: Path, tmp_path: Path) -> None:
    cfg = tiny_config(media)
    result = train(cfg, tmp_path / "run", device="cpu", progress=False)

    assert [(s.name, s.steps, s.finished) for s in result.stages] == [("net", 4, True), ("gan", 3, True)]
    assert [p.name for p in result.exports] == ["tiny_test.safetensors", "tiny_test.pth"]
    net_log = _records(tmp_path / "run" / "net" / "log.jsonl")
    gan_log = _records(tmp_path / "run" / "gan" / "log.jsonl")
    net_train = [r for r in net_log if r["event"] == "train"]
    gan_train = [r for r in gan_log if r["event"] == "train"]
    assert [r["step"] for r in net_train] == [1, 2, 3, 4]
    assert all(0 < r["l1"] < 1 and "gan" not in r for r in net_train)
    # the feed against the trainer, per logging interval: the wait for data, both rates, no GPU figure on a CPU
    for r in net_train + gan_train:
        assert 0 <= r["data_wait_s"] and 0 <= r["data_wait_frac"] <= 1 and r["gpu_util"] is None
        assert r["step_samples_s"] >= r["samples_s"] > 0
        if r["feed_samples_s"] is not None:  # None in an interval where no batch was finished
            assert r["feed_samples_s"] > 0 and r["feed_vs_step"] == pytest.approx(
                r["feed_samples_s"] / r["step_samples_s"])
    assert net_train[0]["feed_samples_s"] is not None and net_train[0]["data_wait_s"] > 0  # it filled the pool
    # the GAN stage trains G against the discriminator, and the discriminator itself
    assert all(r["gan"] > 0 and r["d_real"] > 0 and r["d_fake"] > 0 for r in gan_train)
    assert all(r["g_total"] == pytest.approx(r["l1"] + 0.1 * r["gan"], rel=1e-5) for r in gan_train)
    vals = [r for r in net_log + gan_log if r["event"] == "val"]
    assert len(vals) == 3 and all(10 < r["psnr_y"] < 60 and 0 < r["ssim_y"] <= 1 for r in vals)
    assert all(Path(r["sample"]).is_file() for r in vals)
    assert (tmp_path / "run" / "val_pairs.pt").is_file()
    # the GAN stage started from the first stage's EMA weights, not from scratch
    net_export = load_model(tmp_path / "run" / "net" / "tiny_test_net.safetensors").module.state_dict()
    gan_state = torch.load(tmp_path / "run" / "gan" / "checkpoints" / "step_00000002" / "state.pt",
                           weights_only=True)
    drift = max((gan_state["net_g"][k] - v).abs().max().item() for k, v in net_export.items())
    assert drift < 0.01
    # the final export is the GAN stage's EMA generator
    final = load_model(result.exports[0]).module.state_dict()
    last = torch.load(tmp_path / "run" / "gan" / "checkpoints" / "step_00000003" / "state.pt", weights_only=True)
    assert all(torch.equal(final[k], v) for k, v in last["net_g_ema"].items())


def test_loss_falls_on_a_fixed_batch(media: Path, tmp_path: Path) -> None:
    cfg = replace_stage(tiny_config(media), "net", lr_g=1e-3)  # a tiny net learns slowly at 2e-4
    with Trainer(cfg, "net", tmp_path, device="cpu") as trainer:
        gt, lr = trainer.next_batch()
        losses = [trainer.train_step(gt, lr)["l1"].item() for _ in range(30)]
    assert losses[-1] < 0.9 * losses[0]
    assert losses[-1] < min(losses[:10])
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= 25


def test_gan_stage_with_perceptual_loss_from_a_weights_file(media: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "vgg.pth"
    torch.save({f"features.{k}": v for k, v in _vgg19_features().state_dict().items()}, weights)
    cfg = tiny_config(media)
    gan = cfg.stage("gan")
    cfg = replace_stage(cfg, "gan", losses=dataclasses.replace(gan.losses, perceptual=1.0))
    with Trainer(cfg, "gan", tmp_path, device="cpu", vgg_weights=weights) as trainer:
        losses = [trainer.train_step(*trainer.next_batch()) for _ in range(2)]
    assert all(x["perceptual"].item() > 0 for x in losses)
    assert all(x["g_total"].item() == pytest.approx(x["l1"].item() + x["perceptual"].item()
                                                    + 0.1 * x["gan"].item(), rel=1e-5) for x in losses)
