"""Whole-clip picture measures from small decoder thumbnails: brightness, colourfulness, motion."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from demix_pipeline.media.frames import iter_frames_at, thumbnail


@dataclass(frozen=True)
class PictureStats:
    brightness: float       # mean luma, 0-255
    colourfulness: float    # mean chroma distance from grey, sqrt((U-128)^2 + (V-128)^2), 0-181
    motion: float           # mean absolute luma change between consecutive analysis frames, 0-255
    frames: int


class PictureMeter:
    """Accumulates the measures frame by frame, so the frames can come from a pass that serves others too."""

    def __init__(self, short_side: int = 64):
        self.short_side = short_side
        self.luma_means: list[float] = []
        self.chroma_means: list[float] = []
        self.changes: list[float] = []
        self.previous = None

    def add(self, frame) -> None:
        thumb = thumbnail(frame, self.short_side).astype(np.float32)
        luma = thumb[..., 0]
        self.luma_means.append(float(luma.mean()))
        self.chroma_means.append(float(np.sqrt((thumb[..., 1] - 128) ** 2 + (thumb[..., 2] - 128) ** 2).mean()))
        if self.previous is not None and self.previous.shape == luma.shape:
            self.changes.append(float(np.abs(luma - self.previous).mean()))
        self.previous = luma

    def result(self) -> PictureStats:
        if not self.luma_means:
            raise ValueError("no video frame decoded")
        return PictureStats(float(np.mean(self.luma_means)), float(np.mean(self.chroma_means)),
                            float(np.mean(self.changes)) if self.changes else 0.0, len(self.luma_means))


def picture_stats(path: str | os.PathLike, fps: float, short_side: int = 64) -> PictureStats:
    meter = PictureMeter(short_side)
    for _, frame in iter_frames_at(path, fps):
        meter.add(frame)
    return meter.result()
