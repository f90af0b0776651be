"""MediaPipe BlazePose person detector run through LiteRT: people whose face is not visible.

Why: BlazeFace only counts people who show a face, so backs, distant people and heads cut off by the
frame are missed, and a face-like blob in an abstract texture counts as a person. The BlazePose
detector (pose_detection.tflite, from the mediapipe 0.10.21 wheel) is trained on whole people and
finds them from behind and far away.
Decoding follows MediaPipe's pose_detection_cpu graph: 224x224 letterboxed input in [-1, 1]; SSD
anchors (5 layers, strides 8, 16, 32, 32, 32, offsets 0.5, fixed anchor size, 2 anchors per layer
and cell, so 2254 anchors); 12 values per anchor: box (x, y, w, h) then 4 keypoints (x, y), all
relative to the anchor centre in 224 px units; sigmoid scores (logits clipped to +-100); weighted NMS
at IoU 0.3. The detector's box is the face/head box; keypoint 0 is the mid-hip centre, keypoint 1
sets the radius of a circle around the whole body (2 and 3 do the same for the upper body). The
score threshold is MediaPipe Pose's default min_detection_confidence, 0.5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from demix_pipeline.backends.detection.base import Detection
from demix_pipeline.backends.detection.mediapipe_ssd import SsdModel, Variant, load_interpreter, weighted_nms

POSE_DETECTOR = Variant("mediapipe/modules/pose_detection/pose_detection.tflite", 224, (8, 16, 32), (2, 2, 6))
POSE_LANDMARKS = "mediapipe/modules/pose_landmark/pose_landmark_full.tflite"

Box = tuple[float, float, float, float]
Point = tuple[float, float]


@dataclass(frozen=True)
class PersonDetection(Detection):
    """A person: `box` is the body (full-body circle's square clipped to the frame), `face_box` the head.

    `keypoints`: mid-hip centre, full-body size point, mid-shoulder centre, upper-body size point, in
    frame pixels (they may lie outside the frame when the body is cut off).
    """

    face_box: Box | None = None
    keypoints: tuple[Point, ...] = ()


def rotated_crop(rgb: np.ndarray, centre: Point, size: float, angle: float, out: int, border: int) -> np.ndarray:
    """Square crop of side `size` px centred at `centre`, rotated by `angle` (radians), resized to `out`."""
    import cv2

    c, s = math.cos(angle), math.sin(angle)
    k = out / size
    # maps frame -> crop: rotate by -angle about the centre, scale, move the centre to out/2
    matrix = np.array([[k * c, k * s, 0.0], [-k * s, k * c, 0.0]])
    matrix[:, 2] = out / 2 - matrix[:, :2] @ np.asarray(centre)
    return cv2.warpAffine(rgb, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=border)


def clip_box(box: Box, width: int, height: int) -> Box:
    return (max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]), min(float(height), box[3]))


class BlazePose:
    """People in a frame from the BlazePose detector; optionally confirmed by the pose landmark model.

    `confirm`: run pose_landmark_full.tflite on MediaPipe's body ROI (centre = hip keypoint, side =
    2 x |kp1 - kp0| x 1.25, rotated so the hip->body vector points up) and keep a person only when
    its pose-presence score is >= `min_presence` (MediaPipe's threshold, 0.5). Costs one more
    network per person.
    `tiles`: on a frame more than 1.2 times wider than high (or higher than wide), also run the
    detector on squares covering the long side, so small, distant people get about twice the
    pixels that letterboxing the whole frame to 224 leaves them; candidates of all views share one
    weighted NMS. Costs 2-3 detector runs a frame instead of one.
    """

    name = "mediapipe-blazepose"

    def __init__(self, min_score: float = 0.5, nms_iou: float = 0.3, threads: int = 1,
                 confirm: bool = False, min_presence: float = 0.5, tiles: bool = False):
        self.model = SsdModel(POSE_DETECTOR, threads)
        self.min_score, self.nms_iou, self.min_presence, self.tiles = min_score, nms_iou, min_presence, tiles
        self.landmarks = load_interpreter(POSE_LANDMARKS, threads) if confirm else None
        if self.landmarks is not None:
            details = self.landmarks.get_output_details()
            self._lm_input = self.landmarks.get_input_details()[0]["index"]
            self._lm_flag = next(d["index"] for d in details if tuple(d["shape"]) == (1, 1))
        self.version = "mediapipe 0.10.21 pose_detection.tflite" + (" + pose_landmark_full.tflite" if confirm else "")

    def detect(self, rgb: np.ndarray) -> list[PersonDetection]:
        """People in one RGB frame (any size), kind="person", boxes and keypoints in its pixels."""
        height, width = rgb.shape[:2]
        views = [(rgb, 0, 0)]
        if self.tiles and max(height, width) > 1.2 * min(height, width):
            side = min(height, width)
            count = math.ceil(max(height, width) / side)
            for k in range(count):  # squares along the long side, first and last at the edges
                start = round(k * (max(height, width) - side) / (count - 1))
                views.append((rgb[:, start:start + side], start, 0) if width > height else
                             (rgb[start:start + side], 0, start))
        parts = [self.model.candidates(view, self.min_score, points=4, shift=(dx, dy)) for view, dx, dy in views]
        boxes = np.concatenate([p[0] for p in parts])
        if len(boxes) == 0:
            return []
        points, scores = np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
        out = []
        for group in weighted_nms(boxes, scores, self.nms_iou):
            weights = scores[group] / scores[group].sum()
            face = (boxes[group] * weights[:, None]).sum(0)
            marks = (points[group] * weights[:, None, None]).sum(0)
            radius = float(np.hypot(*(marks[1] - marks[0])))
            body = clip_box((marks[0, 0] - radius, marks[0, 1] - radius, marks[0, 0] + radius, marks[0, 1] + radius),
                            width, height)
            if body[2] <= body[0] or body[3] <= body[1]:
                continue
            if self.landmarks is not None and self.presence(rgb, marks) < self.min_presence:
                continue
            out.append(PersonDetection(box=tuple(float(v) for v in body), score=float(scores[group].max()),
                                       kind="person", face_box=tuple(float(v) for v in face),
                                       keypoints=tuple((float(x), float(y)) for x, y in marks)))
        return out

    def presence(self, rgb: np.ndarray, marks: np.ndarray) -> float:
        """Pose-presence score of pose_landmark_full on MediaPipe's full-body ROI for these keypoints."""
        import cv2

        hip, scale_point = marks[0], marks[1]
        dx, dy = scale_point - hip
        # AlignmentPointsRects: rotation = target (90 deg) - atan2(-dy, dx); side = 2 * distance
        angle = math.pi / 2 - math.atan2(-dy, dx)
        side = 2 * float(np.hypot(dx, dy)) * 1.25
        if side < 2:
            return 0.0
        crop = rotated_crop(rgb, (float(hip[0]), float(hip[1])), side, angle, 256, cv2.BORDER_CONSTANT)
        self.landmarks.set_tensor(self._lm_input, (crop.astype(np.float32) / 255.0)[None])
        self.landmarks.invoke()
        value = float(self.landmarks.get_tensor(self._lm_flag).ravel()[0])
        return value if 0.0 <= value <= 1.0 else 1.0 / (1.0 + math.exp(-value))


def pair_people(persons: list[PersonDetection], faces: list[Detection], face_scale: float = 2.0
                ) -> list[tuple[PersonDetection | None, Detection | None]]:
    """Each person with the face it shows (or None), then the faces no person accounts for.

    A face belongs to a person when its centre lies inside that person's detector (head) box grown
    `face_scale` times about its centre; each person takes at most one face, the nearest.
    """
    taken: dict[int, Detection] = {}
    loose: list[Detection] = []
    for face in sorted(faces, key=lambda f: -f.score):
        fx, fy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        best, best_d = None, math.inf
        for i, person in enumerate(persons):
            if i in taken:
                continue
            head = person.face_box or person.box
            hx, hy = (head[0] + head[2]) / 2, (head[1] + head[3]) / 2
            half_w, half_h = face_scale * (head[2] - head[0]) / 2, face_scale * (head[3] - head[1]) / 2
            if abs(fx - hx) <= half_w and abs(fy - hy) <= half_h:
                d = math.hypot(fx - hx, fy - hy)
                if d < best_d:
                    best, best_d = i, d
        if best is None:
            loose.append(face)
        else:
            taken[best] = face
    return [(person, taken.get(i)) for i, person in enumerate(persons)] + [(None, face) for face in loose]


def merge_people(persons: list[PersonDetection], faces: list[Detection], face_scale: float = 2.0) -> list[Detection]:
    """Persons plus the faces no person accounts for (a face inside a person's head box counts once)."""
    return [person if person is not None else face for person, face in pair_people(persons, faces, face_scale)]
