"""Building the generator from its config, and loading official weights into it for fine-tuning."""
from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import nn

from vidsr.errors import ModelError
from vidsr.models import RRDBNet, SRVGGNetCompact, load_model
from vidsr.train.config import NetworkConfig

log = logging.getLogger(__name__)


def build_generator(cfg: NetworkConfig) -> nn.Module:
    """A freshly initialised generator (RGB in, RGB out), with Real-ESRGAN parameter names."""
    if cfg.arch == "compact":
        assert cfg.num_conv is not None
        return SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=cfg.num_feat, num_conv=cfg.num_conv,
                               upscale=cfg.scale, act_type=cfg.act_type or "prelu")
    assert cfg.num_block is not None and cfg.num_grow_ch is not None
    return RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=cfg.num_feat, num_block=cfg.num_block,
                   num_grow_ch=cfg.num_grow_ch, scale=cfg.scale)


def pretrained_state_dict(name_or_path: str) -> dict[str, torch.Tensor]:
    """The weights of a model name or file accepted by :func:`vidsr.models.load_model`."""
    model = load_model(name_or_path)
    module = model.module
    if model.loader != "vidsr":
        raise ModelError(f"pretrained {name_or_path!r} is a {model.architecture} (loaded through spandrel); "
                         "vidsr trains its own compact and RRDB nets only")
    if not isinstance(module, (SRVGGNetCompact, RRDBNet)):
        raise ModelError(f"pretrained {name_or_path!r} is a {model.architecture} with an output resize "
                         f"(x{model.scale} from a larger net); it cannot be fine-tuned as a x{model.scale} net")
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def load_into(net: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """``net.load_state_dict(state_dict, strict=True)`` with an error that names the source."""
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:400]
        raise ModelError(f"{source} does not fit the configured network: {first}") from None
    log.info("generator initialised from %s", source)
