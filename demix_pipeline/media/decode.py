"""Decoding that survives damage: undecodable packets are skipped and counted, not fatal.

At corpus scale bit rot and cut-short downloads are normal. `container.decode(stream)` stops at
the first packet FFmpeg refuses (`avcodec_send_packet()`: Invalid data), which loses every clip of
the source; decoding packet by packet keeps the rest (a real mp4 with 10 damaged places: 119 of 125
frames instead of 24). What was lost is recorded in a `DecodeReport`: how many packets failed and
which time spans they covered, so a clip can say how much of its span was real. A source is given
up only past `max_consecutive` failed packets in a row (nothing decodable is left), and a decode
that runs past its deadline stops with `DecodeTimeout`, so one pathological file cannot hold a
worker forever.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import av

from demix_pipeline import row_deadline

# this process's default: set_decode_limit (the stage)
_LIMITS: dict = {"max_consecutive": 100}


def set_decode_limit(max_consecutive: int) -> None:
    """Packets in a row that may fail before a source is given up (shots.max_consecutive_decode_errors;
    100 is about 4 s of 25 fps video, or 2 s of 48 kHz AAC)."""
    _LIMITS["max_consecutive"] = max_consecutive


class TooDamaged(ValueError):
    """More packets in a row failed to decode than the limit: nothing usable is left."""


class DecodeTimeout(row_deadline.RowTimeout):
    """Decoding ran past its deadline (a pathological file, or far more work than a row should be)."""


@dataclass
class DecodeReport:
    """What did not decode in one stream: failed packets and the spans (seconds from the stream's
    start) they covered."""

    errors: int = 0
    lost: list[tuple[float, float]] = field(default_factory=list)
    # decoded after a lost packet and before the next keyframe: predicted from damaged references, so
    # their picture is FFmpeg's concealment, not the source (audio frames stand alone: never any)
    suspect: list[tuple[float, float]] = field(default_factory=list)
    last_error: str | None = None

    @property
    def lost_s(self) -> float:
        return sum(end - start for start, end in self.lost)

    def lost_within(self, start_s: float, end_s: float) -> float:
        """Seconds of [start_s, end_s) that fell in lost spans."""
        return sum(max(0.0, min(end, end_s) - max(start, start_s)) for start, end in self.lost)

    def errors_within(self, start_s: float, end_s: float) -> int:
        return sum(1 for start, end in self.lost if start < end_s and end > start_s)

    def damaged_spans(self) -> list[tuple[float, float]]:
        """Lost and suspect spans, merged where they touch."""
        merged: list[tuple[float, float]] = []
        for start, end in sorted(self.lost + self.suspect):
            if merged and start <= merged[-1][1] + 1e-6:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged


def _span(packet: av.Packet, stream, origin: float) -> tuple[float, float]:
    base = float(stream.time_base or 0)
    start = (packet.pts if packet.pts is not None else packet.dts or 0) * base - origin
    duration = (packet.duration or 0) * base
    return max(0.0, start), max(0.0, start) + max(duration, 0.0)


def decode_frames(container, stream, report: DecodeReport | None = None,
                  max_consecutive: int | None = None) -> Iterator:
    """The stream's frames in decode order, skipping packets that do not decode (recorded in `report`)."""
    report = report if report is not None else DecodeReport()
    max_consecutive = max_consecutive or _LIMITS["max_consecutive"]
    origin = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
    in_a_row = 0
    recovering = False
    predicted = stream.type == "video"
    for packet in container.demux(stream):
        row_deadline.check("while decoding", DecodeTimeout)  # the row's deadline (run.row_deadline_s)
        try:
            frames = stream.decode(packet)
        except av.error.FFmpegError as exc:
            in_a_row += 1
            report.errors += 1
            report.last_error = f"{type(exc).__name__}: {exc}"
            if packet.size:
                report.lost.append(_span(packet, stream, origin))
            recovering = predicted
            if in_a_row > max_consecutive:
                raise TooDamaged(f"{in_a_row} packets in a row do not decode ({report.errors} in all; last: "
                                 f"{report.last_error})") from None
            continue
        in_a_row = 0
        if recovering and packet.is_keyframe:
            recovering = False
        if recovering and packet.size:
            report.suspect.append(_span(packet, stream, origin))
        yield from frames


def scan_audio(path) -> DecodeReport | None:
    """Decode the first audio stream only to find its damaged packets (cheap next to video); None without audio."""
    report = DecodeReport()
    try:
        container = av.open(str(path))
    except av.error.FFmpegError:
        return None
    with container:
        if not container.streams.audio:
            return None
        try:
            for _ in decode_frames(container, container.streams.audio[0], report):
                pass
        except TooDamaged as exc:
            report.last_error = str(exc)
    return report
