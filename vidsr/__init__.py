"""vidsr: real-world video super-resolution with Real-ESRGAN-family networks.

>>> import vidsr
>>> vidsr.upscale("clip.mp4", "clip_x2.mp4", scale=2)                 # doctest: +SKIP
UpscaleResult(output=PosixPath('clip_x2.mp4'), frames=90, ...)
>>> vidsr.upscale("episodes/", "episodes_x2/", recursive=True, glob="*.mkv")   # doctest: +SKIP
BatchResult(files=(FileResult(...), ...), seconds=...)
>>> vidsr.compare("clip.mp4", "compare.png", models=["animevideov3", "x4plus"])  # doctest: +SKIP

The README's "Python API" section shows more; a test runs it.

The names below are imported on first use: `import vidsr` (and with it the `vidsr` command,
whose modules live in this package) does not load torch or FFmpeg until something needs them.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_HOMES = {
    "upscale": "vidsr.api",
    **dict.fromkeys(("BatchResult", "ChunkOptions", "CompareResult", "Crop", "FileResult", "Panel", "SpeedOptions",
                     "UpscaleOptions", "UpscaleResult", "compare", "upscale_image", "upscale_many", "upscale_video",
                     "upscale_video_chunked"), "vidsr.engine"),
    **dict.fromkeys(("EncoderError", "InputError", "InputNotFoundError", "ModelError", "OptionError",
                     "OutputExistsError", "UnknownArchitectureError", "VidsrError"), "vidsr.errors"),
    "EncodeSettings": "vidsr.io",
    "Window": "vidsr.io.decode",
    **dict.fromkeys(("ModelDescriptor", "list_models", "load_model"), "vidsr.models"),
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'vidsr' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # found once; later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from vidsr.api import upscale
    from vidsr.engine import (BatchResult, ChunkOptions, CompareResult, Crop, FileResult, Panel, SpeedOptions,
                              UpscaleOptions, UpscaleResult, compare, upscale_image, upscale_many, upscale_video,
                              upscale_video_chunked)
    from vidsr.errors import (EncoderError, InputError, InputNotFoundError, ModelError, OptionError,
                              OutputExistsError, UnknownArchitectureError, VidsrError)
    from vidsr.io import EncodeSettings
    from vidsr.io.decode import Window
    from vidsr.models import ModelDescriptor, list_models, load_model
