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

import numpy as np

from demix_pipeline.backends.detection.base import Detection
from demix_pipeline.backends.detection.mediapipe_ssd import SsdModel, Variant, anchors, weighted_nms

__all__ = ["VARIANTS", "BlazeFace", "anchors"]

VARIANTS = {
    "full_range": Variant("mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite", 192, (4,), (1,)),
    "short_range": Variant("mediapipe/modules/face_detection/face_detection_short_range.tflite", 128,
                           (8, 16), (2, 6)),
}


class BlazeFace:
    name = "mediapipe-blazeface"

    def __init__(self, variant: str = "full_range", min_score: float = 0.5, nms_iou: float = 0.3, threads: int = 1):
        self.model = SsdModel(VARIANTS[variant], threads)
        self.variant, self.model_path = self.model.variant, self.model.model_path
        self.min_score, self.nms_iou = min_score, nms_iou
        self.version = f"mediapipe 0.10.21 {variant} ({self.model_path.name})"

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in one RGB frame (any size), boxes and landmarks in its pixels."""
        boxes, points, scores = self.model.candidates(rgb, self.min_score, points=6)
        height, width = rgb.shape[:2]
        out = []
        for group in weighted_nms(boxes, scores, self.nms_iou):
            weights = scores[group] / scores[group].sum()
            box = (boxes[group] * weights[:, None]).sum(0)
            box = (max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]), min(float(height), box[3]))
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            marks = (points[group] * weights[:, None, None]).sum(0)
            out.append(Detection(box=tuple(float(v) for v in box), score=float(scores[group].max()), kind="face",
                                 mouth=(float(marks[3, 0]), float(marks[3, 1])),
                                 eyes=((float(marks[0, 0]), float(marks[0, 1])), (float(marks[1, 0]), float(marks[1, 1])))))
        return out
