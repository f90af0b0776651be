"""Person and face detectors: offline (MediaPipe BlazeFace through LiteRT) and reference (ultralytics YOLO)."""
