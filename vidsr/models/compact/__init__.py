"""SRVGGNetCompact: recognition from weights and construction."""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from vidsr.models._architecture import Architecture, NetKwargs, StateDict
from vidsr.models._ncnn_format import NcnnLayer
from vidsr.models.compact._net import SRVGGNetCompact

__all__ = ["ARCHITECTURE", "SRVGGNetCompact"]

_KEY = re.compile(r"body\.(\d+)\.(weight|bias)")


def _upscale(last_out_ch: int, num_out_ch: int) -> int | None:
    if num_out_ch <= 0 or last_out_ch % num_out_ch:
        return None
    upscale = math.isqrt(last_out_ch // num_out_ch)
    return upscale if upscale >= 1 and upscale * upscale * num_out_ch == last_out_ch else None


def detect(state_dict: StateDict) -> NetKwargs | None:
    indices = set()
    for key in state_dict:
        match = _KEY.fullmatch(key)
        if match is None:
            return None
        indices.add(int(match[1]))
    if 0 not in indices:
        return None
    last_index = max(indices)
    first = state_dict["body.0.weight"]
    last = state_dict.get(f"body.{last_index}.weight")
    # Convs sit at even indices, activations at odd ones, so the last conv is even.
    if first.ndim != 4 or last is None or last.ndim != 4 or last_index < 2 or last_index % 2:
        return None
    num_feat, num_in_ch = int(first.shape[0]), int(first.shape[1])
    # The checkpoint cannot tell output channels from upscale; every Real-ESRGAN compact
    # net maps RGB to RGB, so assume as many outputs as inputs.
    upscale = _upscale(int(last.shape[0]), num_in_ch)
    if upscale is None:
        return None
    # relu and leakyrelu carry no weights and cannot be told apart; relu is the guess.
    act_type = "prelu" if "body.1.weight" in state_dict else "relu"
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_in_ch,
        "num_feat": num_feat,
        "num_conv": last_index // 2 - 1,
        "upscale": upscale,
        "act_type": act_type,
    }


def _ncnn_act_type(layers: Sequence[NcnnLayer], convs: Sequence[NcnnLayer]) -> str | None:
    if sum(layer.type == "PReLU" for layer in layers) == len(convs) - 1:
        return "prelu"
    # onnx2ncnn fuses ReLU/LeakyReLU into the conv (param 9) or keeps a ReLU layer (0=slope).
    fused = {conv.int_param(9) for conv in convs[:-1]}
    relus = [layer for layer in layers if layer.type == "ReLU"]
    if fused == {1} or (fused == {0} and relus and all(r.float_param(0) == 0 for r in relus)):
        return "relu"
    if fused == {2} or (fused == {0} and relus and all(r.float_param(0) > 0 for r in relus)):
        return "leakyrelu"
    return None


def detect_ncnn(layers: Sequence[NcnnLayer]) -> NetKwargs | None:
    types = {layer.type for layer in layers}
    if "PixelShuffle" not in types or types & {"Concat", "Eltwise"}:
        return None
    convs = [layer for layer in layers if layer.type == "Convolution"]
    if len(convs) < 2:
        return None
    shuffle = next(layer for layer in layers if layer.type == "PixelShuffle")
    upscale = shuffle.int_param(0, 1)
    num_feat = convs[0].int_param(0)
    kernel = convs[0].int_param(1)
    num_in_ch = convs[0].int_param(6) // max(num_feat * kernel * kernel, 1)
    last_out = convs[-1].int_param(0)
    act_type = _ncnn_act_type(layers, convs)
    if act_type is None or last_out % (upscale * upscale):
        return None
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": last_out // (upscale * upscale),
        "num_feat": num_feat,
        "num_conv": len(convs) - 2,
        "upscale": upscale,
        "act_type": act_type,
    }


def _scale(kwargs: NetKwargs) -> int:
    return int(kwargs["upscale"])


def _size_multiple(kwargs: NetKwargs) -> int:
    return 1


def _train_kwargs(cfg: Any, net_scale: int) -> NetKwargs:
    """From a training config's network section (vidsr.train.train_config.NetworkConfig)."""
    return {"num_in_ch": 3, "num_out_ch": 3, "num_feat": cfg.num_feat, "num_conv": cfg.num_conv,
            "upscale": net_scale, "act_type": cfg.act_type or "prelu"}


ARCHITECTURE = Architecture(
    name="SRVGGNetCompact",
    net_class=SRVGGNetCompact,
    detect=detect,
    detect_ncnn=detect_ncnn,
    scale=_scale,
    size_multiple=_size_multiple,
    train_name="compact",
    train_kwargs=_train_kwargs,
)
