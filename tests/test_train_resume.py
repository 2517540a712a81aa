"""Checkpoints: a resumed stage continues bit for bit; Ctrl-C and time limits leave a checkpoint."""
from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import pytest
import torch

from vidsr.errors import OutputExistsError
from vidsr.train import Trainer, load_train_config, replace_stage, train, with_overrides
from vidsr.train import checkpoint as ckpt

# torchvision 0.29 deprecates its image codecs (the trainer filters this for the process; pytest re-enables it)
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def tiny_config(media: Path):  # type: ignore[no-untyped-def]
    return with_overrides(load_train_config("tiny_test"), data=[media / "images" / "anime"],
                          holdout=["bg_meadow.jpg"])


@pytest.mark.parametrize("stage", ["net", "gan"])
def test_resume_reproduces_the_next_steps_exactly(media: Path, tmp_path: Path, stage: str) -> None:
    cfg = tiny_config(media)
    with Trainer(cfg, stage, tmp_path, device="cpu") as trainer:
        trainer.run(until=2)  # checkpoint_every: 2
        straight = [trainer.train_step(*trainer.next_batch()) for _ in range(2)]
    with Trainer(cfg, stage, tmp_path, device="cpu", resume=True) as trainer:
        assert trainer.step == 2
        resumed = [trainer.train_step(*trainer.next_batch()) for _ in range(2)]
    for a, b in zip(straight, resumed):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].item() == b[k].item(), k  # bitwise equal floats
    # without the checkpoint the same steps come out differently: the test can fail
    with Trainer(cfg, stage, tmp_path / "fresh", device="cpu") as trainer:
        trainer.step = 2
        other = trainer.train_step(*trainer.next_batch())
    assert other["g_total"].item() != straight[0]["g_total"].item()


def test_ctrl_c_saves_a_checkpoint_then_stops(media: Path, tmp_path: Path) -> None:
    cfg = replace_stage(tiny_config(media), "net", steps=50, checkpoint_every=100, validate_every=100)
    with Trainer(cfg, "net", tmp_path, device="cpu") as trainer:
        step = trainer.train_step

        def step_then_interrupt(gt: torch.Tensor, lr: torch.Tensor) -> dict[str, torch.Tensor]:
            out = step(gt, lr)
            if trainer.step == 3:
                signal.raise_signal(signal.SIGINT)  # as Ctrl-C: handled, the step finishes
            return out

        trainer.train_step = step_then_interrupt  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            trainer.run()
    saved = ckpt.latest(tmp_path / "net" / "checkpoints")
    assert saved is not None and saved.name == "step_00000003"
    assert ckpt.load_state(saved)["step"] == 3
    with Trainer(cfg, "net", tmp_path, device="cpu", resume=True) as trainer:
        assert trainer.step == 3


def test_a_run_folder_is_not_reused_without_resume(media: Path, tmp_path: Path) -> None:
    cfg = replace_stage(tiny_config(media), "net", steps=2)
    cfg = dataclasses.replace(cfg, stages=cfg.stages[:1])
    train(cfg, tmp_path, device="cpu", progress=False)
    with pytest.raises(OutputExistsError, match="--resume"):
        train(cfg, tmp_path, device="cpu", progress=False)
    again = train(cfg, tmp_path, device="cpu", progress=False, resume=True)
    assert again.stages == () and [p.name for p in again.exports] == ["tiny_test.safetensors", "tiny_test.pth"]


def test_a_time_limit_stops_with_a_checkpoint_and_an_export(media: Path, tmp_path: Path) -> None:
    cfg = replace_stage(tiny_config(media), "net", steps=50, checkpoint_every=100, validate_every=100)
    with Trainer(cfg, "net", tmp_path, device="cpu") as trainer:
        result = trainer.run(time_limit=0)
    assert (result.steps, result.finished) == (1, False)
    assert ckpt.latest(tmp_path / "net" / "checkpoints").name == "step_00000001"  # type: ignore[union-attr]
    assert [p.suffix for p in result.exports] == [".safetensors", ".pth"] and all(p.is_file() for p in result.exports)
    assert not (tmp_path / "net" / "done.json").exists()
