"""Reading weights files safely into a plain state dict, and saying what a file holds when that fails.

Only tensors are ever loaded: ``.pth``/``.pt``/``.ckpt`` through ``torch.load(weights_only=True)``,
which refuses to build any Python object but tensors and plain containers, and
``.safetensors``, which holds nothing else. A pickled model, a TorchScript program or a
checkpoint carrying other objects is named and refused, never run.
"""
from __future__ import annotations

import pickletools
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from vidsr.errors import ModelError

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"

# A bicubic output resize has no weights, so checkpoints record it beside them:
# as safetensors metadata, or as a top-level entry next to params_ema in a .pth.
RESIZE_KEY = "vidsr_output_resize"

# Where trainers put the weights inside a checkpoint, in the order spandrel looks
# (BasicSR: params_ema, params; Lightning: state_dict; others: model, net...).
_WRAPPERS = ("model_state_dict", "state_dict", "params_ema", "params-ema", "params", "model", "net")
# Prefixes that DataParallel/DDP ("module.") and some GAN trainers ("netG.") put on every name.
_PREFIXES = ("module.", "netG.")
# Pickle globals that torch's own tensor storage uses; anything else is a Python object.
_TORCH_GLOBAL_MODULES = ("torch", "collections", "builtins", "_codecs", "numpy")


@dataclass(frozen=True)
class Checkpoint:
    """The tensors of a weights file, and what else it said about itself."""

    state_dict: dict[str, torch.Tensor]
    top_level_keys: tuple[str, ...]
    resize: float | None = None

    def summary(self, limit: int = 6) -> str:
        """What was found, for error messages: the tensor names, and the wrapper keys if any."""
        keys = list(self.state_dict)
        shown = ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")
        text = f"{len(keys)} tensor(s): {shown or '(none)'}"
        if list(self.top_level_keys) != keys:
            top = ", ".join(self.top_level_keys[:limit]) + (", ..." if len(self.top_level_keys) > limit else "")
            text += f"; top-level keys: {top}"
        return text


def read_checkpoint(path: Path) -> Checkpoint:
    """The state dict in a ``.pth``/``.pt``/``.ckpt``/``.safetensors`` file, unwrapped and de-prefixed."""
    if path.suffix.lower() == SAFETENSORS_SUFFIX:
        raw, resize = _read_safetensors(path)
    else:
        raw, resize = _read_pickle(path)
    return Checkpoint(canonical_state_dict(raw, str(path)), tuple(str(k) for k in raw), resize)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (any trainer's wrapper), as every part of vidsr reads weights."""
    return read_checkpoint(path).state_dict


def canonical_state_dict(raw: Mapping[str, object], source: str) -> dict[str, torch.Tensor]:
    """Unwrap trainer checkpoints (``params_ema`` preferred over ``params``) and strip common prefixes."""
    top = list(raw)
    for wrapper in _WRAPPERS:
        if isinstance(raw.get(wrapper), Mapping):
            raw = raw[wrapper]  # type: ignore[assignment]
            break
    if len(raw) == 1 and isinstance(next(iter(raw.values())), Mapping):
        raw = next(iter(raw.values()))  # type: ignore[assignment]
    state_dict: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor "
                             f"(top-level keys: {', '.join(map(str, top[:8]))})")
        state_dict[str(key)] = value
    for prefix in _PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


def _read_safetensors(path: Path) -> tuple[dict[str, object], float | None]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            raw: dict[str, object] = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"cannot load {path} as safetensors: {exc}") from exc
    resize = metadata.get(RESIZE_KEY)
    return raw, None if resize is None else float(resize)


def _read_pickle(path: Path) -> tuple[dict[str, object], float | None]:
    if _is_torchscript(path):  # torch.load would hand it to torch.jit.load, which builds a program
        raise ModelError(f"cannot load {path}: {_TORCHSCRIPT}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt, unsafe or foreign files
        raise ModelError(f"cannot load {path}: {describe_unloadable(path, exc)}") from exc
    if not isinstance(raw, Mapping):
        raise ModelError(f"{path} holds a {type(raw).__name__}, not a state dict (a mapping of names to tensors)")
    resize = raw.get(RESIZE_KEY)
    weights = {k: v for k, v in raw.items() if k != RESIZE_KEY}
    return weights, None if resize is None else float(resize)


def describe_unloadable(path: Path, exc: BaseException) -> str:
    """Why a file torch.load(weights_only=True) refused is not a state dict, in a few words."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            data = next((n for n in names if n.endswith("data.pkl")), None)
            pickle_bytes = archive.read(data) if data else b""
    except (zipfile.BadZipFile, OSError):
        pickle_bytes = b""  # a legacy (pre-1.6) torch.save file or not a checkpoint at all
    root, foreign = _pickle_globals(pickle_bytes)
    # Legacy files are several pickles in a row; torch's own message names the first foreign global.
    foreign += [g for g in re.findall(r"GLOBAL ([\w.]+)", str(exc)) if not _is_torch_global(g)]
    safe_load = "vidsr loads weights only (torch.load(weights_only=True))"
    if root is not None and not _is_torch_global(root):
        return (f"a full pickled model ({root}), not a state dict; {safe_load}: "
                "save model.state_dict() instead")
    if foreign:
        return f"a checkpoint holding Python objects besides tensors (e.g. {foreign[0]}); {safe_load}"
    first = " ".join(str(exc).split())
    return f"not a PyTorch weights file ({first[:160]})"


_TORCHSCRIPT = ("a TorchScript program, not a state dict; vidsr loads weights only "
                "(in PyTorch: torch.save(torch.jit.load(f).state_dict(), 'weights.pth'))")


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _is_torch_global(name: str) -> bool:
    return name.split(".", 1)[0] in _TORCH_GLOBAL_MODULES


def _pickle_globals(data: bytes) -> tuple[str | None, list[str]]:
    """(class of the pickled root object if it is an object, other non-torch globals), by reading opcodes only."""
    root: str | None = None
    foreign: list[str] = []
    strings: list[str] = []
    first_structural = True
    try:
        for op, arg, _ in pickletools.genops(data):
            name = None
            if op.name == "GLOBAL":
                name = str(arg).replace(" ", ".")
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = f"{strings[-2]}.{strings[-1]}"
            elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(str(arg))
                continue
            elif op.name in ("PROTO", "FRAME", "MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"):
                continue
            if name is not None:
                if first_structural:
                    root = name
                if not _is_torch_global(name) and name not in foreign:
                    foreign.append(name)
            first_structural = False
    except Exception:  # a truncated or foreign byte stream: report what was seen so far
        pass
    return root, foreign
