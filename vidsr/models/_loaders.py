"""Loading weights by file type into a ModelDescriptor, and saving them back.

Every path into a module goes through ``_describe``: one place that builds the net,
loads it strictly and fills in the descriptor.
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
from vidsr.models._descriptor import ModelDescriptor
from vidsr.models._ncnn_format import NcnnLayer, parse_param, read_bin
from vidsr.models._resize import ResizedOutput

log = logging.getLogger(__name__)

STATE_DICT_SUFFIXES = (".pth", ".pt", ".safetensors")
NCNN_SUFFIX = ".param"
SUFFIXES = (*STATE_DICT_SUFFIXES, NCNN_SUFFIX)

# A bicubic output resize has no weights, so checkpoints record it beside them:
# as safetensors metadata, or as a top-level entry next to params_ema in a .pth.
_RESIZE_KEY = "vidsr_output_resize"


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
    )


# --- .pth / .pt / .safetensors -------------------------------------------------------


def normalise_state_dict(raw: Mapping[str, object], source: str) -> dict[str, torch.Tensor]:
    """Unwrap BasicSR checkpoints (``params_ema`` preferred over ``params``) and strip ``module.``."""
    for wrapper in ("params_ema", "params"):
        if isinstance(raw.get(wrapper), Mapping):
            raw = raw[wrapper]  # type: ignore[assignment]
            break
    state_dict: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor")
        # DataParallel / DDP checkpoints prefix every name with "module.".
        state_dict[key.removeprefix("module.")] = value
    return state_dict


def _read_pth(path: Path) -> tuple[dict[str, torch.Tensor], float | None]:
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe pickles
        raise ModelError(f"cannot load {path} as a PyTorch checkpoint: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ModelError(f"{path} holds a {type(raw).__name__}, not a state dict")
    resize = raw.get(_RESIZE_KEY)
    weights = {k: v for k, v in raw.items() if k != _RESIZE_KEY}
    return normalise_state_dict(weights, str(path)), None if resize is None else float(resize)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], float | None]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            raw = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"cannot load {path} as safetensors: {exc}") from exc
    resize = metadata.get(_RESIZE_KEY)
    return normalise_state_dict(raw, str(path)), None if resize is None else float(resize)


def load_state_dict_file(path: Path, name: str | None = None) -> ModelDescriptor:
    """Load a ``.pth``/``.pt``/``.safetensors`` checkpoint, detecting its architecture."""
    reader = _read_safetensors if path.suffix.lower() == ".safetensors" else _read_pth
    state_dict, resize = reader(path)
    arch, kwargs = registry.detect_state_dict(state_dict, str(path))
    return _describe(name or path.stem, str(path), arch, kwargs, state_dict, resize)


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
    net = module.net if isinstance(module, ResizedOutput) else module
    state_dict = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    return state_dict, resize


def save_safetensors(module: nn.Module, path: str | Path) -> Path:
    """Save ``module``'s weights with Real-ESRGAN parameter names as ``.safetensors``."""
    from safetensors.torch import save_file

    state_dict, resize = _unwrap(module)
    metadata = {} if resize is None else {_RESIZE_KEY: repr(resize)}
    path = Path(path)
    save_file(state_dict, str(path), metadata=metadata)
    return path


def save_pth(module: nn.Module, path: str | Path) -> Path:
    """Save ``module``'s weights as a Real-ESRGAN ``.pth``: ``{'params_ema': state_dict}``."""
    state_dict, resize = _unwrap(module)
    checkpoint: dict[str, object] = {"params_ema": state_dict}
    if resize is not None:
        checkpoint[_RESIZE_KEY] = resize
    path = Path(path)
    torch.save(checkpoint, path)
    return path
