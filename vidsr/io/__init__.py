"""Video and image input/output: probing, decoding, encoding, muxing."""
from vidsr.io.encode import EncodeSettings, find_ffmpeg
from vidsr.io.probe import VideoInfo, probe_video

__all__ = ["EncodeSettings", "VideoInfo", "find_ffmpeg", "probe_video"]
