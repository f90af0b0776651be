"""Probe a source with PyAV: streams, timing from packets (no trust in header durations), rotation.

Reads every packet header once (no decoding) so frame counts, variable frame rate and where the
audio really ends are measured, not taken from metadata; then decodes one video frame to prove
the file decodes and to read the display rotation.
"""
from __future__ import annotations

import math
import os
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
        a_end = None
        try:
            for packet in container.demux(wanted):
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None or packet.size == 0:
                    continue
                t = float(ts * packet.time_base)
                d = float(packet.duration * packet.time_base) if packet.duration else 0.0
                if video is not None and packet.stream.index == video.index:
                    v_times.append(t)
                    v_durs.append(d)
                else:
                    a_end = max(a_end or t + d, t + d)
        except av.error.FFmpegError:
            pass  # truncated or damaged tail: keep what could be read; decoding will tell the rest
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
        elif a_end is not None:
            info.audio_duration_s = a_end
    return info


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
