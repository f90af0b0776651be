"""Face crops for active-speaker scoring, and what a scorer returns."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CROP = 112          # the ONNX contract's crop size (TalkNet / Light-ASD)
CROP_SCALE = 1.4    # square crop side = CROP_SCALE x the larger side of the face box


def face_crop(luma: np.ndarray, box: tuple[float, float, float, float], size: int = CROP,
              scale: float = CROP_SCALE) -> np.ndarray:
    """Square grey crop around a face box, enlarged by `scale`, edge-padded at the frame border."""
    import cv2

    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * scale / 2
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
