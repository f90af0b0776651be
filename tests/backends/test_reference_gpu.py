"""The reference backends' GPU paths (YOLO, pyannote, ONNX active speaker) with tiny random models.

Runs only where torch sees a CUDA device (a GPU node, or the lent GPU machine during development);
CI machines have none, so there these tests are skipped. Plumbing only: models are random.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_yolo_runs_on_the_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "cfg"))
    from demix_pipeline.backends.detection.yolo_ref import YoloPersons
    from tests.backends.tiny_models import build_tiny_yolo

    build_tiny_yolo(tmp_path / "yolo11n" / "model.pt")
    detector = YoloPersons(tmp_path / "yolo11n" / "model.pt", confidence=0.01, device="cuda")
    found = detector.detect(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8))
    assert next(detector.model.model.parameters()).device.type == "cuda"
    assert all(d.kind == "person" for d in found)


def test_pyannote_runs_on_the_gpu(tmp_path):
    from demix_pipeline.backends.diarization.pyannote_ref import PyannoteDiarizer
    from tests.backends.tiny_models import build_tiny_pyannote

    build_tiny_pyannote(tmp_path / "pyannote_diarization")
    diarizer = PyannoteDiarizer(tmp_path / "pyannote_diarization", device="cuda")
    assert diarizer.pipeline.device.type == "cuda"
    audio = np.random.default_rng(0).normal(0, 0.1, 16000 * 8).astype(np.float32)
    assert all(0 <= t.start_s < t.end_s <= 8.01 for t in diarizer.diarize(audio))


def test_onnx_active_speaker_asks_for_cuda(tmp_path):
    import onnxruntime

    from demix_pipeline.backends.asd.base import CROP, TrackCrops
    from demix_pipeline.backends.asd.onnx_contract import OnnxASD
    from tests.backends.tiny_models import contract_model

    contract_model(tmp_path / "model.onnx")
    asd = OnnxASD(tmp_path / "model.onnx", device="cuda")
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert asd.session.get_providers()[0] == "CUDAExecutionProvider"
    crops = [np.full((CROP, CROP), 200, np.uint8)] * 30
    scores = asd.score(TrackCrops(0, [i / 25 for i in range(30)], crops, [None] * 30), np.zeros(16000 * 2, np.float32))
    assert scores.shape == (30,) and (scores > 0.5).all()
