"""Reading ncnn ``.param`` (text graph) and ``.bin`` (weights) files.

Only what Real-ESRGAN exports use is supported: the weights come out as one flat list of
float32 tensors in the order ncnn stores them, which is layer order in the ``.param``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidsr.errors import ModelError

_MAGIC = "7767517"

# Tags that prefix a tagged weight blob (ncnn ModelBin type 0).
_TAG_FP32 = 0x00000000
_TAG_FP32_RAW = 0x0002C056
_TAG_FP16 = 0x01306B47

# Layers whose weights we know how to read; everything else must carry none.
_WEIGHTLESS = frozenset(
    {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "ReLU",
     "Reshape", "Permute", "Crop", "Noop"}
)

ParamValue = int | float | tuple[float, ...]


@dataclass(frozen=True)
class NcnnLayer:
    """One line of a ``.param`` file."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, ParamValue] = field(default_factory=dict)

    def int_param(self, key: int, default: int = 0) -> int:
        value = self.params.get(key, default)
        if not isinstance(value, int):
            raise ModelError(f"ncnn layer {self.name}: param {key} should be an int, got {value!r}")
        return value

    def float_param(self, key: int, default: float = 0.0) -> float:
        value = self.params.get(key, default)
        if isinstance(value, tuple):
            raise ModelError(f"ncnn layer {self.name}: param {key} should be a number, got {value!r}")
        return float(value)

    def weight_shapes(self) -> list[tuple[str, int]]:
        """(kind, element count) of each blob this layer reads from the ``.bin``, in order.

        kind is "tagged" for blobs that start with a 4-byte storage tag, "fp32" otherwise.
        """
        if self.type == "Convolution":
            if self.int_param(8) != 0:
                raise ModelError(f"ncnn layer {self.name}: int8-quantised convolutions are not supported")
            shapes = [("tagged", self.int_param(6))]
            if self.int_param(5):
                shapes.append(("fp32", self.int_param(0)))
            return shapes
        if self.type == "PReLU":
            return [("fp32", self.int_param(0))]
        if self.type in _WEIGHTLESS:
            return []
        raise ModelError(f"ncnn layer {self.name}: layer type {self.type!r} is not supported")

    def num_weights(self) -> int:
        return sum(n for _, n in self.weight_shapes())


def _parse_value(text: str) -> ParamValue:
    # Ints and floats are told apart the way ncnn does: by a '.' or exponent in the text.
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


def _parse_params(tokens: list[str], where: str) -> dict[int, ParamValue]:
    params: dict[int, ParamValue] = {}
    for token in tokens:
        key_text, sep, value_text = token.partition("=")
        if not sep:
            raise ModelError(f"{where}: expected key=value, got {token!r}")
        try:
            key = int(key_text)
            if key <= -23300:
                # Array params: "-233xx=count,v1,v2,..." stores param xx.
                count, *values = value_text.split(",")
                if int(count) != len(values):
                    raise ValueError(f"array says {count} values but has {len(values)}")
                params[-key - 23300] = tuple(float(v) for v in values)
            else:
                params[key] = _parse_value(value_text)
        except ValueError as exc:
            raise ModelError(f"{where}: bad param {token!r} ({exc})") from exc
    return params


def parse_param(path: Path) -> list[NcnnLayer]:
    """Parse a text ``.param`` file into its layers, in file order."""
    try:
        lines = [line.split() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read ncnn param file {path}: {exc}") from exc
    lines = [tokens for tokens in lines if tokens]
    if not lines or lines[0] != [_MAGIC]:
        raise ModelError(f"{path} is not a text ncnn .param file (first line must be {_MAGIC})")
    try:
        layer_count = int(lines[1][0])
    except (IndexError, ValueError) as exc:
        raise ModelError(f"{path}: second line must be 'layer_count blob_count'") from exc

    layers = []
    for lineno, tokens in enumerate(lines[2:], start=3):
        where = f"{path}:{lineno}"
        try:
            n_in, n_out = int(tokens[2]), int(tokens[3])
        except (IndexError, ValueError) as exc:
            raise ModelError(f"{where}: malformed layer line") from exc
        blobs = tokens[4 : 4 + n_in + n_out]
        if len(blobs) != n_in + n_out:
            raise ModelError(f"{where}: layer lists fewer blobs than it declares")
        layers.append(
            NcnnLayer(
                type=tokens[0],
                name=tokens[1],
                inputs=tuple(blobs[:n_in]),
                outputs=tuple(blobs[n_in:]),
                params=_parse_params(tokens[4 + n_in + n_out :], where),
            )
        )
    if len(layers) != layer_count:
        raise ModelError(f"{path}: header says {layer_count} layers, found {len(layers)}")
    return layers


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.pos = 0

    def take(self, nbytes: int) -> bytes:
        if self.pos + nbytes > len(self.data):
            raise ModelError(
                f"{self.path} is truncated or does not match its .param "
                f"(needs {self.pos + nbytes} bytes, has {len(self.data)})"
            )
        chunk = self.data[self.pos : self.pos + nbytes]
        self.pos += nbytes
        return chunk

    def floats(self, count: int) -> np.ndarray:
        return np.frombuffer(self.take(4 * count), dtype="<f4")

    def tagged(self, count: int) -> np.ndarray:
        tag = int.from_bytes(self.take(4), "little")
        if tag == _TAG_FP16:
            # fp16 payloads are padded to a 4-byte boundary.
            nbytes = 2 * count
            blob = self.take(nbytes + (-nbytes) % 4)[:nbytes]
            return np.frombuffer(blob, dtype="<f2").astype(np.float32)
        if tag in (_TAG_FP32, _TAG_FP32_RAW):
            return self.floats(count)
        raise ModelError(f"{self.path}: unsupported weight storage tag 0x{tag:08X} at byte {self.pos - 4}")


def read_bin(path: Path, layers: list[NcnnLayer]) -> list[torch.Tensor]:
    """Read every weight blob the layers need, as flat float32 tensors in file order."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read ncnn weights file {path}: {exc}") from exc
    reader = _Reader(data, path)
    tensors = []
    for layer in layers:
        for kind, count in layer.weight_shapes():
            array = reader.tagged(count) if kind == "tagged" else reader.floats(count)
            # Copy: frombuffer views are read-only and would pin the whole file in memory.
            tensors.append(torch.from_numpy(array.copy()))
    if reader.pos != len(data):
        raise ModelError(
            f"{path} has {len(data) - reader.pos} bytes left over after the weights its .param "
            "describes; the two files do not belong together"
        )
    return tensors
