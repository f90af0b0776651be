"""Face crops for active-speaker scoring, and what a scorer returns."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CROP = 112          # the ONNX contract's crop size (TalkNet / Light-ASD)
CROP_SCALE = 1.4    # square crop side = CROP_SCALE x the larger side of the face box


def face_crop(luma: np.ndarray, box: tuple[float, float, float, float], size: int = CROP,
              scale: float = CROP_SCALE, shift: float = 0.0) -> np.ndarray:
    """Square grey crop around a face box, enlarged by `scale`, edge-padded at the frame border.

    The crop's side is `scale` x the box's larger side; its centre is the box's centre moved down
    by `shift` x that side (TalkNet's and LR-ASD's demos crop 0.7 x the side, 0.2 below the centre).
    """
    import cv2

    side = max(box[2] - box[0], box[3] - box[1])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2 + shift * side
    half = side * scale / 2
    x0, y0, x1, y1 = int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half))
    h, w = luma.shape
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    if pad:
        luma = cv2.copyMakeBorder(luma, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    region = luma[y0:y1, x0:x1]
    if region.size == 0:
        return np.zeros((size, size), np.uint8)
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)


@dataclass
class TrackCrops:
    """One face track's crops at the active-speaker frame rate, with the mouth position inside the crop."""

    track_id: int
    times: list[float]
    crops: list[np.ndarray]
    mouth_rel: list[tuple[float, float] | None]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def aligned_runs(times, features: np.ndarray, fps: float = 25.0, rate: float = 100.0) -> list[tuple[slice, np.ndarray]]:
    """A track's crops as runs of consecutive `fps` frames, each with the audio features of its own span.

    A track can have gaps (the face was lost for a while): a step between crop times of more than
    1.5 frames starts a new run. `features` are the clip's audio features at `rate` rows a second
    from time 0 (13 MFCCs at 100 Hz: 4 rows per 25 fps frame); a run of n crops starting at time t
    gets rows round(t * rate) .. + n * rate / fps, taken at the run's time, not at its position in
    the track. Rows past the end of the audio repeat its last row.
    """
    per_frame = int(round(rate / fps))
    times = np.asarray(times, np.float64)
    if len(times) == 0:
        return []
    breaks = np.flatnonzero(np.diff(times) > 1.5 / fps) + 1
    starts, ends = np.concatenate([[0], breaks]), np.concatenate([breaks, [len(times)]])
    out = []
    for a, b in zip(starts, ends):
        first, rows = int(round(times[a] * rate)), int(b - a) * per_frame
        span = features[max(0, first):first + rows]
        if len(span) < rows:
            fill = features[-1:] if len(features) else np.zeros((1, features.shape[1]), features.dtype)
            span = np.concatenate([span, np.repeat(fill, rows - len(span), axis=0)]) if len(span) else np.repeat(fill, rows, axis=0)
        out.append((slice(int(a), int(b)), span))
    return out
