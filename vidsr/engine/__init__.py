"""The upscaling engine: runs a model over frames, overlapped with decoding and encoding."""
from vidsr.engine.batch import BatchResult, FileResult, upscale_many
from vidsr.engine.chunked import ChunkOptions, upscale_video_chunked
from vidsr.engine.comparison import CompareResult, Panel, compare
from vidsr.engine.crop import Crop, most_detailed_window
from vidsr.engine.options import UpscaleOptions, UpscaleResult
from vidsr.engine.still_image import upscale_image
from vidsr.engine.upscaler import FrameUpscaler, SpeedOptions, output_size
from vidsr.engine.video import upscale_video

__all__ = [
    "BatchResult",
    "ChunkOptions",
    "CompareResult",
    "Crop",
    "FileResult",
    "FrameUpscaler",
    "Panel",
    "SpeedOptions",
    "UpscaleOptions",
    "UpscaleResult",
    "compare",
    "most_detailed_window",
    "output_size",
    "upscale_image",
    "upscale_many",
    "upscale_video",
    "upscale_video_chunked",
]
