"""Building the generator from its config, and loading official weights into it for fine-tuning."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import torch
from torch import nn

from vidsr.errors import ModelError
from vidsr.models import SRVGGNetCompact, load_model
from vidsr.models._resize import ResizedOutput
from vidsr.models.registry import architecture_of, trainable
from vidsr.train.train_config import NetworkConfig

log = logging.getLogger(__name__)


def build_generator(cfg: NetworkConfig) -> nn.Module:
    """A freshly initialised generator (RGB in, RGB out), with Real-ESRGAN parameter names.

    A compact net with a ``net_scale`` above its ``scale`` upscales by ``net_scale`` and
    resizes its output bicubically to ``scale``, as the official animevideov3-x2/-x3 do;
    exported, it records that resize and loads back as the same model.
    """
    arch = trainable()[cfg.arch]
    assert arch.train_kwargs is not None
    net_scale = cfg.net_scale or cfg.scale  # net_scale is a compact setting (checked by NetworkConfig)
    net = arch.build(arch.train_kwargs(cfg, net_scale))
    return net if net_scale == cfg.scale else ResizedOutput(net, cfg.scale / net_scale)


def _net_scale(module: nn.Module, scale: int) -> int | None:
    """The inner net's upscale of a resized-output model (None when there is no resize)."""
    if not isinstance(module, ResizedOutput):
        return None
    return round(scale / module.factor)


def pretrained_state_dict(name_or_path: str) -> dict[str, torch.Tensor]:
    """The weights of a model name or file accepted by :func:`vidsr.models.load_model`.

    A model with an output resize (animevideov3-x2) gives its inner net's weights under
    ``net.``, as a generator built with the matching ``net_scale`` names them.
    """
    model = load_model(name_or_path)
    module = model.module
    if model.loader != "vidsr":
        raise ModelError(f"pretrained {name_or_path!r} is a {model.architecture} (loaded through spandrel); "
                         f"vidsr trains its own {' and '.join(trainable())} nets only")
    inner = module.net if isinstance(module, ResizedOutput) else module
    arch = architecture_of(inner)
    if arch is None or arch.train_name is None:
        raise ModelError(f"pretrained {name_or_path!r} is a {model.architecture}; only "
                         f"{' and '.join(trainable())} nets can be fine-tuned")
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def with_pretrained(cfg: NetworkConfig, name_or_path: str) -> NetworkConfig:
    """``cfg`` set to fine-tune ``name_or_path``: its ``pretrained`` set and, for a model that is a
    larger net resized down (the official animevideov3-x2 is the x4 net at half size), or a
    larger compact net for a smaller scale (animevideov3 for compact_x2: the same), its
    ``net_scale`` set to that net's, so that the weights load strictly.

    Raises :class:`ModelError` when the model cannot serve the config's scale.
    """
    model = load_model(name_or_path)
    net_scale = _net_scale(model.module, model.scale)
    if model.scale > cfg.scale and net_scale is None and isinstance(model.module, SRVGGNetCompact):
        net_scale = model.scale  # a x4 compact net for a x2 config: resized, as the official x2 export is
    elif model.scale != cfg.scale:
        raise ModelError(f"pretrained {name_or_path!r} upscales x{model.scale}, the config's network "
                         f"x{cfg.scale}: pick a model of the config's scale (e.g. animevideov3-x2 for x2)")
    if net_scale is not None and cfg.arch != "compact":
        raise ModelError(f"pretrained {name_or_path!r} is a resized x{net_scale} net; the config's is an {cfg.arch}")
    return dataclasses.replace(cfg, pretrained=str(name_or_path), net_scale=net_scale)


def load_into(net: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """``net.load_state_dict(state_dict, strict=True)`` with an error that names the source.

    A generator with an output resize takes the weights of a bare net of its ``net_scale``
    (the x4 animevideov3 for a x2 config) as those of its inner net.
    """
    if isinstance(net, ResizedOutput) and state_dict and not any(k.startswith("net.") for k in state_dict):
        state_dict = {f"net.{k}": v for k, v in state_dict.items()}
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:400]
        hint = ""
        if any(k.startswith("net.") for k in state_dict) != isinstance(net, ResizedOutput):
            hint = (" (the weights are a net with an output resize, or the config's net is: fine-tune it with "
                    "--pretrained, which sets network.net_scale to match)")
        raise ModelError(f"{source} does not fit the configured network{hint}: {first}") from None
    log.info("generator initialised from %s", source)
