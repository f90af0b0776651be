"""The offline people detector: faces a face model confirms, plus bodies a person mask confirms.

Why (bench/person_detectors.py, ../shared/notes/MEASUREMENTS.md): BlazeFace alone counts faces
only, and finds "faces" in abstract shapes, textures and animals. Here a BlazeFace face counts
only when MediaPipe's face mesh sees a face in its crop (face presence, MediaPipe's default 0.5),
and the BlazePose detector adds people whose face BlazeFace missed, each kept only when the
selfie-segmentation person mask covers its head (0.5). All thresholds are MediaPipe's published
defaults; nothing was fitted. Each returned Detection is one person: `box` the head (the confirmed
face with its landmarks, else the pose detector's head box), `body` the body box when the pose
detector found one. `YoloxPeopleDetector` (`person_detector: yolox`) takes its bodies from
YOLOX-Nano instead (backends/detection/yolox.py) and the same confirmed faces as heads.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from demix_pipeline.backends.detection.base import Detection
from demix_pipeline.backends.detection.blazeface import BlazeFace
from demix_pipeline.backends.detection.blazepose import BlazePose, PersonDetection, pair_people
from demix_pipeline.backends.detection.face_mesh_check import FaceMeshCheck
from demix_pipeline.backends.detection.selfie_segmentation import SelfieSegmenter
from demix_pipeline.config import PeopleConfig


class PeopleDetector:
    name = "mediapipe-people"
    faces_alone_count = True  # a confirmed face no body accounts for is a person too

    def __init__(self, cfg: PeopleConfig, face_variant: str = "full_range", face_min_score: float = 0.4):
        self.cfg = cfg
        self.faces = BlazeFace(face_variant, min_score=face_min_score)
        self.mesh = FaceMeshCheck(cfg.min_face_presence) if cfg.face_mesh_check else None
        self.pose = BlazePose(min_score=cfg.pose_min_score) if cfg.bodies else None
        self.segmenter = SelfieSegmenter() if cfg.bodies else None
        self.version = describe(cfg, face_variant, face_min_score)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """People in one RGB frame, boxes in its pixels."""
        faces = self.faces.detect(rgb)
        if self.mesh is not None:
            faces = self.mesh.confirm(rgb, faces)
        out = []
        for body, face in pair_people(self.find_bodies(rgb), faces):
            if body is None and not self.faces_alone_count:
                continue
            if face is not None:
                out.append(replace(face, body=body.box if body is not None else None,
                                   score=max(face.score, body.score) if body is not None else face.score))
            else:
                out.append(Detection(box=body.face_box or body.box, score=body.score, kind="person", body=body.box))
        return out

    def find_bodies(self, rgb: np.ndarray) -> list[PersonDetection]:
        """BlazePose people whose head box the selfie-segmentation person mask covers (none when cfg.bodies is off)."""
        bodies = self.pose.detect(rgb) if self.pose is not None else []
        if bodies:
            mask = self.segmenter.mask(rgb)
            bodies = [b for b in bodies if SelfieSegmenter.fraction(mask, b.face_box or b.box) >= self.cfg.body_min_mask]
        return bodies


def describe(cfg: PeopleConfig, face_variant: str, face_min_score: float) -> str:
    """The detector and its thresholds, for the manifest's backend strings."""
    parts = [f"BlazeFace {face_variant} >= {face_min_score}"]
    if cfg.face_mesh_check:
        parts.append(f"confirmed by face mesh presence >= {cfg.min_face_presence}")
    if cfg.bodies:
        parts.append(f"+ BlazePose people >= {cfg.pose_min_score} with selfie-segmentation head mask >= {cfg.body_min_mask}")
    return "mediapipe 0.10.21 " + " ".join(parts)


# YOLOX bodies ------------------------------------------------------------------------------------
# Head box of a body without a face, from fixed human proportions (not fitted): the head is about
# 1/2.5 of the shoulder width (a body box's width) and, in a head-and-shoulders shot, about 1/3 of
# the box's height; an adult standing is about 7.5 heads tall, where the width bound applies.
HEAD_OF_WIDTH = 0.4
HEAD_OF_HEIGHT = 0.35


def head_from_body(body: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A square head box centred at the top of a body box: side min(0.4 x width, 0.35 x height)."""
    x0, y0, x1, y1 = body
    side = min(HEAD_OF_WIDTH * (x1 - x0), HEAD_OF_HEIGHT * (y1 - y0))
    centre = (x0 + x1) / 2
    return (centre - side / 2, y0, centre + side / 2, y0 + side)


class YoloxPeopleDetector(PeopleDetector):
    """People whose bodies come from YOLOX-Nano (`person_detector: yolox`), one Detection per person.

    YOLOX gives body boxes only, and it finds people from behind, far away and without a visible
    face; the tracks, the active-speaker crops and the captions need a head box. So each body is
    given the BlazeFace face (confirmed by the face mesh, as in PeopleDetector) whose centre lies
    in the body's upper part, and when none does, a head box derived from the top of the body box
    (`head_from_body`: proportions, not a detection; no mouth landmark, so the offline active-speaker
    step sees it as a face without lips). The upper part is the derived head box grown twice about
    its centre, the same pairing rule (`pair_people`) as PeopleDetector's BlazePose heads. People
    are YOLOX's bodies only: a face no body accounts for is not added (it was on the tune files,
    bench/person_detectors.py: 24 of 27 shots right with such faces added, 25 of 27 without).
    """

    name = "yolox-people"
    faces_alone_count = False

    def __init__(self, model_file, cfg: PeopleConfig, face_variant: str = "full_range", face_min_score: float = 0.4,
                 min_score: float = 0.3, threads: int = 1, device: str = "cpu"):
        from demix_pipeline.backends.detection.yolox import YoloxPersons

        super().__init__(cfg.model_copy(update={"bodies": False}), face_variant, face_min_score)
        self.yolox = YoloxPersons(model_file, min_score=min_score, threads=threads, device=device)
        self.version = describe_yolox(cfg, face_variant, face_min_score, min_score)

    def find_bodies(self, rgb: np.ndarray) -> list[PersonDetection]:
        return [PersonDetection(box=b.box, score=b.score, kind="person", face_box=head_from_body(b.box))
                for b in self.yolox.detect(rgb)]


def describe_yolox(cfg: PeopleConfig, face_variant: str, face_min_score: float, min_score: float) -> str:
    """The YOLOX people detector and its thresholds, for the manifest's backend strings."""
    from demix_pipeline.backends.detection.yolox import NMS_IOU

    faces = f"BlazeFace {face_variant} >= {face_min_score}"
    if cfg.face_mesh_check:
        faces += f" confirmed by face mesh presence >= {cfg.min_face_presence}"
    return (f"YOLOX-Nano persons >= {min_score} (NMS IoU {NMS_IOU}); heads: mediapipe 0.10.21 {faces} in the "
            f"body's upper part, else {HEAD_OF_WIDTH} x width / {HEAD_OF_HEIGHT} x height of the body's top")
