"""MediaPipe BlazeFace (full-range and short-range) run through LiteRT, with its anchors and weighted NMS.

Chosen as the offline person detector from the candidates measured on ../shared/media (see
bench/voiceover.py and notes/MEASUREMENTS.md): it was the most accurate human count among the
detectors with weights in registry wheels and costs a few ms per frame. It gives six landmarks per
face; the mouth landmark is what the offline active-speaker step crops. The full-range model uses
the TFLite DENSIFY op, which cv2.dnn cannot run: LiteRT (ai-edge-litert) can.
Decoding follows MediaPipe's face_detection_{full,short}_range graphs: SSD anchors with a fixed
size, boxes and keypoints relative to the anchor centre, sigmoid scores, weighted NMS.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import numpy as np

from demix_pipeline.backends import wheel_models
from demix_pipeline.backends.detection.base import Detection, iou, letterbox


@dataclass(frozen=True)
class Variant:
    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]


VARIANTS = {
    "full_range": Variant("mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite", 192, (4,), (1,)),
    "short_range": Variant("mediapipe/modules/face_detection/face_detection_short_range.tflite", 128,
                           (8, 16), (2, 6)),
}


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
def _native_stderr_muted():
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


class BlazeFace:
    name = "mediapipe-blazeface"

    def __init__(self, variant: str = "full_range", min_score: float = 0.5, nms_iou: float = 0.3, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.variant = VARIANTS[variant]
        self.model_path = wheel_models.path("mediapipe", self.variant.file)
        with _native_stderr_muted():  # LiteRT prints an INFO line about its XNNPACK delegate on every load
            self.interpreter = Interpreter(model_path=str(self.model_path), num_threads=threads)
            self.interpreter.allocate_tensors()
            inputs = self.interpreter.get_input_details()
            self.interpreter.set_tensor(inputs[0]["index"], np.zeros(inputs[0]["shape"], np.float32))
            self.interpreter.invoke()
        self._input = inputs[0]["index"]
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self._boxes, self._scores = outputs[0]["index"], outputs[1]["index"]
        self.anchors = anchors(self.variant)
        self.min_score, self.nms_iou = min_score, nms_iou
        self.version = f"mediapipe 0.10.21 {variant} ({self.model_path.name})"

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in one RGB frame (any size), boxes and landmarks in its pixels."""
        size = self.variant.size
        image, scale, pad_x, pad_y = letterbox(rgb, size)
        self.interpreter.set_tensor(self._input, (image.astype(np.float32) / 127.5 - 1.0)[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._boxes)[0]
        logits = np.clip(self.interpreter.get_tensor(self._scores)[0, :, 0].astype(np.float64), -100, 100)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        raw, scores, centre = raw[keep] / size, scores[keep], self.anchors[keep]
        cx, cy = raw[:, 0] + centre[:, 0], raw[:, 1] + centre[:, 1]
        boxes = np.stack([cx - raw[:, 2] / 2, cy - raw[:, 3] / 2, cx + raw[:, 2] / 2, cy + raw[:, 3] / 2], 1)
        points = raw[:, 4:16].reshape(-1, 6, 2) + centre[:, None, :]

        def to_frame(xy: np.ndarray) -> np.ndarray:  # letterboxed [0, 1] -> frame pixels
            return (xy * size - np.array([pad_x, pad_y])) / scale

        height, width = rgb.shape[:2]
        out = []
        for group in self._weighted_nms(boxes, scores):
            weights = scores[group] / scores[group].sum()
            box = to_frame((boxes[group] * weights[:, None]).sum(0).reshape(2, 2)).ravel()
            box = (max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]), min(float(height), box[3]))
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            marks = to_frame((points[group] * weights[:, None, None]).sum(0))
            out.append(Detection(box=tuple(float(v) for v in box), score=float(scores[group].max()), kind="face",
                                 mouth=(float(marks[3, 0]), float(marks[3, 1])),
                                 eyes=((float(marks[0, 0]), float(marks[0, 1])), (float(marks[1, 0]), float(marks[1, 1])))))
        return out

    def _weighted_nms(self, boxes: np.ndarray, scores: np.ndarray) -> list[np.ndarray]:
        """Groups of overlapping candidates, best first (MediaPipe's WEIGHTED suppression averages each group)."""
        order = list(np.argsort(-scores))
        groups = []
        while order:
            best = order[0]
            members = [i for i in order if iou(tuple(boxes[best]), tuple(boxes[i])) >= self.nms_iou]
            groups.append(np.array(members))
            order = [i for i in order if i not in members]
        return groups
