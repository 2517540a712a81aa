"""RRDBNet (ESRGAN / Real-ESRGAN x4plus): recognition from weights and construction."""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from vidsr.models._architecture import Architecture, NetKwargs, StateDict
from vidsr.models._ncnn_format import NcnnLayer
from vidsr.models.rrdb._net import RRDBNet

__all__ = ["ARCHITECTURE", "RRDBNet"]

_REQUIRED = (
    "conv_first.weight",
    "body.0.rdb1.conv1.weight",
    "conv_body.weight",
    "conv_up1.weight",
    "conv_up2.weight",
    "conv_hr.weight",
    "conv_last.weight",
)
_BODY_KEY = re.compile(r"body\.(\d+)\.")
# conv_first sees num_in_ch * fold input channels after pixel_unshuffle; fold gives scale.
_SCALE_BY_FOLD = {1: 4, 4: 2, 16: 1}
# conv_first, five convs per dense block x three per RRDB, then body/up1/up2/hr/last.
_CONVS_OUTSIDE_BODY = 6
_CONVS_PER_BLOCK = 15


def _scale_from_channels(first_in_ch: int, num_out_ch: int) -> int | None:
    if num_out_ch <= 0 or first_in_ch % num_out_ch:
        return None
    return _SCALE_BY_FOLD.get(first_in_ch // num_out_ch)


def detect(state_dict: StateDict) -> NetKwargs | None:
    if any(key not in state_dict for key in _REQUIRED):
        return None
    blocks = {int(m[1]) for key in state_dict if (m := _BODY_KEY.match(key))}
    first = state_dict["conv_first.weight"]
    num_out_ch = int(state_dict["conv_last.weight"].shape[0])
    # Real-ESRGAN RRDB nets map RGB to RGB; in == out is what makes the fold readable.
    scale = _scale_from_channels(int(first.shape[1]), num_out_ch)
    if scale is None:
        return None
    return {
        "num_in_ch": num_out_ch,
        "num_out_ch": num_out_ch,
        "num_feat": int(first.shape[0]),
        "num_block": max(blocks) + 1,
        "num_grow_ch": int(state_dict["body.0.rdb1.conv1.weight"].shape[0]),
        "scale": scale,
    }


def detect_ncnn(layers: Sequence[NcnnLayer]) -> NetKwargs | None:
    types = {layer.type for layer in layers}
    if not {"Concat", "Eltwise"} <= types or "PixelShuffle" in types or "PReLU" in types:
        return None
    convs = [layer for layer in layers if layer.type == "Convolution"]
    num_block, rest = divmod(len(convs) - _CONVS_OUTSIDE_BODY, _CONVS_PER_BLOCK)
    if num_block < 1 or rest:
        return None
    num_feat = convs[0].int_param(0)
    kernel = convs[0].int_param(1)
    first_in_ch = convs[0].int_param(6) // max(num_feat * kernel * kernel, 1)
    num_out_ch = convs[-1].int_param(0)
    scale = _scale_from_channels(first_in_ch, num_out_ch)
    if scale is None:
        return None
    return {
        "num_in_ch": num_out_ch,
        "num_out_ch": num_out_ch,
        "num_feat": num_feat,
        "num_block": num_block,
        "num_grow_ch": convs[1].int_param(0),
        "scale": scale,
    }


def _scale(kwargs: NetKwargs) -> int:
    return int(kwargs["scale"])


def _size_multiple(kwargs: NetKwargs) -> int:
    return {4: 1, 2: 2, 1: 4}[int(kwargs["scale"])]


def _train_kwargs(cfg: Any, net_scale: int) -> NetKwargs:
    """From a training config's network section (vidsr.train.train_config.NetworkConfig)."""
    return {"num_in_ch": 3, "num_out_ch": 3, "num_feat": cfg.num_feat, "num_block": cfg.num_block,
            "num_grow_ch": cfg.num_grow_ch, "scale": net_scale}


ARCHITECTURE = Architecture(
    name="RRDBNet",
    net_class=RRDBNet,
    detect=detect,
    detect_ncnn=detect_ncnn,
    scale=_scale,
    size_multiple=_size_multiple,
    train_name="rrdb",
    train_kwargs=_train_kwargs,
)
