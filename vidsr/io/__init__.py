"""Video and image input/output: probing, decoding, encoding, muxing, still images."""
from vidsr.io.encode import EncodeSettings, find_ffmpeg
from vidsr.io.image import IMAGE_SUFFIXES, is_image, read_image, read_rgb8, write_image
from vidsr.io.probe import VIDEO_SUFFIXES, VideoInfo, probe_video

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "EncodeSettings", "VideoInfo", "find_ffmpeg", "is_image",
           "probe_video", "read_image", "read_rgb8", "write_image"]
