"""MediaPipe selfie segmentation (person mask) run through LiteRT.

Why: a person mask lets a detection be checked against "is this region a person?" with a network
trained on a different task, which catches face-like textures and animals that a detector fires
on. Follows MediaPipe's selfie_segmentation_cpu graph: the whole frame stretched (no letterbox) to
256x256 (general model) or 256x144 (landscape model), values in [0, 1]; the output is already a
probability (activation NONE) and is resized back to the frame.
"""
from __future__ import annotations

import numpy as np

from demix_pipeline.backends.detection.mediapipe_ssd import load_interpreter

MODELS = {"general": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
          "landscape": "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite"}


class SelfieSegmenter:
    """`mask(rgb)`: float32 (h, w) person probability; `fraction(mask, box)`: its mean inside a box."""

    name = "mediapipe-selfie-segmentation"

    def __init__(self, variant: str = "general", threads: int = 1):
        self.interpreter = load_interpreter(MODELS[variant], threads)
        inp = self.interpreter.get_input_details()[0]
        self._input, (self._h, self._w) = inp["index"], (int(inp["shape"][1]), int(inp["shape"][2]))
        self._output = self.interpreter.get_output_details()[0]["index"]

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        image = cv2.resize(rgb, (self._w, self._h), interpolation=cv2.INTER_AREA)
        self.interpreter.set_tensor(self._input, (image.astype(np.float32) / 255.0)[None])
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output)[0, :, :, 0]
        return cv2.resize(out, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)

    @staticmethod
    def fraction(mask: np.ndarray, box: tuple[float, float, float, float]) -> float:
        """Mean person probability inside `box` (frame pixels, clipped); 0 for an empty box."""
        h, w = mask.shape
        x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
        x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
        return float(mask[y0:y1, x0:x1].mean()) if x1 > x0 and y1 > y0 else 0.0
