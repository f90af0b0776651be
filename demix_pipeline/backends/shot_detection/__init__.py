"""Shot boundary detectors: `fused` (TransNetV2 at our candidates), `transnetv2`, ours (`demix`), stock PySceneDetect (`content`, `adaptive`)."""
from demix_pipeline.backends.shot_detection.base import ShotBoundaries, ShotDetector, make_detector

__all__ = ["ShotBoundaries", "ShotDetector", "make_detector"]
