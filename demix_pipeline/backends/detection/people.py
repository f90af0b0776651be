"""The offline people detector: faces a face model confirms, plus bodies a person mask confirms.

Why (bench/person_detectors.py, ../shared/notes/MEASUREMENTS.md): BlazeFace alone counts faces
only, and finds "faces" in abstract shapes, textures and animals. Here a BlazeFace face counts
only when MediaPipe's face mesh sees a face in its crop (face presence, MediaPipe's default 0.5),
and the BlazePose detector adds people whose face BlazeFace missed, each kept only when the
selfie-segmentation person mask covers its head (0.5). All thresholds are MediaPipe's published
defaults; nothing was fitted. Each returned Detection is one person: `box` the head (the confirmed
face with its landmarks, else the pose detector's head box), `body` the body box when the pose
detector found one.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from demix_pipeline.backends.detection.base import Detection
from demix_pipeline.backends.detection.blazeface import BlazeFace
from demix_pipeline.backends.detection.blazepose import BlazePose, pair_people
from demix_pipeline.backends.detection.face_mesh_check import FaceMeshCheck
from demix_pipeline.backends.detection.selfie_segmentation import SelfieSegmenter
from demix_pipeline.config import PeopleConfig


class PeopleDetector:
    name = "mediapipe-people"

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
        bodies = self.pose.detect(rgb) if self.pose is not None else []
        if bodies:
            mask = self.segmenter.mask(rgb)
            bodies = [b for b in bodies if SelfieSegmenter.fraction(mask, b.face_box or b.box) >= self.cfg.body_min_mask]
        out = []
        for body, face in pair_people(bodies, faces):
            if face is not None:
                out.append(replace(face, body=body.box if body is not None else None,
                                   score=max(face.score, body.score) if body is not None else face.score))
            else:
                out.append(Detection(box=body.face_box or body.box, score=body.score, kind="person", body=body.box))
        return out


def describe(cfg: PeopleConfig, face_variant: str, face_min_score: float) -> str:
    """The detector and its thresholds, for the manifest's backend strings."""
    parts = [f"BlazeFace {face_variant} >= {face_min_score}"]
    if cfg.face_mesh_check:
        parts.append(f"confirmed by face mesh presence >= {cfg.min_face_presence}")
    if cfg.bodies:
        parts.append(f"+ BlazePose people >= {cfg.pose_min_score} with selfie-segmentation head mask >= {cfg.body_min_mask}")
    return "mediapipe 0.10.21 " + " ".join(parts)
