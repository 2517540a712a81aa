"""Put the encoded picture and the source's other streams into one container.

Packets are copied, never re-encoded, so audio comes out bit-exact. The two inputs are
read in step (merged by decode time) so memory stays flat however long the file.
"""
from __future__ import annotations

import heapq
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from vidsr.errors import EncoderError

log = logging.getLogger(__name__)

# Container formats vidsr picks by output suffix (FFmpeg muxer names).
FORMAT_BY_SUFFIX = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}


def container_format_for(path: Path) -> str:
    return FORMAT_BY_SUFFIX.get(path.suffix.lower(), "matroska")


def mux_with_source(video_path: Path, source_path: Path, out_path: Path, *, video_offset_s: float = 0.0) -> None:
    """Write `out_path` with the video of `video_path` and every audio stream of `source_path`.

    `video_offset_s` is the source video's start time; the encoded video starts at 0,
    so shifting it keeps it where it was relative to the audio.
    """
    fmt = container_format_for(out_path)
    with av.open(str(video_path)) as vin, av.open(str(source_path)) as src, \
            av.open(str(out_path), mode="w", format=fmt) as out:
        vstream = vin.streams.video[0]
        vout = out.add_stream_from_template(vstream)
        vout.time_base = vstream.time_base
        copies = [(vstream, vout, _seconds_to_ticks(video_offset_s, vstream.time_base))]
        out.metadata.update(src.metadata)
        for stream in src.streams.audio:
            try:
                sout = out.add_stream_from_template(stream)
            except (ValueError, av.error.FFmpegError) as exc:
                raise EncoderError(f"audio stream #{stream.index} ({stream.codec_context.name}) cannot go into "
                                   f"{out_path.suffix or fmt}; try a .mkv output") from exc
            sout.metadata.update(stream.metadata)
            sout.disposition = stream.disposition
            sout.time_base = stream.time_base
            copies.append((stream, sout, 0))
        try:
            for packet, out_stream, offset in _merged_packets(vin, src, copies):
                if offset:
                    if packet.pts is not None:
                        packet.pts += offset
                    if packet.dts is not None:
                        packet.dts += offset
                packet.stream = out_stream
                out.mux(packet)
        except av.error.FFmpegError as exc:
            raise EncoderError(f"muxing {out_path} failed: {exc}") from exc


def _merged_packets(vin: av.container.InputContainer, src: av.container.InputContainer,
                    copies: list) -> Iterator[tuple[av.Packet, av.stream.Stream, int]]:
    """Packets of all copied streams, ordered by decode time in seconds."""
    video_in, video_out, video_offset = copies[0]
    audio_map = {s.index: (o, off) for s, o, off in copies[1:]}

    def video_packets() -> Iterator[tuple[float, int, av.Packet, av.stream.Stream, int]]:
        for i, p in enumerate(vin.demux(video_in)):
            if p.size:
                yield _sort_key(p, video_offset), 0, i, p, video_out, video_offset

    def audio_packets() -> Iterator[tuple[float, int, av.Packet, av.stream.Stream, int]]:
        if not audio_map:
            return
        wanted = [s for s in src.streams if s.index in audio_map]
        for i, p in enumerate(src.demux(wanted)):
            if p.size:
                out_stream, off = audio_map[p.stream.index]
                yield _sort_key(p, off), 1, i, p, out_stream, off

    for _key, _src, _i, packet, out_stream, offset in heapq.merge(video_packets(), audio_packets(),
                                                                  key=lambda t: (t[0], t[1], t[2])):
        yield packet, out_stream, offset


def _sort_key(packet: av.Packet, offset: int) -> float:
    ts = packet.dts if packet.dts is not None else packet.pts
    if ts is None:
        return float("-inf")
    return float((ts + offset) * packet.time_base)


def _seconds_to_ticks(seconds: float, time_base: Fraction) -> int:
    return round(Fraction(seconds) / time_base) if seconds else 0
