"""What every person detector returns for one frame."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One person or face, in pixels of the frame it was found in.

    `kind` is "face" (box around the face, `mouth` set when the detector gives landmarks) or
    "person" (box around the body). The offline people detector gives `box` = the head (a confirmed
    face, or the pose detector's head box when no face was confirmed) and `body` = the body box when
    the pose detector found one, so one track follows a person whether or not the face is seen.
    """

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    kind: str = "face"
    mouth: tuple[float, float] | None = None
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = field(default=None)
    body: tuple[float, float, float, float] | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Square `size` x `size` image with the frame centred, aspect kept; (image, scale, pad_x, pad_y)."""
    import cv2

    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((size, size, 3), np.uint8)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = resized
    return canvas, scale, pad_x, pad_y
