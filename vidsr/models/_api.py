"""load_model / list_models / export_model: the entry points the engine and CLI use."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from vidsr.errors import ModelError, OptionError, OutputExistsError
from vidsr.models import _loaders
from vidsr.models._descriptor import ModelDescriptor, ModelInfo
from vidsr.models._named import NAMED_MODELS, find_named, known_names, param_path


def load_model(name_or_path: str | Path) -> ModelDescriptor:
    """Load a named model (see ``list_models``) or a weights file.

    Files: ``.pth``/``.pt``/``.ckpt``/``.safetensors`` state dicts (Real-ESRGAN's compact and
    RRDB layouts with vidsr's own networks, some forty other architectures through spandrel)
    or an ncnn ``.param`` with its ``.bin``. A ``str`` is first looked up as a model name
    (case-insensitive, aliases included); a ``Path`` is always a file.
    """
    if isinstance(name_or_path, str):
        named = find_named(name_or_path)
        if named is not None:
            return _loaders.load_ncnn(param_path(named), name=named.name)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise ModelError(
            f"{str(name_or_path)!r} is neither a known model ({known_names()}) nor an existing file"
        )
    suffix = path.suffix.lower()
    if suffix in _loaders.STATE_DICT_SUFFIXES:
        return _loaders.load_state_dict_file(path)
    if suffix == _loaders.NCNN_SUFFIX:
        return _loaders.load_ncnn(path)
    raise ModelError(f"{path}: unsupported weights file type; expected one of {', '.join(_loaders.SUFFIXES)}")


def list_models() -> list[ModelInfo]:
    """Every named model, described from its ncnn ``.param`` without reading weights."""
    infos = []
    for named in NAMED_MODELS:
        path = param_path(named)
        architecture, scale, num_params = _loaders.describe_ncnn(path)
        infos.append(ModelInfo(named.name, named.aliases, architecture, scale, num_params, str(path)))
    return infos


def export_model(name_or_path: str | Path, output: str | Path, *, overwrite: bool = False) -> ModelDescriptor:
    """Write a model's weights to ``output`` (``.safetensors``, or ``.pth`` as ``{'params_ema': ...}``).

    The file is written under a temporary name, loaded back (architecture detection
    included) and compared with the original weights before it takes its final name.
    Returns the model as loaded from the new file.
    """
    output = Path(output).expanduser()
    suffix = output.suffix.lower()
    if suffix not in (".safetensors", ".pth"):
        raise ModelError(f"{output}: export writes .safetensors or .pth, not {suffix or 'a file without a suffix'!r}")
    if output.exists() and not overwrite:
        raise OutputExistsError(f"output exists (use --overwrite to replace it): {output}")
    if not output.parent.is_dir():
        raise OptionError(f"output folder does not exist: {output.parent}")
    model = load_model(name_or_path)
    tmp = output.with_name(f".{output.stem}.partial-{os.getpid()}{output.suffix}")
    try:
        (_loaders.save_safetensors if suffix == ".safetensors" else _loaders.save_pth)(model.module, tmp)
        reloaded = load_model(tmp)
        want, got = model.module.state_dict(), reloaded.module.state_dict()
        same = ((reloaded.architecture, reloaded.scale) == (model.architecture, model.scale)
                and want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want))
        if not same:
            raise ModelError(f"{output}: the written weights do not load back as {model.name} ({model.architecture})")
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return dataclasses.replace(reloaded, name=output.stem, source=str(output))
