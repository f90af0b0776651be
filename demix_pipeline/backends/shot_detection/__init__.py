"""Shot boundary detectors: ours (`demix`) and stock PySceneDetect (`content`, `adaptive`)."""
from demix_pipeline.backends.shot_detection.base import ShotBoundaries, ShotDetector, make_detector

__all__ = ["ShotBoundaries", "ShotDetector", "make_detector"]
