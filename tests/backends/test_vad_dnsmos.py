"""Offline speech backends on real recordings: silero VAD (ONNX) against an RTTM, DNSMOS ranges."""
from __future__ import annotations

import numpy as np

from demix_pipeline.backends.quality.dnsmos import Dnsmos
from demix_pipeline.backends.vad.silero_onnx import SileroVAD
from demix_pipeline.media.audio import ClipAudio


def rttm_mask(path, seconds: float, step: float = 0.01) -> np.ndarray:
    mask = np.zeros(int(seconds / step), bool)
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "SPEAKER":
            start, duration = float(parts[3]), float(parts[4])
            mask[int(start / step):int((start + duration) / step)] = True
    return mask


def test_vad_agrees_with_the_pyannote_rttm(media):
    audio = ClipAudio.load(media / "diarization" / "pyannote_sample.wav").at(16000)
    truth = rttm_mask(media / "diarization" / "pyannote_sample.rttm", 30.0)
    found = np.zeros_like(truth)
    for seg in SileroVAD().segments(audio):
        found[int(seg.start_s / 0.01):int(seg.end_s / 0.01)] = True
    accuracy = float(np.mean(found == truth))
    assert accuracy >= 0.9, accuracy
    assert not found[: int(6.5 / 0.01)].any()  # speech starts at 6.7 s


def test_dnsmos_ranks_clean_speech_above_noise(media):
    dnsmos = Dnsmos()
    speech = ClipAudio.load(media / "audio_only" / "videoretalking_speech_1.wav").at(16000)
    clean = dnsmos.score(speech)
    noise = dnsmos.score(np.random.default_rng(0).normal(0, 0.1, 16000 * 10).astype(np.float32))
    assert clean.ovrl > 3.0 and clean.sig > 3.0
    assert noise.ovrl < 1.6 and clean.ovrl - noise.ovrl > 1.5
