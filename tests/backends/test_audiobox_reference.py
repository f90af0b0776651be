"""Reference audio quality: audiobox-aesthetics through AesPredictor(checkpoint_pth=...) from the model store.

The checkpoint is random (AesMultiOutput always builds the full WavLM, ~95M parameters, saved in
fp16): this proves loading, the torchaudio compat path and batching, not quality.
"""
from __future__ import annotations

import pytest
import torch

from demix_pipeline.backends.torch_compat import ensure_torchaudio_importable
from demix_pipeline.config import load_config
from demix_pipeline.models import ModelNotFoundError
from demix_pipeline.stages.audio_quality import AudioQualityStage
from demix_pipeline.stages.base import RunContext
from tests.conftest import ffmpeg

CFG = dict(proj_num_layer=1, proj_ln=False, proj_act_fn="gelu", proj_dropout=0.0, nth_layer=13,
           use_weighted_layer_sum=True, precision="32", normalize_embed=True, output_dim=1)
TRANSFORM = {axis: {"mean": 5.0, "std": 1.5} for axis in ("CE", "CU", "PC", "PQ")}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    ensure_torchaudio_importable()
    from audiobox_aesthetics.model.aes import AesMultiOutput

    root = tmp_path_factory.mktemp("store")
    (root / "audiobox-aesthetics").mkdir()
    torch.manual_seed(0)
    model = AesMultiOutput(**CFG, target_transform=TRANSFORM)
    state = {f"model.{k}": v.half() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "model_cfg": CFG, "target_transform": TRANSFORM},
               root / "audiobox-aesthetics" / "checkpoint.pt")
    return root


def test_reference_backend_scores_clips_in_a_batch(store, media, tmp_path):
    for i, name in enumerate(("talking_head_single/videoretalking_face_2.mp4", "sound_effects/vas_dog_video_02677.mp4")):
        (tmp_path / "clips").mkdir(exist_ok=True)
        ffmpeg("-i", str(media / name), "-t", "4", "-c", "copy", str(tmp_path / "clips" / f"{i}.mp4"))
    cfg = load_config(overrides=["audio_quality.backend=reference", f"run.models_dir={store}",
                                 "audio_quality.min_aes_pq=100"])
    stage = AudioQualityStage(cfg, RunContext(out=tmp_path, models_dir=cfg.run.models_dir))
    stage.setup()
    rows = [{"clip_id": f"c{i}", "clip_uri": f"clips/{i}.mp4", "error": None, "keep": True, "drop_reason": None}
            for i in range(2)]
    measured = stage.measure(rows)
    assert len(measured) == 2
    for row in measured:
        assert all(isinstance(row[f"audio_quality.aes_{a}"], float) for a in ("ce", "cu", "pc", "pq"))
        assert row["audio_quality.rms_dbfs"] > -60 and "audio_quality.dnsmos_sig" not in row
        assert stage.decide_one(dict(row))["drop_reason"] == "low_aesthetics"  # PQ floor 100: every clip fails
    assert "reference: audiobox-aesthetics" in stage.backends()["audio_quality"]


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    cfg = load_config(overrides=["audio_quality.backend=reference", f"run.models_dir={tmp_path}"])
    with pytest.raises(ModelNotFoundError, match="model 'audiobox-aesthetics' is not in the model store"):
        AudioQualityStage(cfg, RunContext(out=tmp_path, models_dir=cfg.run.models_dir)).setup()
