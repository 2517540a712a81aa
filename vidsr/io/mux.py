"""Put the encoded picture and every other stream of the source into one container.

The encoder numbers frames 0, 1, 2... at a nominal rate; here each encoded packet gets
back the exact timestamp of the source frame it came from (variable frame rate and
start offsets included), so audio stays in sync. Everything else is copied packet for
packet, never re-encoded: audio comes out bit-exact, and subtitles, attachments (fonts),
data streams, chapters, metadata and dispositions come along.
"""
from __future__ import annotations

import heapq
import io
import logging
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vidsr.errors import EncoderError

log = logging.getLogger(__name__)

# Container formats vidsr picks by output suffix (FFmpeg muxer names).
FORMAT_BY_SUFFIX = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
# Text subtitles that MP4/MOV can only hold as mov_text (a lossless conversion for plain text).
_TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "text", "mov_text"}


def container_format_for(path: Path) -> str:
    return FORMAT_BY_SUFFIX.get(path.suffix.lower(), "matroska")


@dataclass(frozen=True)
class VideoPart:
    """An encoded video file whose k-th frame (in presentation order) had source timestamp pts[k].

    A whole video is one part; a video processed in segments is several, joined here
    without re-encoding.
    """

    path: Path
    pts: Sequence[int]


@dataclass(frozen=True)
class Cut:
    """Keep source times [start_s, end_s) (seconds, the source's own clock) and move start_s to zero."""

    start_s: float
    end_s: float | None


@dataclass(frozen=True)
class VideoLayout:
    """Display properties the encoded stream must carry (the encoder cannot set them all)."""

    rotation: int = 0     # counter-clockwise degrees, as PyAV reports them


def mux_with_source(parts: Sequence[VideoPart], time_base: Fraction, source_path: Path, out_path: Path, *,
                    cut: Cut | None = None, layout: VideoLayout = VideoLayout()) -> None:
    """Write `out_path`: the video `parts` in order, stamped in the source video's `time_base`,
    plus every other stream of the source."""
    fmt = container_format_for(out_path)
    with av.open(str(source_path)) as src:
        convert = _needs_text_conversion(src, fmt)
    if convert:
        _mux_via_mkv_then_convert(parts, time_base, source_path, out_path, cut, layout, fmt)
        return
    try:
        with av.open(str(source_path)) as src, _open_output(out_path, fmt) as out:
            _mux(parts, time_base, src, out, cut, layout)
    except av.error.FFmpegError as exc:  # e.g. the trailer, written on close
        raise EncoderError(f"writing {out_path.name} failed: {exc}") from exc


def _open_output(path: Path, fmt: str) -> av.container.OutputContainer:
    try:
        return av.open(str(path), mode="w", format=fmt)
    except (OSError, av.error.FFmpegError) as exc:  # unwritable folder, full disk, ...
        raise EncoderError(f"cannot write {path}: {exc}") from exc


def check_streams_fit(source_path: Path, out_path: Path) -> None:
    """Raise now the error the final mux would raise for a stream the output container cannot hold.

    For runs whose mux comes after long work (segments), so that it fails before the work.
    """
    fmt = container_format_for(out_path)
    with av.open(str(source_path)) as src:
        if _needs_text_conversion(src, fmt):
            from vidsr.io.encode import find_ffmpeg

            if find_ffmpeg(encoder="mov_text", muxer=fmt) is None:
                raise EncoderError(f"{out_path.name}: text subtitles need converting to mov_text for "
                                   f"{out_path.suffix}, which needs an ffmpeg binary; write a .mkv instead")
            fmt = "matroska"  # what _mux_via_mkv_then_convert muxes into first
        main = src.streams.video[0]
        with av.open(io.BytesIO(), mode="w", format=fmt) as out:  # streams are added, nothing is written
            for stream in src.streams:
                if stream.index != main.index:
                    _add_copy(out, stream)


def _needs_text_conversion(src: av.container.InputContainer, fmt: str) -> bool:
    if fmt not in ("mp4", "mov"):
        return False
    return any(s.type == "subtitle" and _codec_name(s) in _TEXT_SUBTITLES - {"mov_text"} for s in src.streams)


def _mux_via_mkv_then_convert(parts: Sequence[VideoPart], time_base: Fraction, source_path: Path, out_path: Path,
                              cut: Cut | None, layout: VideoLayout, fmt: str) -> None:
    """MP4 cannot hold SRT/ASS; mux into Matroska, then let ffmpeg turn the text into mov_text."""
    from vidsr.io.encode import find_ffmpeg

    exe = find_ffmpeg(encoder="mov_text", muxer=fmt)
    if exe is None:
        raise EncoderError(f"{out_path.name}: text subtitles need converting to mov_text for "
                           f"{out_path.suffix}, which needs an ffmpeg binary; write a .mkv instead")
    mkv = out_path.with_name(out_path.name + ".mkv")
    try:
        with av.open(str(source_path)) as src, _open_output(mkv, "matroska") as out:
            _mux(parts, time_base, src, out, cut, layout)
        cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(mkv), "-map", "0",
               "-c", "copy", "-c:s", "mov_text", "-f", fmt, str(out_path)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise EncoderError(f"converting subtitles for {out_path.name} failed: {last}; write a .mkv instead")
        log.info("text subtitles converted to mov_text for %s", out_path.suffix)
    finally:
        mkv.unlink(missing_ok=True)


def _mux(parts: Sequence[VideoPart], time_base: Fraction, src: av.container.InputContainer,
         out: av.container.OutputContainer, cut: Cut | None, layout: VideoLayout) -> None:
    with av.open(str(parts[0].path)) as first:
        # Parts were encoded alike, so the first one's codec parameters describe them all. Opaque:
        # copied as they are, since the decoder PyAV opened (libdav1d for AV1) may have no encoder.
        vout = out.add_stream_from_template(first.streams.video[0], opaque=True)
    vout.time_base = time_base
    if layout.rotation:
        vout.set_display_rotation(layout.rotation)
    main = src.streams.video[0]
    vout.metadata.update({k: v for k, v in main.metadata.items() if k in ("language", "title", "handler_name")})
    vout.disposition = main.disposition

    others = [s for s in src.streams if s.index != main.index]
    mapping: dict[int, av.stream.Stream] = {}
    for stream in others:
        sout = _add_copy(out, stream)
        if sout is not None:
            mapping[stream.index] = sout
    out.metadata.update(src.metadata)
    _copy_chapters(src, out, cut)

    shift = cut.start_s if cut else 0.0
    try:
        for packet, sout in _interleave(_video_packets(parts, time_base, shift, vout),
                                        _source_packets(src, [s for s in others if s.index in mapping],
                                                        mapping, cut)):
            packet.stream = sout
            out.mux(packet)
    except av.error.FFmpegError as exc:
        raise EncoderError(f"writing {out.name} failed: {exc}") from exc


def _add_copy(out: av.container.OutputContainer, stream: av.stream.Stream) -> av.stream.Stream | None:
    """An output stream copying `stream`, or an error naming it when the container cannot hold it."""
    codec = _codec_name(stream) if stream.type != "attachment" else "attachment"
    if stream.type == "attachment":
        if out.format.name not in ("matroska", "webm"):
            raise EncoderError(f"attachment {stream.metadata.get('filename', stream.index)!r} (e.g. a font for "
                               f"subtitles) cannot go into {out.format.name}; write a .mkv instead")
    elif codec is not None and codec not in out.supported_codecs:
        raise EncoderError(f"{stream.type} stream #{stream.index} ({codec}) cannot go into "
                           f"{out.format.name} without re-encoding; write a .mkv instead")
    try:
        sout = out.add_stream_from_template(stream)
    except (ValueError, av.error.FFmpegError) as exc:
        raise EncoderError(f"{stream.type} stream #{stream.index} ({codec}) cannot be copied into "
                           f"{out.format.name} ({exc}); write a .mkv instead") from exc
    sout.metadata.update(stream.metadata)
    sout.disposition = stream.disposition
    if stream.time_base:
        sout.time_base = stream.time_base
    return sout


def _codec_name(stream: av.stream.Stream) -> str | None:
    """The stream's codec; None for streams PyAV opens no codec for (data streams such as timecode)."""
    ctx = stream.codec_context
    return ctx.name if ctx is not None else None


def _copy_chapters(src: av.container.InputContainer, out: av.container.OutputContainer, cut: Cut | None) -> None:
    chapters = src.chapters()
    if not chapters:
        return
    if cut is not None:
        kept = []
        for ch in chapters:
            tb = Fraction(ch["time_base"])
            start_s, end_s = float(ch["start"] * tb), float(ch["end"] * tb)
            if end_s <= cut.start_s or (cut.end_s is not None and start_s >= cut.end_s):
                continue
            new_start = max(start_s, cut.start_s) - cut.start_s
            new_end = (min(end_s, cut.end_s) if cut.end_s is not None else end_s) - cut.start_s
            kept.append({**ch, "start": round(Fraction(new_start) / tb), "end": round(Fraction(new_end) / tb)})
        chapters = kept
    out.set_chapters(chapters)


def reorder_depth(decode_order: Sequence[int]) -> int:
    """How many frames an encoder held back: the most by which a packet's decode position
    passes its presentation rank (0 without B-frames).

    Computed from the ranks, it needs no dts, which Matroska does not store.
    """
    rank = {p: k for k, p in enumerate(sorted(decode_order))}
    return max(0, max((j - rank[p] for j, p in enumerate(decode_order)), default=0))


def decode_order(path: Path) -> list[int]:
    """The encoder's presentation timestamps of a video file's packets, in decode order."""
    with av.open(str(path)) as c:
        return [p.pts for p in c.demux(c.streams.video[0]) if p.size]


def _video_packets(parts: Sequence[VideoPart], tb: Fraction, shift_s: float, vout: av.stream.Stream
                   ) -> Iterator[tuple[float, av.Packet, av.stream.Stream]]:
    """Encoded packets of every part, re-stamped with their source frames' timestamps, in decode order.

    Frames are matched by rank, not by arithmetic on the encoder's clock, so no rounding
    of its nominal rate can shift a frame however long the video.

    Decode times follow one rule over the whole video, as if the parts were one stream:
    the J-th packet decoded gets the (J - depth)-th presentation time, `depth` being the
    deepest reorder of all parts. Presentation times strictly increase across parts, so
    decode times do too, at every join; and since no part holds a frame back by more than
    `depth`, no packet is decoded after it is shown (dts <= pts). Parts encoded with
    different B-frame decisions (x264 adapts them to the content) join alike.
    """
    orders = [decode_order(part.path) for part in parts]
    for part, order in zip(parts, orders):
        if len(order) != len(part.pts) or len(set(order)) != len(part.pts):
            raise EncoderError(f"the encoder wrote {len(set(order))} distinct frames for {len(part.pts)} input "
                               f"frames ({part.path.name})")
    every = [p for part in parts for p in part.pts]
    if any(b <= a for a, b in zip(every, every[1:])):
        raise EncoderError("the video parts to join overlap or are out of order")
    # Only the first `depth` packets of the video have no earlier frame to take a decode time
    # from: they step back from the first frame by the shortest frame interval.
    step = max(1, min((b - a for a, b in zip(every, every[1:])), default=1))
    depth = max((reorder_depth(order) for order in orders), default=0)
    shift = round(Fraction(shift_s) / tb)
    first = 0  # index in `every` of the part's first frame
    for part, order in zip(parts, orders):
        rank = {p: k for k, p in enumerate(sorted(order))}
        pts = part.pts
        with av.open(str(part.path)) as vin:
            for j, packet in enumerate(p for p in vin.demux(vin.streams.video[0]) if p.size):
                k = rank[packet.pts]
                d = first + j - depth
                dts = every[d] if d >= 0 else every[0] + d * step
                packet.pts = pts[k] - shift
                packet.dts = dts - shift
                nxt = first + k + 1
                packet.duration = (every[nxt] - pts[k]) if nxt < len(every) else step
                packet.time_base = tb
                yield float(packet.dts * tb), packet, vout
        first += len(pts)


def _source_packets(src: av.container.InputContainer, streams: list[av.stream.Stream],
                    mapping: dict[int, av.stream.Stream], cut: Cut | None
                    ) -> Iterator[tuple[float, av.Packet, av.stream.Stream]]:
    if not streams:
        return
    for packet in src.demux(streams):
        if packet.size == 0 or packet.stream.type == "attachment":
            continue
        tb = Fraction(packet.time_base)
        ts = packet.dts if packet.dts is not None else packet.pts
        if cut is not None:
            if packet.pts is None:
                continue
            start = packet.pts * tb
            end = start + (packet.duration or 0) * tb
            if start < Fraction(cut.start_s) - Fraction(1, 1000) and not (
                    packet.stream.type == "subtitle" and end > Fraction(cut.start_s)):
                continue
            if cut.end_s is not None and start >= Fraction(cut.end_s):
                continue
            shift = round(Fraction(cut.start_s) / tb)
            packet.pts = max(0, packet.pts - shift)
            if packet.dts is not None:
                packet.dts = max(0, packet.dts - shift)
            ts = packet.dts if packet.dts is not None else packet.pts
        yield (float(ts * tb) if ts is not None else float("-inf")), packet, mapping[packet.stream.index]


def _interleave(*sources: Iterator[tuple[float, av.Packet, av.stream.Stream]]
                ) -> Iterator[tuple[av.Packet, av.stream.Stream]]:
    """Merge per-input packet streams by decode time, so the muxer never has to buffer much."""

    def keyed(i: int, src: Iterator[tuple[float, av.Packet, av.stream.Stream]]):  # type: ignore[no-untyped-def]
        for j, (t, packet, stream) in enumerate(src):
            yield (t, i, j), packet, stream

    for _key, packet, stream in heapq.merge(*(keyed(i, s) for i, s in enumerate(sources)), key=lambda x: x[0]):
        yield packet, stream
