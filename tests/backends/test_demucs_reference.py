"""Reference separator A through the real demucs load path, with a tiny random HTDemucs (plumbing, not quality)."""
from __future__ import annotations

import pytest
import torch
import yaml
from demucs.htdemucs import HTDemucs

from demix_pipeline.config import load_config
from demix_pipeline.media.audio import ClipAudio
from demix_pipeline.models import ModelNotFoundError
from demix_pipeline.stages.base import RunContext
from demix_pipeline.stages.demix import DemixStage

TINY = dict(sources=["music", "effects", "dialog"], audio_channels=2, samplerate=44100, segment=4, channels=16,
            growth=2, depth=4, t_layers=1, t_heads=1, t_hidden_scale=1.0, nfft=4096)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A model store holding a demucs repo folder: one `.th` package and a bag `.yaml`, as demucs ships them."""
    root = tmp_path_factory.mktemp("store")
    repo = root / "htdemucs_dnr"
    repo.mkdir()
    torch.manual_seed(0)
    model = HTDemucs(**TINY)
    torch.save({"klass": HTDemucs, "args": (), "kwargs": TINY, "state": model.state_dict(), "training_args": {}},
               repo / "tinydnr.th")
    (repo / "htdemucs_dnr.yaml").write_text(yaml.safe_dump({"models": ["tinydnr"], "segment": 4}))
    return root


def test_reference_separator_a_runs_inside_the_stage(store, media, tmp_path):
    cfg = load_config(overrides=["demix.separator_a=reference", f"run.models_dir={store}"])
    stage = DemixStage(cfg, RunContext(out=tmp_path, models_dir=cfg.run.models_dir))
    stage.setup()
    assert stage.sep_a.stems == ("music", "effects", "dialog") and stage.sep_a.rate == 44100
    audio = ClipAudio.load(media / "talking_head_single" / "videoretalking_face_2.mp4")
    measured = stage.measure_audio(audio)
    for key in ("a_speech_dbfs", "a_effects_raw_dbfs", "a_music_raw_dbfs", "b_speech_dbfs", "b_others_dbfs"):
        assert measured[f"demix.{key}"] > -120.0  # real numbers from both paths (a talking head: gated music is silence)
    assert measured["demix.l1_speech"] >= 0 and measured["demix.rhythm"] is None
    assert "reference-A: demucs model htdemucs_dnr" in stage.backends()["demix"]


def test_missing_reference_model_is_a_clear_error(tmp_path):
    cfg = load_config(overrides=["demix.separator_a=reference", f"run.models_dir={tmp_path}"])
    stage = DemixStage(cfg, RunContext(out=tmp_path, models_dir=cfg.run.models_dir))
    with pytest.raises(ModelNotFoundError, match="model 'htdemucs_dnr' is not in the model store"):
        stage.setup()
