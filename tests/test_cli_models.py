"""`vidsr models`, `models info`, `models export`, and the one line a file vidsr cannot load gets."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from PIL import Image
from spandrel.architectures.SPAN import SPAN
from spandrel.architectures.SwinIR import SwinIR

from vidsr.cli.main import main
from vidsr.models import load_model

MEDIA = Path(__file__).resolve().parent / "data"

def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`vidsr ARGS` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _fields(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith(" "))


SWINIR_PARAMS = 7_072


@pytest.fixture(scope="module")
def swinir_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = SwinIR(embed_dim=12, depths=[2], num_heads=[2], window_size=4, mlp_ratio=2, upscale=2,
                 upsampler="pixelshuffledirect")
    assert sum(p.numel() for p in net.parameters()) == SWINIR_PARAMS
    path = tmp_path_factory.mktemp("models") / "2x_tiny_swinir.pth"
    torch.save({"params_ema": net.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def small_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "in.png"
    with Image.open(MEDIA / "images" / "anime" / "bg_meadow.jpg") as img:
        img.convert("RGB").crop((520, 300, 552, 324)).save(path)
    return path


def test_models_lists_the_named_models(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "models")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()[1:6]]
    assert names == ["animevideov3", "animevideov3-x2", "animevideov3-x3", "x4plus", "x4plus-anime"]
    assert "spandrel" in out and "vidsr models info" in out
    assert _cli(capsys, "models", "list")[1] == out


def test_info_on_a_spandrel_file(capsys: pytest.CaptureFixture[str], swinir_file: Path) -> None:
    code, out, err = _cli(capsys, "models", "info", str(swinir_file))
    assert code == 0, err
    info = {k.strip(): v.strip() for k, v in _fields(out).items()}
    assert info["name"] == "2x_tiny_swinir" and info["source"] == str(swinir_file)
    assert info["architecture"].startswith("SwinIR (spandrel 0.4.")
    assert info["scale"] == "x2"
    assert info["channels"] == "3 in (RGB), 3 out (RGB)"
    assert info["parameters"] == f"{SWINIR_PARAMS:,}"
    assert info["precisions"].startswith("fp32, bf16 (fp16 unsafe")
    assert info["size multiple"].startswith("1, at least 16 px")


def test_info_on_a_named_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "models", "info", "x4plus-anime")
    info = {k.strip(): v.strip() for k, v in _fields(out).items()}
    assert code == 0
    assert info["architecture"] == "RRDBNet (vidsr's own network)"
    assert (info["scale"], info["parameters"], info["precisions"]) == ("x4", "4,467,779", "fp32, fp16, bf16")
    assert info["size multiple"] == "1 (any size)"


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_export_a_spandrel_model(capsys: pytest.CaptureFixture[str], swinir_file: Path, tmp_path: Path,
                                 suffix: str) -> None:
    out = tmp_path / f"copy{suffix}"
    code, stdout, err = _cli(capsys, "models", "export", str(swinir_file), "-o", str(out))
    assert code == 0, err
    assert stdout.strip() == f"wrote {out} (SwinIR, x2, {SWINIR_PARAMS:,} parameters)"
    original, copy = load_model(swinir_file), load_model(out)
    x = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(original.module(x), copy.module(x))
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left behind


def test_export_refuses_to_overwrite_and_odd_suffixes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "a.safetensors"
    out.write_bytes(b"mine")
    code, _, err = _cli(capsys, "models", "export", "animevideov3", "-o", str(out))
    assert code == 1 and "output exists" in err and out.read_bytes() == b"mine"
    assert _cli(capsys, "models", "export", "animevideov3", "-o", str(out), "--overwrite")[0] == 0
    assert load_model(out).num_params == 621_424
    code, _, err = _cli(capsys, "models", "export", "animevideov3", "-o", str(tmp_path / "a.onnx"))
    assert code == 1 and ".safetensors or .pth" in err and not (tmp_path / "a.onnx").exists()


# --- files vidsr cannot load: one line that says what was found ---------------------------


def _span() -> SPAN:
    torch.manual_seed(0)
    return SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2, norm=False).eval()


def _full_model(path: Path) -> Path:
    torch.save(_span(), path)
    return path


def _torchscript(path: Path) -> Path:
    torch.jit.trace(_span(), torch.rand(1, 3, 8, 8)).save(str(path))
    return path


def _with_objects(path: Path) -> Path:
    torch.save({"state_dict": _span().state_dict(), "args": argparse.Namespace(lr=1e-4)}, path)
    return path


def _unknown_keys(path: Path) -> Path:
    torch.save({"state_dict": {"encoder.weight": torch.zeros(4, 3, 3, 3), "decoder.bias": torch.zeros(3)},
                "epoch": 3}, path)
    return path


def _a_list(path: Path) -> Path:
    torch.save([torch.zeros(3)], path)
    return path


def _garbage(path: Path) -> Path:
    path.write_bytes(b"this is not a checkpoint\n" * 8)
    return path


def _bad_safetensors(path: Path) -> Path:
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    return path


BAD_FILES = [
    ("full-model.pth", _full_model, "a full pickled model (spandrel.architectures.SPAN"),
    ("script.pt", _torchscript, "a TorchScript program, not a state dict"),
    ("trainer.ckpt", _with_objects, "Python objects besides tensors (e.g. argparse.Namespace)"),
    ("other.pth", _unknown_keys, "matches no architecture vidsr or spandrel 0.4."),
    ("list.pth", _a_list, "holds a list, not a state dict"),
    ("junk.pth", _garbage, "not a PyTorch weights file"),
    ("junk.safetensors", _bad_safetensors, "cannot load"),
]


@pytest.mark.parametrize(("name", "make", "says"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_unloadable_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, small_png: Path,
                                     name: str, make, says: str) -> None:
    path = make(tmp_path / name)
    for args in (("models", "info", str(path)),
                 ("upscale", str(small_png), "--model", str(path), "-o", str(tmp_path / "out.png"),
                  "--device", "cpu")):
        code, _, err = _cli(capsys, *args)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1, err
        assert lines[0].startswith("vidsr: error:") and says in lines[0], lines[0]
    assert not (tmp_path / "out.png").exists()


def test_unknown_keys_are_listed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _cli(capsys, "models", "info", str(_unknown_keys(tmp_path / "other.pth")))
    assert code == 1
    assert "2 tensor(s): encoder.weight, decoder.bias; top-level keys: state_dict, epoch" in err
