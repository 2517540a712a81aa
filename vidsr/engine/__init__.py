"""The upscaling engine: runs a model over frames, overlapped with decoding and encoding."""
from vidsr.engine.image import upscale_image
from vidsr.engine.upscaler import FrameUpscaler, output_size
from vidsr.engine.video import UpscaleOptions, UpscaleResult, upscale_video

__all__ = ["FrameUpscaler", "UpscaleOptions", "UpscaleResult", "output_size", "upscale_image", "upscale_video"]
