"""Active speaker: the ONNX contract with a model made here, and the offline lip-motion scorer."""
from __future__ import annotations

import numpy as np
import pytest

from demix_pipeline.backends.asd.base import CROP, TrackCrops, face_crop
from demix_pipeline.backends.asd.lip_motion import LipMotionASD
from tests.backends.tiny_models import contract_model


def track(frames: int, brightness) -> TrackCrops:
    crops = [np.full((CROP, CROP), brightness(i), np.uint8) for i in range(frames)]
    return TrackCrops(0, [i / 25 for i in range(frames)], crops, [None] * frames)


def test_onnx_contract_model_scores_every_frame_in_chunks(tmp_path):
    from demix_pipeline.backends.asd.onnx_contract import OnnxASD

    contract_model(tmp_path / "model.onnx")
    asd = OnnxASD(tmp_path / "model.onnx", chunk_frames=40)
    bright_then_dark = track(100, lambda i: 250 if i < 50 else 5)
    scores = asd.score(bright_then_dark, np.random.default_rng(0).normal(0, 0.1, 16000 * 4).astype(np.float32))
    assert scores.shape == (100,)
    assert (scores[:50] > 0.5).all() and (scores[50:] < 0.5).all()


def test_onnx_model_that_breaks_the_contract_is_refused(tmp_path):
    from demix_pipeline.backends.asd.onnx_contract import OnnxASD

    contract_model(tmp_path / "model.onnx", input_names=("frames", "mfcc"))
    with pytest.raises(ValueError, match="contract"):
        OnnxASD(tmp_path / "model.onnx")


def test_lip_motion_follows_the_speech_envelope():
    """A mouth that opens with the syllables scores high; a still face and a face moving off-beat do not."""
    rng = np.random.default_rng(0)
    frames = 75
    envelope = np.where(np.sin(np.arange(frames) * 2 * np.pi * 4 / 25) > 0, -20.0, -45.0)
    speech = np.ones(frames, bool)

    def face(talks):
        crops = []
        for i in range(frames):
            crop = np.full((CROP, CROP), 120, np.uint8)
            opening = int(rng.integers(2, 16)) if talks(i) else 4  # a talking mouth changes shape every frame
            crop[72:72 + opening, 40:72] = 20
            crops.append(crop)
        return TrackCrops(0, [i / 25 for i in range(frames)], crops, [(0.5, 0.7)] * frames)

    asd = LipMotionASD()
    talking = asd.score(face(lambda i: envelope[i] > -30), envelope, speech)
    still = asd.score(face(lambda i: False), envelope, speech)
    assert talking.mean() > 0.5 > still.mean()
    assert asd.score(face(lambda i: envelope[i] > -30), envelope, np.zeros(frames, bool)).max() == 0


def test_face_crop_pads_at_the_border():
    luma = np.arange(100 * 100, dtype=np.uint8).reshape(100, 100)
    crop = face_crop(luma, (-10.0, -10.0, 30.0, 30.0))
    assert crop.shape == (CROP, CROP)
