"""Stream small YUV thumbnails of every frame straight from the decoder.

Subsampling the decoder's own Y/U/V planes costs almost nothing (measured: 5.43 s vs 5.41 s for
decode-only over the labelled media), whereas swscale to RGB doubled the time. Memory is bounded:
one frame at a time.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

_DIRECT_FORMATS = {"yuv420p", "yuvj420p"}


@dataclass
class Thumb:
    index: int
    time_s: float  # seconds from the first frame
    yuv: np.ndarray  # (h, w, 3) uint8: Y, U, V at the same grid


def _plane(frame, i: int, height: int, width: int) -> np.ndarray:
    plane = frame.planes[i]
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :width]


def thumbnail(frame: av.VideoFrame, short_side: int = 64) -> np.ndarray:
    """Y, U, V sampled on one grid with about `short_side` rows/columns on the short side."""
    if frame.format.name not in _DIRECT_FORMATS:
        scale = short_side / max(1, min(frame.width, frame.height))
        width = max(2, int(round(frame.width * scale)) * 2)
        height = max(2, int(round(frame.height * scale)) * 2)
        frame = frame.reformat(width=width, height=height, format="yuv420p")
    h, w = frame.height, frame.width
    step = 2 * max(1, math.ceil(min(h, w) / (2 * short_side)))  # even, so chroma lines up
    y = _plane(frame, 0, h, w)[::step, ::step]
    u = _plane(frame, 1, (h + 1) // 2, (w + 1) // 2)[:: step // 2, :: step // 2]
    v = _plane(frame, 2, (h + 1) // 2, (w + 1) // 2)[:: step // 2, :: step // 2]
    rows, cols = min(y.shape[0], u.shape[0]), min(y.shape[1], u.shape[1])
    return np.stack([y[:rows, :cols], u[:rows, :cols], v[:rows, :cols]], axis=-1)


def open_video(path: str | os.PathLike) -> tuple[av.container.InputContainer, av.VideoStream]:
    container = av.open(str(path))
    streams = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        container.close()
        raise ValueError("no video stream")
    stream = streams[0]
    stream.thread_type = "AUTO"
    return container, stream


def iter_thumbnails(path: str | os.PathLike, short_side: int = 64) -> Iterator[Thumb]:
    """Every frame in presentation order with its time from the first frame."""
    container, stream = open_video(path)
    with container:
        first = None
        fallback_step = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)
        for index, frame in enumerate(container.decode(stream)):
            t = frame.time
            if t is None:
                t = index * fallback_step + (first or 0.0)
            if first is None:
                first = t
            yield Thumb(index, t - first, thumbnail(frame, short_side))


def iter_frames_rgb(path: str | os.PathLike, indices: set[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Full-size RGB frames (all, or only `indices`), for checks and thumbnails, not for bulk work."""
    container, stream = open_video(path)
    with container:
        for index, frame in enumerate(container.decode(stream)):
            if indices is None or index in indices:
                yield index, frame.to_ndarray(format="rgb24")
            if indices is not None and index >= max(indices):
                return
