"""Diarization backends scored with pyannote.metrics on ../shared/media/diarization; pyannote from random checkpoints."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from demix_pipeline.backends.diarization.base import Turn, merge_turns, speech_seconds
from demix_pipeline.evaluation import diarization_files, score_diarization


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


def build_tiny_pyannote(folder: Path) -> None:
    """A pyannote SpeakerDiarization folder: random PyanNet + XVector checkpoints, a random PLDA, config.yaml."""
    from demix_pipeline.backends.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import lightning
    import torch
    import yaml
    from pyannote.audio import __version__
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import XVectorMFCC
    from pyannote.audio.models.segmentation import PyanNet

    def save(model, path):
        checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                      "pytorch-lightning_version": lightning.__version__, "epoch": 0, "global_step": 0}
        model.on_save_checkpoint(checkpoint)
        torch.save(checkpoint, path)

    folder.mkdir(parents=True)
    torch.manual_seed(0)
    segmentation = PyanNet(sincnet={"stride": 10}, lstm={"hidden_size": 16, "num_layers": 1},
                           linear={"hidden_size": 16, "num_layers": 1})
    segmentation.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION, resolution=Resolution.FRAME, duration=5.0,
        classes=["speaker#1", "speaker#2", "speaker#3"], powerset_max_classes=2, permutation_invariant=True)
    segmentation.build()
    save(segmentation, folder / "segmentation.ckpt")
    embedding = XVectorMFCC(dimension=32)
    embedding.specifications = Specifications(problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=3.0)
    embedding.build()
    save(embedding, folder / "embedding.ckpt")
    rng = np.random.default_rng(0)
    (folder / "plda").mkdir()
    np.savez(folder / "plda" / "xvec_transform.npz", mean1=rng.normal(size=32), mean2=rng.normal(size=16),
             lda=rng.normal(size=(32, 16)))
    np.savez(folder / "plda" / "plda.npz", mu=rng.normal(size=16), tr=rng.normal(size=(16, 16)) + 4 * np.eye(16),
             psi=rng.uniform(0.5, 2.0, size=16))
    (folder / "config.yaml").write_text(yaml.safe_dump({
        "version": __version__,
        "pipeline": {"name": "pyannote.audio.pipelines.SpeakerDiarization",
                     "params": {"segmentation": "segmentation.ckpt", "embedding": "embedding.ckpt", "plda": "plda",
                                "clustering": "AgglomerativeClustering", "embedding_batch_size": 8,
                                "segmentation_batch_size": 8}},
        "params": {"segmentation": {"min_duration_off": 0.0},
                   "clustering": {"method": "centroid", "min_cluster_size": 2, "threshold": 0.7}},
    }))


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
