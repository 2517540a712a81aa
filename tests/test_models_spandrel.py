"""Community architectures through spandrel, as users have them.

Each network is made by spandrel's own class (small sizes, random weights), saved the way
users get such files, loaded by `vidsr upscale --model FILE` on a real frame, and compared
with what that module itself gives on the same frame through spandrel's own call.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import spandrel
import torch
from PIL import Image
from safetensors.torch import save_file
from spandrel.architectures.DAT import DAT
from spandrel.architectures.DnCNN import DnCNN
from spandrel.architectures.ESRGAN import ESRGAN
from spandrel.architectures.HAT import HAT
from spandrel.architectures.OmniSR import OmniSR
from spandrel.architectures.PLKSR import PLKSR, RealPLKSR
from spandrel.architectures.RCAN import RCAN
from spandrel.architectures.RealCUGAN import UpCunet2x
from spandrel.architectures.SAFMN import SAFMN
from spandrel.architectures.SPAN import SPAN
from spandrel.architectures.SwinIR import SwinIR
from torch import nn

from vidsr.cli.main import main
from vidsr.engine.device import pick_dtype
from vidsr.engine.tiling import padded_size
from vidsr.models import load_model, save_pth

MEDIA = Path(__file__).resolve().parent / "data"
# 46x38: not a multiple of 8 (SAFMN pads), above every minimum (RealCUGAN's 32).
CROP_BOX = (520, 300, 566, 338)
SMALL_BOX = (520, 300, 548, 322)  # 28x22, for the channel tests


def _random(factory: Callable[[], nn.Module]) -> nn.Module:
    """The net with every weight moved by a fifth of its layer's spread: random, yet not saturating."""
    torch.manual_seed(0)
    net = factory().eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.numel() > 1:
                p.add_(torch.randn_like(p) * 0.2 * p.std())
    return net


def _state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}


# The ways such files reach users: bare state dicts, BasicSR's params_ema, Lightning's state_dict,
# DataParallel's module. prefix, safetensors; as .pth, .pt, .ckpt.
SAVERS: dict[str, Callable[[dict[str, torch.Tensor], Path], Path]] = {
    "pth": lambda sd, p: _save(sd, p.with_suffix(".pth")),
    "pth-params_ema": lambda sd, p: _save({"params_ema": sd, "params": sd}, p.with_suffix(".pth")),
    "pt": lambda sd, p: _save(sd, p.with_suffix(".pt")),
    "ckpt-lightning": lambda sd, p: _save({"state_dict": sd, "epoch": 7, "global_step": 1234}, p.with_suffix(".ckpt")),
    "pth-module.": lambda sd, p: _save({f"module.{k}": v for k, v in sd.items()}, p.with_suffix(".pth")),
    "safetensors": lambda sd, p: _save_safetensors(sd, p.with_suffix(".safetensors")),
}


def _save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def _save_safetensors(sd: dict[str, torch.Tensor], path: Path) -> Path:
    save_file(sd, str(path))
    return path


# (id, spandrel class with small sizes, the architecture spandrel names, scale, how the file is saved)
ARCHS = [
    ("SPAN", lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=2, norm=False),
     "SPAN", 2, "pth"),
    ("RealCUGAN", lambda: UpCunet2x(in_channels=3, out_channels=3), "RealCUGAN", 2, "pth-params_ema"),
    ("RCAN", lambda: RCAN(scale=2, n_resgroups=2, n_resblocks=2, n_feats=16, reduction=4), "RCAN", 2, "safetensors"),
    ("RealPLKSR", lambda: RealPLKSR(dim=16, n_blocks=2, upscaling_factor=2, kernel_size=7, split_ratio=0.25),
     "PLKSR", 2, "pt"),
    ("PLKSR", lambda: PLKSR(dim=16, n_blocks=2, upscaling_factor=3, kernel_size=7, split_ratio=0.25),
     "PLKSR", 3, "pth-module."),
    ("DAT", lambda: DAT(embed_dim=16, depth=[2], num_heads=[2], split_size=[2, 4], expansion_factor=2, upscale=2,
                        upsampler="pixelshuffledirect"), "DAT", 2, "ckpt-lightning"),
    ("SwinIR", lambda: SwinIR(embed_dim=12, depths=[2], num_heads=[2], window_size=4, mlp_ratio=2, upscale=2,
                              upsampler="pixelshuffledirect"), "SwinIR", 2, "safetensors"),
    ("HAT", lambda: HAT(embed_dim=12, depths=[2], num_heads=[2], window_size=4, compress_ratio=3, squeeze_factor=4,
                        mlp_ratio=2, upscale=2, upsampler="pixelshuffle"), "HAT", 2, "pth-params_ema"),
    ("OmniSR", lambda: OmniSR(num_feat=16, block_num=1, pe=True, window_size=4, res_num=1, up_scale=2, bias=True),
     "OmniSR", 2, "pth"),
    ("ESRGAN-old-keys", lambda: ESRGAN(in_nc=3, out_nc=3, num_filters=16, num_blocks=1, scale=2), "ESRGAN", 2, "pth"),
    ("SAFMN", lambda: SAFMN(dim=8, n_blocks=2, ffn_scale=2.0, upscaling_factor=2), "SAFMN", 2, "safetensors"),
    # A restoration net (x1) that spandrel runs through a call of its own (a noise-level map).
    ("FDnCNN", lambda: DnCNN(in_nc=4, out_nc=3, nc=8, nb=8, mode="FDnCNN"), "DnCNN", 1, "ckpt-lightning"),
]


def _crop_png(tmp_path: Path, box: tuple[int, int, int, int] = CROP_BOX, mode: str = "RGB") -> Path:
    path = tmp_path / f"crop_{mode}.png"
    with Image.open(MEDIA / "images" / "anime" / "bg_meadow.jpg") as img:
        img.convert("RGB").crop(box).convert(mode).save(path)
    return path


def _as_tensor(png: Path) -> torch.Tensor:
    """[1, C, H, W] float32 in [0, 1], the way the PNG's samples are."""
    arr = np.asarray(Image.open(png), dtype=np.float32) / 255
    arr = arr[..., None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def _quantised(y: torch.Tensor) -> np.ndarray:
    """[1, C, H, W] float -> [H, W, C] int code values, rounded as vidsr writes 8-bit images."""
    return np.floor(y.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.int16)


def _upscale(png: Path, weights: Path, out: Path, *extra: str) -> int:
    """`vidsr upscale` in this process; returns its exit status."""
    try:
        main(["upscale", str(png), "--model", str(weights), "-o", str(out), "--device", "cpu", "-q", *extra])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _spandrel_output(state_dict: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """What spandrel's own descriptor gives for ``x`` (its padding and call included)."""
    descriptor = spandrel.MAIN_REGISTRY.load({k: v.clone() for k, v in state_dict.items()})
    return descriptor(x.clone()).float()  # a copy: some nets (RCAN) scale their input in place


def _assert_same_picture(got: np.ndarray, want: np.ndarray) -> None:
    """Equal code values, or 1 apart on a tiny fraction of samples.

    The CLI runs channels_last (its default), which adds up each convolution's terms in
    another order; measured over these nets: 1 sample in 20,000 off by 1, the rest equal.
    Allowed: 2 in 10,000 (at least one), off by 1.
    """
    assert got.shape == want.shape
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= 1
    assert np.count_nonzero(diff) <= max(1, diff.size * 2 // 10_000)


@pytest.mark.parametrize(("factory", "arch", "scale", "saver"), [a[1:] for a in ARCHS], ids=[a[0] for a in ARCHS])
def test_upscale_with_spandrel_model_equals_the_module(tmp_path: Path, factory: Callable[[], nn.Module], arch: str,
                                                       scale: int, saver: str) -> None:
    net = _random(factory)
    state_dict = _state_dict(net)
    weights = SAVERS[saver](state_dict, tmp_path / "model")
    model = load_model(weights)
    assert (model.architecture, model.scale, model.loader) == (arch, scale, "spandrel")
    assert model.num_params == sum(p.numel() for p in net.parameters())

    png = _crop_png(tmp_path)
    x = _as_tensor(png)
    with torch.inference_mode():
        want = _spandrel_output(state_dict, x)
    # The comparison means something only where the picture is not clipped flat.
    assert ((want > 0.01) & (want < 0.99)).float().mean() > 0.3

    out = tmp_path / "out.png"
    assert _upscale(png, weights, out) == 0
    got = np.asarray(Image.open(out), dtype=np.int16)
    assert got.shape == (x.shape[2] * scale, x.shape[3] * scale, 3)
    _assert_same_picture(got, _quantised(want))


@pytest.mark.parametrize("saver", list(SAVERS))
def test_every_kind_of_file_loads_the_same_weights(tmp_path: Path, saver: str) -> None:
    net = _random(lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=4, norm=False))
    state_dict = _state_dict(net)
    model = load_model(SAVERS[saver](state_dict, tmp_path / "span"))
    assert (model.architecture, model.scale, model.loader, model.name) == ("SPAN", 4, "spandrel", "span")
    loaded = model.module.net.state_dict()
    assert loaded.keys() == state_dict.keys()
    assert all(torch.equal(loaded[k], state_dict[k]) for k in state_dict)


def test_params_ema_is_preferred_over_params(tmp_path: Path) -> None:
    ema = _state_dict(_random(lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2, norm=False)))
    raw = {k: torch.zeros_like(v) for k, v in ema.items()}
    path = _save({"params": raw, "params_ema": ema}, tmp_path / "both.pth")
    loaded = load_model(path).module.net.state_dict()
    assert all(torch.equal(loaded[k], ema[k]) for k in ema)


# --- Real-ESRGAN layouts: vidsr's own networks win, and agree with spandrel -------------------


def _compact_from_spandrel() -> nn.Module:
    from spandrel.architectures.Compact import Compact

    return _random(lambda: Compact(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=3, upscale=2))


def _rrdb_x2() -> nn.Module:
    from vidsr.models import RRDBNet

    # spandrel assumes ESRGAN's 32 growth channels (vidsr reads them from the weights).
    return _random(lambda: RRDBNet(num_feat=16, num_block=1, num_grow_ch=32, scale=2))


@pytest.mark.parametrize("factory", [_compact_from_spandrel, _rrdb_x2], ids=["compact", "rrdb-x2-unshuffle"])
def test_realesrgan_layouts_load_with_vidsr_nets_and_match_spandrel(tmp_path: Path,
                                                                    factory: Callable[[], nn.Module]) -> None:
    path = save_pth(factory(), tmp_path / "net.pth")
    ours = load_model(path)
    assert ours.loader == "vidsr" and ours.architecture in ("SRVGGNetCompact", "RRDBNet")
    theirs = spandrel.ModelLoader().load_from_file(path)
    x = _as_tensor(_crop_png(tmp_path, (520, 300, 552, 324)))
    with torch.inference_mode():
        a, b = ours.module(x.clone()), theirs.model(x.clone())
    assert a.shape == b.shape == (1, 3, 48, 64)
    assert (a - b).abs().max() < 1e-5
    assert np.array_equal(_quantised(a), _quantised(b))


# --- channels ---------------------------------------------------------------------------------


def test_gray_model_on_a_gray_image_gives_its_own_output(tmp_path: Path) -> None:
    net = _random(lambda: OmniSR(num_in_ch=1, num_out_ch=1, num_feat=16, block_num=1, pe=True, window_size=4,
                                 res_num=1, up_scale=2, bias=True))
    weights = _save(_state_dict(net), tmp_path / "gray.pth")
    assert (load_model(weights).input_channels, load_model(weights).output_channels) == (1, 1)
    png = _crop_png(tmp_path, SMALL_BOX, mode="L")
    out = tmp_path / "out.png"
    assert _upscale(png, weights, out) == 0
    with Image.open(out) as img:
        assert img.mode == "L"
        got = np.asarray(img, dtype=np.int16)[..., None]
    with torch.inference_mode():
        want = net(_as_tensor(png))
    _assert_same_picture(got, _quantised(want))


def test_gray_model_on_colour_runs_each_plane(tmp_path: Path) -> None:
    net = _random(lambda: ESRGAN(in_nc=1, out_nc=1, num_filters=16, num_blocks=1, scale=2))
    weights = _save(_state_dict(net), tmp_path / "gray.pth")
    png = _crop_png(tmp_path, SMALL_BOX)
    out = tmp_path / "out.png"
    assert _upscale(png, weights, out) == 0
    x = _as_tensor(png)
    with torch.inference_mode():
        want = torch.cat([net(x[:, c:c + 1]) for c in range(3)], dim=1)
    _assert_same_picture(np.asarray(Image.open(out), dtype=np.int16), _quantised(want))


def test_rgba_model_on_an_opaque_image_sees_an_opaque_alpha(tmp_path: Path) -> None:
    net = _random(lambda: ESRGAN(in_nc=4, out_nc=4, num_filters=16, num_blocks=1, scale=2))
    weights = _save(_state_dict(net), tmp_path / "rgba.pth")
    png = _crop_png(tmp_path, SMALL_BOX)
    out = tmp_path / "out.png"
    assert _upscale(png, weights, out) == 0
    x = _as_tensor(png)
    with torch.inference_mode():
        want = net(torch.cat([x, torch.ones_like(x[:, :1])], dim=1))[:, :3]
    _assert_same_picture(np.asarray(Image.open(out), dtype=np.int16), _quantised(want))


def test_unsupported_channel_count_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = _random(lambda: ESRGAN(in_nc=2, out_nc=2, num_filters=8, num_blocks=1, scale=2))
    weights = _save(_state_dict(net), tmp_path / "two.pth")
    capsys.readouterr()
    assert _upscale(_crop_png(tmp_path), weights, tmp_path / "out.png") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vidsr: error:") and "2 to 2 channel(s)" in err[0]
    assert not (tmp_path / "out.png").exists()


# --- sizes ------------------------------------------------------------------------------------


def test_frame_below_the_minimum_is_padded_like_spandrel(tmp_path: Path) -> None:
    net = _random(lambda: SwinIR(embed_dim=12, depths=[2], num_heads=[2], window_size=4, mlp_ratio=2, upscale=2,
                                 upsampler="pixelshuffledirect"))
    state_dict = _state_dict(net)
    weights = _save(state_dict, tmp_path / "swinir.pth")
    assert load_model(weights).min_size == 16
    png = _crop_png(tmp_path, (530, 310, 539, 317))  # 9x7: mirrored to 16x13, then the edge repeated
    out = tmp_path / "out.png"
    assert _upscale(png, weights, out) == 0
    with torch.inference_mode():
        want = _spandrel_output(state_dict, _as_tensor(png))
    got = np.asarray(Image.open(out), dtype=np.int16)
    assert got.shape == (14, 18, 3)
    _assert_same_picture(got, _quantised(want))


@pytest.mark.parametrize(("hw", "multiple", "minimum", "square", "want"), [
    ((7, 9), 1, 0, False, (7, 9)),
    ((7, 9), 4, 0, False, (8, 12)),
    ((7, 9), 1, 16, False, (16, 16)),
    ((30, 50), 8, 16, False, (32, 56)),
    ((30, 50), 128, 0, True, (128, 128)),
])
def test_padded_size_matches_spandrel(hw: tuple[int, int], multiple: int, minimum: int, square: bool,
                                      want: tuple[int, int]) -> None:
    assert padded_size(*hw, multiple, minimum, square) == want
    req = spandrel.SizeRequirements(minimum=minimum, multiple_of=multiple, square=square)
    pad_w, pad_h = req.get_padding(hw[1], hw[0])
    assert (hw[0] + pad_h, hw[1] + pad_w) == want


def test_per_image_call_handles_a_batch(tmp_path: Path) -> None:
    net = _random(lambda: DnCNN(in_nc=4, out_nc=3, nc=8, nb=8, mode="FDnCNN"))
    state_dict = _state_dict(net)
    model = load_model(_save(state_dict, tmp_path / "fdncnn.pth"))
    x = torch.rand(3, 3, 12, 10, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        batch = model.module(x)
        one_by_one = torch.cat([_spandrel_output(state_dict, x[i:i + 1]) for i in range(3)])
    assert torch.allclose(batch.clamp(0, 1), one_by_one, atol=1e-6)


def test_input_frames_survive_a_net_that_scales_its_input_in_place(tmp_path: Path) -> None:
    net = _random(lambda: RCAN(scale=2, n_resgroups=1, n_resblocks=1, n_feats=8, reduction=4))
    model = load_model(_save(_state_dict(net), tmp_path / "rcan.pth"))
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    before = x.clone()
    with torch.inference_mode():
        first, second = model.module(x), model.module(x)
    assert torch.equal(x, before) and torch.equal(first, second)


# --- precision --------------------------------------------------------------------------------


def test_half_unsafe_architecture_runs_in_fp32_on_cuda(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    unsafe = load_model(_save(_state_dict(_random(lambda: SwinIR(
        embed_dim=12, depths=[2], num_heads=[2], window_size=4, mlp_ratio=2, upscale=2,
        upsampler="pixelshuffledirect"))), tmp_path / "swinir.pth"))
    safe = load_model(_save(_state_dict(_random(lambda: SPAN(
        num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2, norm=False))), tmp_path / "span.pth"))
    assert not unsafe.supports_half and unsafe.supports_bf16 and unsafe.precisions == ("fp32", "bf16")
    assert safe.precisions == ("fp32", "fp16", "bf16")
    cuda = torch.device("cuda")  # only the decision is tested: no CUDA kernel runs
    for precision in ("auto", "fp16"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="vidsr.engine.device"):
            assert pick_dtype(cuda, precision, model=unsafe) == torch.float32
        assert any("not safe in fp16" in r.getMessage() and "SwinIR" in r.getMessage() for r in caplog.records)
    assert pick_dtype(cuda, "bf16", model=unsafe) == torch.bfloat16
    assert pick_dtype(cuda, "auto", model=safe) == torch.float16
    assert pick_dtype(cuda, "fp32", model=unsafe) == torch.float32
    assert pick_dtype(torch.device("cpu"), "auto", model=unsafe) == torch.float32


def test_bf16_unsafe_falls_back_too() -> None:
    from dataclasses import replace

    from vidsr.models import SRVGGNetCompact

    model = load_model("animevideov3")
    assert isinstance(model.module, SRVGGNetCompact)
    no_bf16 = replace(model, supports_bf16=False)
    assert pick_dtype(torch.device("cuda"), "bf16", model=no_bf16) == torch.float32
    assert pick_dtype(torch.device("cuda"), "fp16", model=no_bf16) == torch.float16

