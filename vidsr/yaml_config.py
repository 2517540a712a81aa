"""Configuration files: frozen dataclasses built from YAML, checked key by key.

Shared by every configurable part of vidsr (degradations, training). Unknown keys are
rejected with their dotted path and missing keys are errors, so a typo in a YAML file
cannot silently fall back to a number hidden in code.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from vidsr.errors import InputError, InputNotFoundError, OptionError

# The shipped configurations, vidsr/configs/<kind>/, inside the package so that a wheel has them.
# pip installs packages unpacked, so the resource is a real folder.
CONFIGS_ROOT = Path(str(importlib.resources.files("vidsr") / "configs"))

T = TypeVar("T")


def _is_optional(tp: Any) -> tuple[bool, Any]:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and build it (dataclasses, tuples, mappings)."""
    optional, inner = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise OptionError(f"{where} must not be null")
    tp = inner
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise OptionError(f"{where} must be a mapping, got {type(value).__name__}")
        return build_dataclass(tp, value, where)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in get_args(tp):
            raise OptionError(f"{where} must be one of {list(get_args(tp))}, got {value!r}")
        return value
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise OptionError(f"{where} must be a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise OptionError(f"{where} must have {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (Mapping, dict, typing.Mapping):
        key_tp, val_tp = get_args(tp)
        if not isinstance(value, Mapping):
            raise OptionError(f"{where} must be a mapping, got {type(value).__name__}")
        # A read-only view keeps the frozen dataclass frozen all the way down.
        return types.MappingProxyType(
            {_convert(key_tp, k, f"{where} key"): _convert(val_tp, v, f"{where}.{k}") for k, v in value.items()})
    if tp is bool:
        if not isinstance(value, bool):
            raise OptionError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise OptionError(f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {where}")  # a bug in a dataclass here, not user input


@functools.cache
def _hints_and_fields(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    # get_type_hints evaluates every annotation string: by far the dearest step of a build.
    return get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def build_dataclass(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build the frozen dataclass ``cls`` from a mapping, rejecting unknown and missing keys."""
    hints, fields = _hints_and_fields(cls)
    prefix = f"{where}." if where else ""
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise OptionError(f"unknown key(s) {[prefix + str(k) for k in unknown]}; allowed: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in data:
            if field.default is not dataclasses.MISSING:
                continue
            raise OptionError(f"missing key {prefix + name!r}")
        kwargs[name] = _convert(hints[name], data[name], prefix + name)
    try:
        return cls(**kwargs)
    except OptionError as exc:
        raise OptionError(f"{where or cls.__name__}: {exc}") from None


@functools.cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple(f.name for f in dataclasses.fields(cls))


def to_plain(obj: Any) -> Any:
    """A dataclass (or mapping/tuple of them) as plain dicts, lists and scalars, e.g. for YAML or JSON."""
    if obj is None or isinstance(obj, (str, int, float)):
        return obj
    names = None if isinstance(obj, type) else _field_names(type(obj))
    if names is not None:
        # Field names cached per class: this runs for every sample of every training batch.
        return {name: to_plain(getattr(obj, name)) for name in names}
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def find_config(name_or_path: str | Path, kind: str) -> Path:
    """A YAML path as given, or a shipped config's name (e.g. ``realesrgan_video``) under vidsr/configs/<kind>/."""
    path = Path(name_or_path)
    if path.suffix.lower() in (".yml", ".yaml") or path.exists():
        if not path.is_file():
            raise InputNotFoundError(f"{kind} config not found: {path}")
        return path
    folder = CONFIGS_ROOT / kind
    shipped = folder / f"{name_or_path}.yml"
    if not shipped.is_file():
        names = sorted(p.stem for p in folder.glob("*.yml")) if folder.is_dir() else []
        raise InputNotFoundError(f"no {kind} config named {str(name_or_path)!r}; shipped: {names} "
                                 f"(or give a path to a .yml file)")
    return shipped


def load_yaml_config(cls: type[T], path: Path) -> T:
    """Build the dataclass ``cls`` from the YAML file at ``path``; errors name the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise InputError(f"{path}: expected a mapping at the top level")
    try:
        return build_dataclass(cls, data)
    except OptionError as exc:
        raise OptionError(f"{path}: {exc}") from None
