"""Probe a source with PyAV: streams, timing from packets (no trust in header durations), rotation.

Reads every packet header once (no decoding) so frame counts, variable frame rate and where the
audio really ends are measured, not taken from metadata; then decodes one video frame to prove
the file decodes and to read the display rotation.

A file cut short is marked (`truncated`, with what is missing where the container says): its
own structure (MP4/MOV boxes, the Matroska segment, RIFF chunks) ends past the end of the file,
its index lists more video frames than could be read, or demuxing stopped on an error.
"""
from __future__ import annotations

import math
import os
import struct
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import av
import numpy as np

from demix_pipeline.media.ffmpeg import ffmpeg_error_text


class ProbeError(RuntimeError):
    """The file cannot be used as a video source; the message says why."""


@dataclass
class MediaInfo:
    size_bytes: int
    container: str
    container_start_s: float
    has_video: bool = False
    video_codec: str | None = None
    pix_fmt: str | None = None
    coded_width: int | None = None
    coded_height: int | None = None
    rotation: int = 0
    sar: str = "1:1"
    width: int | None = None
    height: int | None = None
    frame_count: int = 0
    video_start_s: float | None = None
    video_duration_s: float | None = None
    fps: float | None = None
    fps_min: float | None = None
    fps_max: float | None = None
    vfr: bool = False
    audio_streams: int = 0
    audio_codec: str | None = None
    audio_channels: int | None = None
    audio_layout: str | None = None
    audio_sample_rate: int | None = None
    audio_duration_s: float | None = None
    truncated: bool = False
    missing_s: float | None = None      # header duration of the video minus what could be read
    missing_bytes: int | None = None    # bytes the container structure needs past the end of the file
    truncated_detail: str | None = None
    frame_times: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("frame_times")
        return data


def _sar(ctx) -> Fraction:
    sar = getattr(ctx, "sample_aspect_ratio", None)
    if not sar or sar.numerator <= 0 or sar.denominator <= 0:
        return Fraction(1)
    return Fraction(sar.numerator, sar.denominator)


def display_size(coded_w: int, coded_h: int, sar: Fraction, rotation: int) -> tuple[int, int]:
    """Size a player shows: pixel aspect applied to the width (even numbers), then rotation."""
    width = max(2, int(coded_w * sar) // 2 * 2)
    height = max(2, coded_h // 2 * 2)
    return (height, width) if rotation % 180 == 90 else (width, height)


def probe(path: str | os.PathLike, keep_frame_times: bool = False) -> MediaInfo:
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        detail = ffmpeg_error_text(str(path))
        raise ProbeError(f"cannot open as media: {exc}" + (f" (ffmpeg: {detail})" if detail else "")) from None
    with container:
        info = MediaInfo(size_bytes=os.path.getsize(path), container=container.format.name,
                         container_start_s=(container.start_time or 0) / 1e6)
        videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
        audios = list(container.streams.audio)
        info.audio_streams = len(audios)
        video = videos[0] if videos else None
        audio = audios[0] if audios else None
        if video is not None:
            ctx = video.codec_context
            info.has_video = True
            info.video_codec = ctx.name
            info.pix_fmt = ctx.pix_fmt
            info.coded_width, info.coded_height = ctx.width, ctx.height
            sar = _sar(ctx)
            info.sar = f"{sar.numerator}:{sar.denominator}"
        if audio is not None:
            actx = audio.codec_context
            info.audio_codec = actx.name
            info.audio_channels = actx.channels
            info.audio_layout = actx.layout.name
            info.audio_sample_rate = actx.sample_rate
        wanted = [s for s in (video, audio) if s is not None]
        if not wanted:
            raise ProbeError("no video and no audio stream")
        v_times: list[float] = []
        v_durs: list[float] = []
        v_packets = 0  # video packets with a timestamp, empty ones too (what the index counts)
        a_end = None
        read_error = None
        try:
            for packet in container.demux(wanted):
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    continue
                if video is not None and packet.stream.index == video.index:
                    v_packets += 1
                if packet.size == 0:
                    continue
                t = float(ts * packet.time_base)
                d = float(packet.duration * packet.time_base) if packet.duration else 0.0
                if video is not None and packet.stream.index == video.index:
                    v_times.append(t)
                    v_durs.append(d)
                else:
                    a_end = max(a_end or t + d, t + d)
        except av.error.FFmpegError as exc:  # truncated or damaged tail: keep what could be read, marked
            read_error = f"demuxing stopped after {len(v_times)} video frames: {exc}"
        if video is not None:
            if not v_times:
                raise ProbeError("video stream has no frames")
            times = np.sort(np.asarray(v_times))
            info.frame_count = len(times)
            intervals = np.diff(times)
            intervals = intervals[intervals > 0]
            median = float(np.median(intervals)) if len(intervals) else (v_durs[0] or 0.04)
            last = next((d for d in reversed(v_durs) if d > 0), median)
            info.video_start_s = float(times[0])
            info.video_duration_s = float(times[-1] - times[0] + last)
            info.fps = info.frame_count / info.video_duration_s if info.video_duration_s > 0 else None
            if len(intervals):
                info.fps_min = float(1 / intervals.max())
                info.fps_max = float(1 / intervals.min())
                info.vfr = bool(np.mean(np.abs(intervals - median) > 0.1 * median) > 0.005)
            if keep_frame_times:
                info.frame_times = times - times[0]
            if a_end is not None:
                info.audio_duration_s = max(0.0, a_end - info.video_start_s)
            info.rotation = _first_frame_rotation(path, video.index)
            info.width, info.height = display_size(info.coded_width, info.coded_height,
                                                   Fraction(info.sar.replace(":", "/")), info.rotation)
            header_s = (float(video.duration * video.time_base) if video.duration
                        else (container.duration / 1e6 if container.duration else None))
            _mark_truncated(info, path, read_error, video.frames or 0, v_packets, header_s)
        else:
            if a_end is not None:
                info.audio_duration_s = a_end
            _mark_truncated(info, path, read_error, 0, 0, None)
    return info


def _mark_truncated(info: MediaInfo, path, read_error: str | None, index_frames: int, read_frames: int,
                    header_s: float | None) -> None:
    """Set info.truncated and what is missing from the three signs of a file cut short (module docstring)."""
    reasons = []
    missing_bytes = container_shortfall(path)
    if missing_bytes:
        info.missing_bytes = missing_bytes
        reasons.append(f"the container needs {missing_bytes} bytes past the end of the file")
    if index_frames > read_frames + 1:  # one frame of slack: an edit list may hide one
        reasons.append(f"the index lists {index_frames} video frames, {read_frames} could be read")
    if read_error:
        reasons.append(read_error)
    if not reasons:
        return
    info.truncated = True
    # what is missing in seconds: the header's duration past what was read, unless the header's frame
    # rate disagrees with the one read (AVI without its index at the end); then the frames the index
    # lists past those read, at the frame rate read
    read_s = info.video_duration_s
    by_header = header_s - read_s if header_s is not None and read_s is not None else 0.0
    by_index = (index_frames - read_frames) / info.fps if index_frames > read_frames and info.fps else 0.0
    header_fps = index_frames / header_s if index_frames and header_s else None
    trusted = header_fps is None or not info.fps or abs(header_fps / info.fps - 1) < 0.1
    missing_s = by_header if trusted and by_header > 0.001 else by_index
    if missing_s > 0.001:
        info.missing_s = round(missing_s, 3)
        reasons.append(f"about {info.missing_s:.3f} s of video missing after the {read_s:.3f} s read")
    info.truncated_detail = "; ".join(reasons)


_BOX_TYPE = frozenset(range(0x20, 0x7F))


def container_shortfall(path: str | os.PathLike, max_boxes: int = 200_000) -> int | None:
    """Bytes the file's own structure says follow its last byte: 0 when complete, None when not
    measurable (not MP4/MOV, Matroska/WebM or RIFF/AVI, or a structure that does not parse).

    MP4/MOV: the top-level boxes' sizes; Matroska: the Segment element's size; RIFF: the chunks'
    sizes. Only headers are read (a few bytes per top-level box).
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(16)
            if len(head) < 12:
                return None
            if head[:4] == b"\x1a\x45\xdf\xa3":
                return _matroska_shortfall(handle, size)
            if head[:4] == b"RIFF":
                return _chunks_shortfall(handle, size, max_boxes)
            if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"styp", b"pnot", b"uuid"):
                return _boxes_shortfall(handle, size, max_boxes)
    except OSError:
        return None
    return None


def _boxes_shortfall(handle, size: int, max_boxes: int) -> int | None:
    pos = 0
    for _ in range(max_boxes):
        if pos >= size:
            return pos - size
        handle.seek(pos)
        header = handle.read(16)
        if len(header) < 8:
            return 8 - len(header)  # the file ends inside a box header
        length, kind = struct.unpack(">I4s", header[:8])
        if not set(kind) <= _BOX_TYPE:
            return None
        if length == 1:
            if len(header) < 16:
                return 16 - len(header)
            length = struct.unpack(">Q", header[8:16])[0]
        elif length == 0:  # the last box runs to the end of the file
            return 0
        if length < 8:
            return None
        pos += length
    return None


def _chunks_shortfall(handle, size: int, max_chunks: int) -> int | None:
    """RIFF files (AVI, WAV): one `RIFF` chunk, then `RIFF AVIX` chunks past 1 GiB."""
    pos = 0
    for _ in range(max_chunks):
        if pos >= size:
            return pos - size
        handle.seek(pos)
        header = handle.read(8)
        if len(header) < 8:
            return 8 - len(header)
        if header[:4] != b"RIFF":
            return 0 if pos else None  # trailing data after the chunks: not a shortfall
        pos += 8 + struct.unpack("<I", header[4:8])[0]
        pos += pos % 2  # chunks are padded to even sizes
    return None


def _vint(handle, keep_marker: bool = False) -> tuple[int | None, int] | None:
    """An EBML variable-size integer: (value, or None for 'unknown size'; bytes read)."""
    first = handle.read(1)
    if not first:
        return None
    length = 9 - first[0].bit_length()
    if length > 8:
        return None
    rest = handle.read(length - 1)
    if len(rest) < length - 1:
        return None
    value = first[0] if keep_marker else first[0] & ((1 << (8 - length)) - 1)
    for byte in rest:
        value = value << 8 | byte
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return None, length
    return value, length


def _matroska_shortfall(handle, size: int) -> int | None:
    handle.seek(4)
    header_size = _vint(handle)
    if header_size is None or header_size[0] is None:
        return None
    pos = 4 + header_size[1] + header_size[0]
    handle.seek(pos)
    element = _vint(handle, keep_marker=True)
    if element is None or element[0] != 0x18538067:  # Segment
        return None
    segment = _vint(handle)
    if segment is None:
        return None
    if segment[0] is None:  # unknown size (a live recording): not measurable
        return None
    end = pos + element[1] + segment[1] + segment[0]
    return max(0, end - size)


def _first_frame_rotation(path, stream_index: int) -> int:
    """Decode the first frame (proves decodability) and return the display rotation in degrees."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams[stream_index]
            for frame in container.decode(stream):
                rotation = getattr(frame, "rotation", 0) or 0
                return int(round(rotation / 90.0)) * 90 % 360
    except av.error.FFmpegError as exc:
        raise ProbeError(f"video does not decode: {exc}") from None
    raise ProbeError("video stream decodes to no frame")


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# codecs of still-image formats: a file whose only picture stream has one of these is an image, not a video
IMAGE_CODECS = frozenset({
    "png", "apng", "bmp", "gif", "webp", "tiff", "jpeg2000", "jpegls", "jpegxl", "ppm", "pgm", "pgmyuv", "pbm",
    "pam", "pfm", "qoi", "exr", "dds", "sgi", "xbm", "xpm", "xwd", "pcx", "targa", "sunrast", "psd", "hdr",
    "photocd", "dpx", "pgx", "alias_pix", "gem", "fits", "vbn", "ptx", "pictor", "txd",
})

_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF87a", "a GIF image"),
               (b"GIF89a", "a GIF image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"),
               (b"%PDF-", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "a gzip archive"))


def not_a_video(info: MediaInfo) -> str | None:
    """Why a file that opened is not a video (no picture stream; an image: an image demuxer or codec,
    or one frame, with no sound), else None."""
    if not info.has_video:
        return f"no video stream (audio only: {info.audio_codec})" if info.audio_streams else "no video stream"
    if info.audio_streams:
        return None
    image_demuxer = info.container in ("image2", "image2pipe") or info.container.endswith("_pipe")
    if image_demuxer or info.video_codec in IMAGE_CODECS or info.frame_count <= 1:
        return f"an image: {info.frame_count} frame(s) of codec {info.video_codec} in {info.container}, no audio"
    return None


def sniff_not_media(path: str | os.PathLike) -> str | None:
    """For a file FFmpeg cannot open: what it is when that is plainly not a video (an image, a
    document, an archive, text), else None (a damaged or unknown media file)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    if not head:
        return "an empty file"
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if b"\x00" in head:
        return None
    for cut in range(4):  # the 4 KiB may end inside a UTF-8 character
        try:
            text = head[: len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        return None
    printable = sum(ch.isprintable() or ch in "\t\r\n\f" for ch in text)
    return "a text file" if printable >= 0.95 * len(text) else None
