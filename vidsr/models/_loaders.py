"""Loading weights by file type into a ModelDescriptor, and saving them back.

Every path into one of vidsr's own modules goes through ``_describe``: one place that
builds the net, loads it strictly and fills in the descriptor; spandrel's go through
``_spandrel.load_with_spandrel``.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from vidsr.errors import ModelError
from vidsr.models import registry
from vidsr.models._architecture import Architecture, NetKwargs
from vidsr.models._checkpoint import PICKLE_SUFFIXES, RESIZE_KEY, SAFETENSORS_SUFFIX, read_checkpoint
from vidsr.models._descriptor import ModelDescriptor
from vidsr.models._ncnn_format import NcnnLayer, parse_param, read_bin
from vidsr.models._resize import ResizedOutput
from vidsr.models._spandrel import SpandrelNet, load_with_spandrel

log = logging.getLogger(__name__)

STATE_DICT_SUFFIXES = (*PICKLE_SUFFIXES, SAFETENSORS_SUFFIX)
NCNN_SUFFIX = ".param"
SUFFIXES = (*STATE_DICT_SUFFIXES, NCNN_SUFFIX)


def _scale_with_resize(arch: Architecture, kwargs: NetKwargs, resize: float | None) -> int:
    scale = arch.scale(kwargs)
    if resize is None:
        return scale
    resized = scale * resize
    if resized < 1 or not math.isclose(resized, round(resized), abs_tol=1e-4):
        raise ModelError(f"an output resize of {resize} on a x{scale} net gives a non-integer scale")
    return round(resized)


def _describe(
    name: str,
    source: str,
    arch: Architecture,
    kwargs: NetKwargs,
    state_dict: Mapping[str, torch.Tensor],
    resize: float | None,
) -> ModelDescriptor:
    net = arch.build(kwargs)
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{source}: weights do not fit {arch.name}({kwargs}): {exc}") from exc
    module: nn.Module = net if resize is None else ResizedOutput(net, resize)
    module = module.float().eval().requires_grad_(False)
    log.debug("loaded %s as %s%s from %s", name, arch.name, kwargs, source)
    return ModelDescriptor(
        name=name,
        architecture=arch.name,
        module=module,
        scale=_scale_with_resize(arch, kwargs, resize),
        num_params=sum(p.numel() for p in net.parameters()),
        source=source,
        size_multiple=arch.size_multiple(kwargs),
        supports_half=True,
        supports_bf16=True,
        input_channels=int(kwargs.get("num_in_ch", 3)),
        output_channels=int(kwargs.get("num_out_ch", 3)),
    )


# --- .pth / .pt / .ckpt / .safetensors ---------------------------------------------------


def load_state_dict_file(path: Path, name: str | None = None) -> ModelDescriptor:
    """Load a weights file, detecting its architecture.

    vidsr's own networks come first: Real-ESRGAN's compact and RRDB layouts are what the
    official weights, ncnn imports and training use, and built here they can be saved,
    fine-tuned and checked against ncnn. Everything else, and any file they detect but
    cannot load, goes to spandrel.
    """
    checkpoint = read_checkpoint(path)
    name, source = name or path.stem, str(path)
    hit = registry.find_state_dict_architecture(checkpoint.state_dict)
    if hit is not None:
        arch, kwargs = hit
        try:
            return _describe(name, source, arch, kwargs, checkpoint.state_dict, checkpoint.resize)
        except ModelError as ours:
            try:
                return load_with_spandrel(checkpoint, name=name, source=source)
            except ModelError:
                raise ours from None
    if checkpoint.resize is not None:
        raise ModelError(f"{source}: records an output resize ({RESIZE_KEY}) but its weights are not a "
                         f"{registry.names()} net ({checkpoint.summary()})")
    return load_with_spandrel(checkpoint, name=name, source=source)


# --- ncnn .param + .bin ---------------------------------------------------------------


def _ncnn_graph(param_path: Path) -> tuple[list[NcnnLayer], Architecture, NetKwargs, float | None]:
    """Parse the graph and split off a trailing bicubic resize, if any."""
    layers = parse_param(param_path)
    resize = None
    if layers and layers[-1].type == "Interp":
        tail = layers[-1]
        fy, fx = tail.float_param(1, 1.0), tail.float_param(2, 1.0)
        if tail.int_param(0) != 3 or fy != fx or fy <= 0:
            raise ModelError(
                f"{param_path}: trailing Interp {tail.name} is not a uniform bicubic resize "
                f"(0={tail.params.get(0)} 1={fy} 2={fx})"
            )
        resize = fx
        layers = layers[:-1]
    arch, kwargs = registry.detect_ncnn(layers, str(param_path))
    return layers, arch, kwargs, resize


def describe_ncnn(param_path: Path) -> tuple[str, int, int]:
    """(architecture, scale, parameter count) of an ncnn model, read from its .param only."""
    layers, arch, kwargs, resize = _ncnn_graph(param_path)
    num_params = sum(layer.num_weights() for layer in layers)
    return arch.name, _scale_with_resize(arch, kwargs, resize), num_params


def load_ncnn(param_path: Path, name: str | None = None) -> ModelDescriptor:
    """Load an ncnn ``.param`` and the ``.bin`` beside it into our own module."""
    bin_path = param_path.with_suffix(".bin")
    if not bin_path.is_file():
        raise ModelError(f"{param_path}: expected its weights at {bin_path}, which does not exist")
    layers, arch, kwargs, resize = _ncnn_graph(param_path)
    tensors = read_bin(bin_path, layers)
    # ncnn stores weights in layer order, which our nets declare in the same order,
    # so the flat list zips onto state_dict(); shape checks catch any disagreement.
    template = arch.build(kwargs).state_dict()
    if len(tensors) != len(template):
        raise ModelError(
            f"{param_path}: has {len(tensors)} weight blobs, {arch.name}({kwargs}) expects {len(template)}"
        )
    state_dict = {}
    for (key, target), flat in zip(template.items(), tensors):
        if flat.numel() != target.numel():
            raise ModelError(
                f"{param_path}: weight blob for {key} has {flat.numel()} values, expected {tuple(target.shape)}"
            )
        state_dict[key] = flat.view(target.shape)
    return _describe(name or param_path.stem, str(param_path), arch, kwargs, state_dict, resize)


# --- saving ---------------------------------------------------------------------------


def _unwrap(module: nn.Module) -> tuple[dict[str, torch.Tensor], float | None]:
    resize = module.factor if isinstance(module, ResizedOutput) else None
    # Wrappers hold no weights of their own: the file gets the network's names, as its users expect.
    net = module.net if isinstance(module, (ResizedOutput, SpandrelNet)) else module
    state_dict = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    return state_dict, resize


def save_safetensors(module: nn.Module, path: str | Path) -> Path:
    """Save ``module``'s weights under its own parameter names (Real-ESRGAN's for our nets) as ``.safetensors``."""
    from safetensors.torch import save_file

    state_dict, resize = _unwrap(module)
    metadata = {} if resize is None else {RESIZE_KEY: repr(resize)}
    path = Path(path)
    save_file(state_dict, str(path), metadata=metadata)
    return path


def save_pth(module: nn.Module, path: str | Path) -> Path:
    """Save ``module``'s weights as a Real-ESRGAN ``.pth``: ``{'params_ema': state_dict}``."""
    state_dict, resize = _unwrap(module)
    checkpoint: dict[str, object] = {"params_ema": state_dict}
    if resize is not None:
        checkpoint[RESIZE_KEY] = resize
    path = Path(path)
    torch.save(checkpoint, path)
    return path
