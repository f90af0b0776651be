"""Diarization backends scored with pyannote.metrics on ../shared/media/diarization; pyannote from random checkpoints."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from demix_pipeline.backends.diarization.base import Turn, merge_turns, speech_seconds
from demix_pipeline.evaluation import diarization_files, score_diarization
from tests.backends.tiny_models import build_tiny_pyannote


def read16k(path: Path) -> np.ndarray:
    audio, rate = soundfile.read(path, dtype="float32")
    audio = audio if audio.ndim == 1 else audio.mean(1)
    return audio if rate == 16000 else soxr.resample(audio, rate, 16000)


def test_turn_helpers():
    turns = [Turn(0, 1, "A"), Turn(1.1, 2, "A"), Turn(1.5, 3, "B")]
    assert [t.speaker for t in merge_turns(turns, 0.2)] == ["A", "B"]
    assert speech_seconds(turns) == pytest.approx(2.9)


def test_offline_diarization_against_the_rttms(media):
    """Measured: pooled DER 26.4% at collar 0 (AMI excerpts 28.7%), speaker count right on 3 of 3."""
    from demix_pipeline.backends.diarization.offline import OfflineDiarizer, OfflineDiarizerConfig
    from demix_pipeline.config import load_config

    cfg = load_config().voiceover
    diarizer = OfflineDiarizer(OfflineDiarizerConfig(onset=cfg.vad_onset, offset=cfg.vad_offset,
                                                     distance_threshold=cfg.cluster_threshold,
                                                     min_speaker_s=cfg.min_speaker_s))
    files = diarization_files(media)
    assert len(files) == 3
    hypotheses = {uri: diarizer.diarize(read16k(wav)) for uri, (wav, _) in files.items()}
    scores = score_diarization(files, hypotheses, collar=0.0)
    assert scores["der"] <= 0.30, scores
    assert scores["der_ami"] <= 0.32, scores
    assert scores["speaker_count_accuracy"] >= 2 / 3, scores


def test_pyannote_reference_from_random_local_checkpoints(tmp_path, media):
    from demix_pipeline.backends.diarization.pyannote_ref import PyannoteDiarizer

    folder = tmp_path / "models" / "pyannote_diarization"
    build_tiny_pyannote(folder)
    diarizer = PyannoteDiarizer(folder)
    turns = diarizer.diarize(read16k(media / "diarization/pyannote_sample.wav")[: 16000 * 8])
    assert all(0 <= t.start_s < t.end_s <= 8.01 and t.speaker.startswith("S") for t in turns)
    assert diarizer.diarize(np.zeros(100, np.float32)) == []


def test_pyannote_config_must_point_at_local_files(tmp_path):
    from demix_pipeline.backends.diarization.pyannote_ref import resolve_config

    (tmp_path / "config.yaml").write_text("pipeline:\n  name: x\n  params:\n    segmentation: missing.ckpt\n")
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        resolve_config(tmp_path)
    (tmp_path / "config.yaml").write_text("pipeline:\n  name: x\n  params:\n    segmentation: $model/segmentation\n")
    with pytest.raises(ValueError, match="hub"):
        resolve_config(tmp_path)
