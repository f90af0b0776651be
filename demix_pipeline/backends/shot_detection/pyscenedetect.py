"""Stock PySceneDetect detectors, as a baseline and an alternative (`detector.name: content|adaptive`)."""
from __future__ import annotations

import os

import numpy as np

from demix_pipeline.backends.shot_detection.base import ShotBoundaries
from demix_pipeline.config import DetectorConfig
from demix_pipeline.media.probe import probe


class SceneDetectDetector:
    def __init__(self, cfg: DetectorConfig):
        import scenedetect

        self.cfg = cfg
        self.name = f"pyscenedetect-{cfg.name}"
        self.version = scenedetect.__version__

    def detect(self, path: str | os.PathLike) -> ShotBoundaries:
        from scenedetect import AdaptiveDetector, ContentDetector, detect

        if self.cfg.name == "content":
            detector = ContentDetector(threshold=self.cfg.content.threshold)
        else:
            detector = AdaptiveDetector(adaptive_threshold=self.cfg.adaptive.threshold)
        scenes = detect(str(path), detector)
        times = probe(path, keep_frame_times=True).frame_times
        cuts = []
        for start, _ in scenes[1:]:
            # PySceneDetect counts frames at a nominal rate; map its time onto real frame times.
            idx = int(np.searchsorted(times, start.seconds - 1e-6))
            if 0 < idx < len(times):
                cuts.append(idx)
        return ShotBoundaries(times=times, cuts=sorted(set(cuts)))
