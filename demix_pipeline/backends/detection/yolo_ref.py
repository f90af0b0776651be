"""Reference person detector: an ultralytics YOLO checkpoint from the model store (the paper's detector).

Offline by construction: YOLO_OFFLINE=1 (set in demix_pipeline/_env.py) stops its connectivity
checks, YOLO_CONFIG_DIR points at a folder of ours instead of the user's home, and the model is
loaded from a local `.pt` path only (a bare name like `yolo11n.pt` would trigger a download).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from demix_pipeline.backends.detection.base import Detection


class YoloPersons:
    name = "ultralytics-yolo"

    def __init__(self, weights: Path, confidence: float = 0.4, person_class: int = 0, imgsz: int = 640,
                 device: str = "cpu"):
        os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "demix-ultralytics"))
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from demix_pipeline.backends.torch_compat import ensure_torchvision_importable

        ensure_torchvision_importable()
        import ultralytics
        from ultralytics import YOLO

        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(f"YOLO checkpoint {weights} does not exist")
        self.model = YOLO(str(weights), task="detect")
        self.confidence, self.person_class, self.imgsz, self.device = confidence, person_class, imgsz, device
        self.version = f"ultralytics {ultralytics.__version__} {weights.parent.name}/{weights.name}"

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Persons in one RGB frame, boxes in its pixels."""
        result = self.model.predict(rgb[:, :, ::-1], conf=self.confidence, classes=[self.person_class],
                                    imgsz=self.imgsz, device=self.device, verbose=False)[0]
        boxes = result.boxes
        return [Detection(box=tuple(float(v) for v in xyxy), score=float(score), kind="person")
                for xyxy, score in zip(boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy())]
