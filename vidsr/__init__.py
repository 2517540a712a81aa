"""vidsr: real-world video super-resolution with Real-ESRGAN-family networks.

>>> import vidsr
>>> vidsr.upscale("clip.mp4", "clip_x2.mp4", scale=2)                 # doctest: +SKIP
UpscaleResult(output=PosixPath('clip_x2.mp4'), frames=90, ...)
>>> vidsr.upscale("episodes/", "episodes_x2/", recursive=True, glob="*.mkv")   # doctest: +SKIP
BatchResult(files=(FileResult(...), ...), seconds=...)
>>> vidsr.compare("clip.mp4", "compare.png", models=["animevideov3", "x4plus"])  # doctest: +SKIP

The README's "Python API" section shows more; a test runs it.
"""
from vidsr.api import upscale
from vidsr.engine import (BatchResult, ChunkOptions, CompareResult, Crop, FileResult, Panel, SpeedOptions,
                          UpscaleOptions, UpscaleResult, compare, upscale_image, upscale_many, upscale_video,
                          upscale_video_chunked)
from vidsr.errors import (
    EncoderError,
    InputError,
    InputNotFoundError,
    ModelError,
    OptionError,
    OutputExistsError,
    UnknownArchitectureError,
    VidsrError,
)
from vidsr.io import EncodeSettings
from vidsr.io.decode import Window
from vidsr.models import ModelDescriptor, list_models, load_model

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "ChunkOptions",
    "CompareResult",
    "Crop",
    "EncodeSettings",
    "EncoderError",
    "FileResult",
    "InputError",
    "InputNotFoundError",
    "ModelDescriptor",
    "ModelError",
    "OptionError",
    "OutputExistsError",
    "Panel",
    "SpeedOptions",
    "UnknownArchitectureError",
    "UpscaleOptions",
    "UpscaleResult",
    "VidsrError",
    "Window",
    "compare",
    "list_models",
    "load_model",
    "upscale",
    "upscale_image",
    "upscale_many",
    "upscale_video",
    "upscale_video_chunked",
]
