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

from demix_pipeline.backends import wheel_models
from demix_pipeline.backends.detection.base import Detection, iou, letterbox
from demix_pipeline.backends.detection.blazeface import Variant, _native_stderr_muted, anchors

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


def load_interpreter(member: str, threads: int = 1):
    """A LiteRT interpreter for a wheel model, warmed up once (first invoke allocates)."""
    from ai_edge_litert.interpreter import Interpreter

    path = wheel_models.path("mediapipe", member)
    with _native_stderr_muted():  # LiteRT prints an INFO line about its XNNPACK delegate on every load
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        inputs = interpreter.get_input_details()
        interpreter.set_tensor(inputs[0]["index"], np.zeros(inputs[0]["shape"], np.float32))
        interpreter.invoke()
    return interpreter


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, min_iou: float) -> list[np.ndarray]:
    """Groups of overlapping candidates, best first (MediaPipe's WEIGHTED suppression averages each group)."""
    order = list(np.argsort(-scores))
    groups = []
    while order:
        best = order[0]
        members = [i for i in order if iou(tuple(boxes[best]), tuple(boxes[i])) >= min_iou]
        groups.append(np.array(members))
        order = [i for i in order if i not in members]
    return groups


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
        self.interpreter = load_interpreter(POSE_DETECTOR.file, threads)
        self._input = self.interpreter.get_input_details()[0]["index"]
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self._boxes, self._scores = outputs[0]["index"], outputs[1]["index"]
        self.anchors = anchors(POSE_DETECTOR)
        assert len(self.anchors) == outputs[0]["shape"][1], "anchor layout does not match the model"
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
        parts = [self._candidates(view, dx, dy) for view, dx, dy in views]
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

    def _candidates(self, rgb: np.ndarray, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Head boxes (n, 4), keypoints (n, 4, 2) in frame pixels (view moved by dx, dy) and scores (n,)."""
        size = POSE_DETECTOR.size
        image, scale, pad_x, pad_y = letterbox(rgb, size)
        self.interpreter.set_tensor(self._input, (image.astype(np.float32) / 127.5 - 1.0)[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._boxes)[0]
        logits = np.clip(self.interpreter.get_tensor(self._scores)[0, :, 0].astype(np.float64), -100, 100)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = np.flatnonzero(scores >= self.min_score)
        raw, scores, centre = raw[keep] / size, scores[keep], self.anchors[keep]
        cx, cy = raw[:, 0] + centre[:, 0], raw[:, 1] + centre[:, 1]
        boxes = np.stack([cx - raw[:, 2] / 2, cy - raw[:, 3] / 2, cx + raw[:, 2] / 2, cy + raw[:, 3] / 2], 1)
        points = raw[:, 4:12].reshape(-1, 4, 2) + centre[:, None, :]
        shift = np.array([dx, dy])

        def to_frame(xy: np.ndarray) -> np.ndarray:  # letterboxed [0, 1] -> frame pixels
            return (xy * size - np.array([pad_x, pad_y])) / scale + shift

        return to_frame(boxes.reshape(-1, 2, 2)).reshape(-1, 4), to_frame(points), scores

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
