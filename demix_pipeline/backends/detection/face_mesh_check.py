"""Confirms BlazeFace faces with the MediaPipe face-mesh model's face-presence score.

Why: BlazeFace at a low threshold fires on face-like blobs in abstract shapes and textures. The
face mesh network (face_landmark.tflite, mediapipe 0.10.21 wheel) also outputs a face-presence
logit for its crop; MediaPipe's face-landmark graph drops a face whose presence is under its
threshold. The crop follows MediaPipe's face_detection_front_detection_to_roi graph: centre of the
detection box, rotated so the eye line (keypoints 0 and 1) is horizontal, square of 1.5 x the box's
long side, replicated border, 192x192, values in [0, 1].
"""
from __future__ import annotations

import math

import numpy as np

from demix_pipeline.backends.detection.base import Detection
from demix_pipeline.backends.detection.blazepose import rotated_crop
from demix_pipeline.backends.detection.mediapipe_ssd import load_interpreter

FACE_MESH = "mediapipe/modules/face_landmark/face_landmark.tflite"


class FaceMeshCheck:
    """`presence(rgb, face)` in [0, 1]; `confirm(rgb, faces)` keeps faces with presence >= min_presence."""

    name = "mediapipe-face-mesh-presence"

    def __init__(self, min_presence: float = 0.5, threads: int = 1):
        self.interpreter = load_interpreter(FACE_MESH, threads)
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._flag = next(d["index"] for d in self.interpreter.get_output_details() if int(np.prod(d["shape"])) == 1)
        self.min_presence = min_presence

    def presence(self, rgb: np.ndarray, face: Detection) -> float:
        import cv2

        x0, y0, x1, y1 = face.box
        angle = 0.0
        if face.eyes is not None:  # BlazeFace keypoint 0 / 1 (the two eyes): target angle 0
            (ex0, ey0), (ex1, ey1) = face.eyes
            angle = -math.atan2(-(ey1 - ey0), ex1 - ex0)
        side = 1.5 * max(x1 - x0, y1 - y0)
        if side < 2:
            return 0.0
        crop = rotated_crop(rgb, ((x0 + x1) / 2, (y0 + y1) / 2), side, angle, 192, cv2.BORDER_REPLICATE)
        self.interpreter.set_tensor(self._input, (crop.astype(np.float32) / 255.0)[None])
        self.interpreter.invoke()
        logit = float(np.clip(self.interpreter.get_tensor(self._flag).ravel()[0], -100, 100))
        return 1.0 / (1.0 + math.exp(-logit))

    def confirm(self, rgb: np.ndarray, faces: list[Detection]) -> list[Detection]:
        return [face for face in faces if self.presence(rgb, face) >= self.min_presence]
