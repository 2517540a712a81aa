"""Errors a user can act on.

Library code raises these; only the CLI turns them into one line and an exit code.
Each subclass also inherits the matching builtin so callers can catch either.
"""
from __future__ import annotations


class VidsrError(Exception):
    """Base class of every error vidsr raises on purpose."""


class InputError(VidsrError, ValueError):
    """The input file exists but cannot be used (empty, not a video, no video stream...)."""


class InputNotFoundError(VidsrError, FileNotFoundError):
    """The input path does not exist."""


class OutputExistsError(VidsrError, FileExistsError):
    """The output exists and --overwrite was not given."""


class ModelError(VidsrError, ValueError):
    """A model name or weights file could not be resolved or loaded."""


class UnknownArchitectureError(ModelError):
    """A state dict matches none of the architectures vidsr knows."""


class EncoderError(VidsrError, RuntimeError):
    """The encoder (ffmpeg process or PyAV) failed."""


class OptionError(VidsrError, ValueError):
    """An option has a value outside what is allowed."""
