"""What MediaPipe's SSD-style detectors (BlazeFace, the BlazePose person detector) share, run through LiteRT.

Their graphs decode the same way: a letterboxed square input in [-1, 1], anchors with fixed size on
a grid per stride, per anchor a box (x, y, w, h) and keypoints (x, y) relative to the anchor centre
in input pixels, sigmoid scores (logits clipped to +-100), and weighted non-maximum suppression.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import numpy as np

from demix_pipeline.backends import wheel_models
from demix_pipeline.backends.detection.base import iou, letterbox


@dataclass(frozen=True)
class Variant:
    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]


def anchors(variant: Variant) -> np.ndarray:
    """Anchor centres (x, y) in [0, 1], in the order the model's outputs use."""
    centres = []
    for stride, count in zip(variant.strides, variant.anchors_per_cell):
        cells = variant.size // stride
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, count, axis=0))
    return np.concatenate(centres).astype(np.float32)


@contextlib.contextmanager
def native_stderr_muted():
    """Silence file descriptor 2 (C-level writes) for the duration; Python exceptions still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_interpreter(member: str, threads: int = 1):
    """A LiteRT interpreter for a mediapipe wheel model, warmed up once (first invoke allocates)."""
    from ai_edge_litert.interpreter import Interpreter

    path = wheel_models.path("mediapipe", member)
    with native_stderr_muted():  # LiteRT prints an INFO line about its XNNPACK delegate on every load
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        inputs = interpreter.get_input_details()
        interpreter.set_tensor(inputs[0]["index"], np.zeros(inputs[0]["shape"], np.float32))
        interpreter.invoke()
    return interpreter


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, min_iou: float) -> list[np.ndarray]:
    """Groups of overlapping candidates, best first (MediaPipe's WEIGHTED suppression averages each group)."""
    order = list(np.argsort(-scores))
    groups = []
    while order:
        best = order[0]
        members = [i for i in order if iou(tuple(boxes[best]), tuple(boxes[i])) >= min_iou]
        groups.append(np.array(members))
        order = [i for i in order if i not in members]
    return groups


class SsdModel:
    """One SSD detector model: its interpreter, output indices and anchors."""

    def __init__(self, variant: Variant, threads: int = 1):
        self.variant = variant
        self.model_path = wheel_models.path("mediapipe", variant.file)
        self.interpreter = load_interpreter(variant.file, threads)
        self._input = self.interpreter.get_input_details()[0]["index"]
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self._boxes, self._scores = outputs[0]["index"], outputs[1]["index"]
        self.anchors = anchors(variant)
        assert len(self.anchors) == outputs[0]["shape"][1], "anchor layout does not match the model"

    def candidates(self, rgb: np.ndarray, min_score: float, points: int, shift: tuple[float, float] = (0.0, 0.0)
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (n, 4), keypoints (n, points, 2) in frame pixels (moved by `shift`) and scores (n,), before NMS."""
        size = self.variant.size
        image, scale, pad_x, pad_y = letterbox(rgb, size)
        self.interpreter.set_tensor(self._input, (image.astype(np.float32) / 127.5 - 1.0)[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._boxes)[0]
        logits = np.clip(self.interpreter.get_tensor(self._scores)[0, :, 0].astype(np.float64), -100, 100)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = np.flatnonzero(scores >= min_score)
        raw, scores, centre = raw[keep] / size, scores[keep], self.anchors[keep]
        cx, cy = raw[:, 0] + centre[:, 0], raw[:, 1] + centre[:, 1]
        boxes = np.stack([cx - raw[:, 2] / 2, cy - raw[:, 3] / 2, cx + raw[:, 2] / 2, cy + raw[:, 3] / 2], 1)
        marks = raw[:, 4:4 + 2 * points].reshape(-1, points, 2) + centre[:, None, :]
        offset = np.array(shift)

        def to_frame(xy: np.ndarray) -> np.ndarray:  # letterboxed [0, 1] -> frame pixels
            return (xy * size - np.array([pad_x, pad_y])) / scale + offset

        return to_frame(boxes.reshape(-1, 2, 2)).reshape(-1, 4), to_frame(marks), scores
