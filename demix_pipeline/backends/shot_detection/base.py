"""What every shot detector returns, and the factory that picks one from config."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from demix_pipeline.config import DetectorConfig
from demix_pipeline.media.decode import DecodeReport


@dataclass
class ShotBoundaries:
    """Hard cuts and frame ranges no clip may contain, in frame indices of decode order."""

    times: np.ndarray  # seconds of each frame from the first frame
    cuts: list[int] = field(default_factory=list)  # first frame of each new shot
    cut_scores: dict[int, float] = field(default_factory=dict)
    excluded: list[tuple[int, int, str]] = field(default_factory=list)  # [start, end) and "gradual" / "blank"
    decode: DecodeReport = field(default_factory=DecodeReport)  # packets of the picture that did not decode

    @property
    def num_frames(self) -> int:
        return len(self.times)

    def end_time(self) -> float:
        """Where the last frame ends (its start plus the median frame interval)."""
        if len(self.times) < 2:
            return float(self.times[-1]) + 1.0 if len(self.times) else 0.0
        return float(self.times[-1] + np.median(np.diff(self.times)))

    def boundary_times(self) -> list[float]:
        """Times scored as shot boundaries: hard cuts, and the middle of each gradual transition."""
        out = [float(self.times[i]) for i in self.cuts]
        for start, end, kind in self.excluded:
            if kind == "gradual":
                out.append(float(self.times[(start + end - 1) // 2]))
        return sorted(out)


class ShotDetector(Protocol):
    name: str
    version: str

    def detect(self, path: str | os.PathLike) -> ShotBoundaries: ...


def make_detector(cfg: DetectorConfig, num_threads: int = 1, device: str = "cpu") -> ShotDetector:
    """The detector `cfg.name` names; `num_threads` and `device` come from the stage's resources."""
    if cfg.name == "demix":
        from demix_pipeline.backends.shot_detection.demix import DemixDetector

        return DemixDetector(cfg)
    if cfg.name == "transnetv2":
        from demix_pipeline.backends.shot_detection.transnetv2 import TransNetV2Detector

        return TransNetV2Detector(cfg, num_threads, device)
    if cfg.name == "fused":
        from demix_pipeline.backends.shot_detection.fused import FusedDetector

        return FusedDetector(cfg, num_threads, device)
    from demix_pipeline.backends.shot_detection.pyscenedetect import SceneDetectDetector

    return SceneDetectDetector(cfg)
