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


def picture_stats(path: str | os.PathLike, fps: float, short_side: int = 64) -> PictureStats:
    luma_means, chroma_means, changes = [], [], []
    previous = None
    for _, frame in iter_frames_at(path, fps):
        thumb = thumbnail(frame, short_side).astype(np.float32)
        luma = thumb[..., 0]
        luma_means.append(float(luma.mean()))
        chroma_means.append(float(np.sqrt((thumb[..., 1] - 128) ** 2 + (thumb[..., 2] - 128) ** 2).mean()))
        if previous is not None and previous.shape == luma.shape:
            changes.append(float(np.abs(luma - previous).mean()))
        previous = luma
    if not luma_means:
        raise ValueError("no video frame decoded")
    return PictureStats(float(np.mean(luma_means)), float(np.mean(chroma_means)),
                        float(np.mean(changes)) if changes else 0.0, len(luma_means))
