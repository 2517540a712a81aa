"""vidsr: real-world video super-resolution with Real-ESRGAN-family networks.

>>> from pathlib import Path
>>> from vidsr import UpscaleOptions, upscale_video
>>> upscale_video(Path("clip.mp4"), Path("clip_x2.mp4"), UpscaleOptions(scale=2))  # doctest: +SKIP
"""
from vidsr.engine import UpscaleOptions, UpscaleResult, upscale_image, upscale_video
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
from vidsr.models import ModelDescriptor, list_models, load_model

__version__ = "0.1.0"

__all__ = [
    "EncodeSettings",
    "EncoderError",
    "InputError",
    "InputNotFoundError",
    "ModelDescriptor",
    "ModelError",
    "OptionError",
    "OutputExistsError",
    "UnknownArchitectureError",
    "UpscaleOptions",
    "UpscaleResult",
    "VidsrError",
    "list_models",
    "load_model",
    "upscale_image",
    "upscale_video",
]
