"""Compare the offline person/face detector candidates on the labelled shots of a media folder.

Why the offline default is faces confirmed by the face mesh plus mask-confirmed BlazePose bodies
(`people_default`): for each labelled shot (labels.tsv, `max_people`
as classes 0 / 1 / 2+, `unsure` left out), frames at 2 fps are given to each candidate and the
shot's count is the 90th percentile of per-frame counts; the script prints accuracy and
milliseconds per frame on one core, on the tune files (tests/data/tune_files.txt), the held-out rest,
and all. Candidates: the default, its face and body parts alone, MediaPipe BlazeFace full-range and
short-range (LiteRT), OpenCV Haar frontal + profile faces, OpenCV HOG people (all with weights inside wheels);
with `--models DIR` holding yolox_nano/yolox_nano.onnx (or $DEMIX_MODELS), also YOLOX-Nano bodies alone
and `person_detector: yolox`'s people (YOLOX bodies with BlazeFace heads, backends/detection/people.py).

    python bench/person_detectors.py [--media DIR] [--json FILE] [--models DIR]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from _report import report

from demix_pipeline.backends.detection.base import iou
from demix_pipeline.backends.detection.blazeface import BlazeFace
from demix_pipeline.evaluation import count_class, halves, label_rows
from demix_pipeline.media.frames import iter_frames_at, open_video

DEFAULT_MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"


def haar_counter():
    frontal = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    profile = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_profileface.xml")

    def count(rgb: np.ndarray) -> int:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        boxes = [tuple(map(float, (x, y, x + w, y + h))) for x, y, w, h in
                 list(frontal.detectMultiScale(grey, 1.1, 5)) + list(profile.detectMultiScale(grey, 1.1, 5))]
        kept: list = []
        for box in boxes:  # merge frontal/profile hits on the same face
            if all(iou(box, other) < 0.3 for other in kept):
                kept.append(box)
        return len(kept)
    return count


def hog_counter():
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def count(rgb: np.ndarray) -> int:
        boxes, weights = hog.detectMultiScale(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), winStride=(8, 8))
        return int(np.sum(np.ravel(weights) > 0.5)) if len(boxes) else 0
    return count


def blazeface_counter(variant: str, min_score: float):
    detector = BlazeFace(variant, min_score=min_score)
    return lambda rgb: len(detector.detect(rgb))


def people_counter(**people):
    """The offline default (backends/detection/people.py), or one of its parts switched off."""
    from demix_pipeline.backends.detection.people import PeopleDetector
    from demix_pipeline.config import PeopleConfig

    detector = PeopleDetector(PeopleConfig(**people))
    return lambda rgb: len(detector.detect(rgb))


def bodies_counter():
    """BlazePose people alone (no face model), kept when the person mask covers their head."""
    from demix_pipeline.backends.detection.blazepose import BlazePose
    from demix_pipeline.backends.detection.selfie_segmentation import SelfieSegmenter

    pose, segmenter = BlazePose(), SelfieSegmenter()

    def count(rgb: np.ndarray) -> int:
        bodies = pose.detect(rgb)
        if not bodies:
            return 0
        mask = segmenter.mask(rgb)
        return sum(SelfieSegmenter.fraction(mask, b.face_box or b.box) >= 0.5 for b in bodies)
    return count


def yolox_counters(models: Path) -> dict:
    """YOLOX-Nano bodies alone, and the stage's yolox people (the same bodies, heads from confirmed faces), at its thresholds."""
    from demix_pipeline.backends.detection.people import YoloxPeopleDetector
    from demix_pipeline.backends.detection.yolox import YoloxPersons
    from demix_pipeline.config import load_config

    cfg = load_config().voiceover
    weights = models / cfg.yolox_model / "yolox_nano.onnx"
    bodies = YoloxPersons(weights, cfg.yolox_min_score, threads=1)
    people = YoloxPeopleDetector(weights, cfg.people, cfg.face_variant, cfg.face_min_score, cfg.yolox_min_score, threads=1)
    return {"yolox_bodies": lambda rgb: len(bodies.detect(rgb)), "yolox_people": lambda rgb: len(people.detect(rgb))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--models", type=Path, help="model store holding yolox_nano (default: $DEMIX_MODELS)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    candidates = {"people_default": people_counter(),
                  "faces_mesh_confirmed": people_counter(bodies=False),
                  "bodies_mask_confirmed": bodies_counter(),
                  "blazeface_full_range": blazeface_counter("full_range", 0.4),
                  "blazeface_short_range": blazeface_counter("short_range", 0.4),
                  "opencv_haar_faces": haar_counter(), "opencv_hog_people": hog_counter()}
    from demix_pipeline.config import load_config
    from demix_pipeline.models import models_dir

    store = models_dir(args.models)
    if store is not None and (store / load_config().voiceover.yolox_model / "yolox_nano.onnx").is_file():
        candidates.update(yolox_counters(store))
    labels = [row for row in label_rows(args.media) if row["max_people"] != "unsure"]
    frames_by_video: dict[str, list[tuple[float, np.ndarray]]] = {}
    for video in sorted({row["video_path"] for row in labels}):
        try:
            open_video(args.media / video)[0].close()
        except ValueError:  # cover art only
            continue
        frames = []
        for t, frame in iter_frames_at(args.media / video, args.fps):
            scale = min(1.0, 640 / max(frame.width, frame.height))
            frames.append((t, frame.to_ndarray(format="rgb24", width=max(2, round(frame.width * scale)),
                                               height=max(2, round(frame.height * scale)))))
        frames_by_video[video] = frames
    labels = [row for row in labels if row["video_path"] in frames_by_video]
    figures: dict = {"person_detectors.shots": len(labels)}
    for name, count in candidates.items():
        counts, spent, calls = {}, 0.0, 0
        for video, frames in frames_by_video.items():
            for t, rgb in frames:
                start = time.perf_counter()
                counts[(video, t)] = count(rgb)
                spent += time.perf_counter() - start
                calls += 1
        right = {}
        for row in labels:
            a, b = float(row["start_s"]), float(row["end_s"])
            shot = [n for (video, t), n in counts.items() if video == row["video_path"] and a <= t < b]
            predicted = int(np.percentile(shot, 90, method="lower")) if shot else 0
            right[(row["video_path"], row["shot_index"])] = count_class(predicted) == count_class(row["max_people"])
        for half, videos in halves({row["video_path"] for row in labels}).items():
            scored = [ok for (video, _), ok in right.items() if video in videos]
            figures[f"person_detectors.{name}.accuracy_{half}"] = round(sum(scored) / max(1, len(scored)), 4)
        figures[f"person_detectors.{name}.ms_per_frame"] = round(1000 * spent / max(1, calls), 1)
    always_one = sum(count_class(row["max_people"]) == "1" for row in labels) / len(labels)
    figures["person_detectors.always_one.accuracy_all"] = round(always_one, 4)
    split = halves({row["video_path"] for row in labels})
    report([f"person/face detector candidates on {args.media}/labels.tsv (frames at {args.fps} fps, "
            "long side <= 640 px, shot count = 90th percentile)",
            f"tune: {sum(r['video_path'] in split['tune'] for r in labels)} shots of the files in tests/data/tune_files.txt; "
            f"held_out: the other {sum(r['video_path'] in split['held_out'] for r in labels)} shots"], figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
