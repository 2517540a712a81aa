"""load_model / list_models: the entry points the engine and CLI use."""
from __future__ import annotations

from pathlib import Path

from vidsr.errors import ModelError
from vidsr.models import _loaders
from vidsr.models._descriptor import ModelDescriptor, ModelInfo
from vidsr.models._named import NAMED_MODELS, find_named, known_names, param_path


def load_model(name_or_path: str | Path) -> ModelDescriptor:
    """Load a named model (see ``list_models``) or a ``.pth``/``.pt``/``.safetensors``/``.param`` file.

    A ``str`` is first looked up as a model name (case-insensitive, aliases included); a
    ``Path`` is always a file.
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
