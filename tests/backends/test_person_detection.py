"""Person/face detectors and the face tracker: BlazeFace on real frames, YOLO from a tiny random checkpoint."""
from __future__ import annotations

import numpy as np
import pytest

from demix_pipeline.backends import wheel_models
from demix_pipeline.backends.detection.base import Detection
from demix_pipeline.backends.detection.blazeface import BlazeFace, anchors, VARIANTS
from demix_pipeline.backends.detection.tracker import IoUTracker
from demix_pipeline.media.frames import iter_frames_rgb


@pytest.fixture(scope="module")
def blazeface():
    return BlazeFace("full_range", min_score=0.4)


def frame(path, index=0):
    return next(rgb for i, rgb in iter_frames_rgb(path, {index}))


def test_anchor_grids_match_the_models():
    assert anchors(VARIANTS["full_range"]).shape == (2304, 2)
    assert anchors(VARIANTS["short_range"]).shape == (896, 2)


def test_one_face_with_its_mouth_on_a_talking_head(media, blazeface):
    rgb = frame(media / "talking_head_single/videoretalking_face_1.mp4", 10)
    faces = blazeface.detect(rgb)
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    assert face.score > 0.7 and face.height > 0.25 * rgb.shape[0]
    mx, my = face.mouth
    assert x0 < mx < x1 and (y0 + y1) / 2 < my < y1  # the mouth is in the lower half of the face box


def test_two_people_and_no_people(media, blazeface):
    assert len(blazeface.detect(frame(media / "multi_person_dialogue/datajuicer_video3_two_women_talk_vertical.mp4", 50))) == 2
    for name in ("scenery_no_people/datajuicer_video10_plant_no_audio.mp4", "sound_effects/vas_fireworks_video_02997.mp4"):
        assert blazeface.detect(frame(media / name, 5)) == []


def test_missing_wheel_model_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMIX_WHEEL_MODELS", str(tmp_path))
    with pytest.raises(wheel_models.WheelModelMissing, match="mediapipe==0.10.21.*make install"):
        BlazeFace()


def test_tracker_follows_moving_faces_and_splits_new_ones():
    tracker = IoUTracker(min_iou=0.3, max_gap_s=1.0)
    face = lambda x: Detection((x, 0.0, x + 10.0, 10.0), 0.9)  # noqa: E731
    for step in range(5):
        seen = tracker.update(step * 0.2, [face(step * 1.0), face(50.0)])
        assert len(seen) == 2
    assert len(tracker.tracks) == 2 and len(tracker.tracks[0].detections) == 5
    tracker.update(3.0, [face(4.0)])  # after a gap longer than max_gap_s: a new track
    assert len(tracker.tracks) == 3


def test_torchvision_nms_stand_in_matches_the_definition():
    from demix_pipeline.backends.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import torch
    import torchvision

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9.]])
    scores = torch.tensor([0.8, 0.9, 0.7, 0.1])
    assert torchvision.ops.nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert torchvision.ops.nms(boxes, scores, 0.95).tolist() == [1, 0, 2, 3]


def test_yolo_reference_from_a_random_checkpoint_in_the_store(tmp_path, monkeypatch):
    """Plumbing only: a YOLO built from its .yaml, saved as a .pt in a model-store folder, loaded and run."""
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "cfg"))
    from demix_pipeline.backends.detection.yolo_ref import YoloPersons
    from tests.backends.tiny_models import build_tiny_yolo

    store = tmp_path / "models" / "yolo11n"
    build_tiny_yolo(store / "model.pt")

    detector = YoloPersons(store / "model.pt", confidence=0.01)
    found = detector.detect(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    assert all(d.kind == "person" and 0 <= d.box[0] <= d.box[2] <= 320 for d in found)
    with pytest.raises(FileNotFoundError):
        YoloPersons(store / "absent.pt")
