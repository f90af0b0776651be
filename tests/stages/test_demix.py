"""Stage demix: the spec's comparability rules, stems on disk, decide without separators."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile

from demix_pipeline.config import load_config
from demix_pipeline.manifest import read_stage
from demix_pipeline.runner import apply_decide, run_stage
from demix_pipeline.stages.demix import DemixStage, comparable_pairs, normalised_l1
from tests.pipeline_helpers import CHEAP_SHOTS, run_pipeline

FAST = ["shots.encode.preset=ultrafast", CHEAP_SHOTS, "demix.resources.shard_size=2"]


def row(music_dbfs, effects_dbfs, l1_speech=0.1, l1_oe=0.9, l1_om=0.9, gated_music=None, gated_effects=None):
    return {"error": None, "keep": True, "drop_reason": None, "demix.a_music_raw_dbfs": music_dbfs,
            "demix.a_effects_raw_dbfs": effects_dbfs,
            "demix.a_music_dbfs": music_dbfs if gated_music is None else gated_music,
            "demix.a_effects_dbfs": effects_dbfs if gated_effects is None else gated_effects, "demix.l1_speech": l1_speech,
            "demix.l1_others_effects": l1_oe, "demix.l1_others_music": l1_om}


def test_each_branch_of_the_rule():
    stage = DemixStage(load_config(), None)
    # music and effects present: only speech is compared, so high others-L1 does not matter
    assert stage.decide_one(row(-20, -20))["demix.pairs"] == "speech"
    assert stage.decide_one(row(-20, -20))["keep"]
    # music silent: B.others vs A.effects, which disagree here
    decided = stage.decide_one(row(-60, -20))
    assert decided["demix.pairs"] == "speech,others_effects" and decided["drop_reason"] == "separation_disagrees"
    assert stage.decide_one(row(-60, -20, l1_oe=0.2))["keep"]
    # effects silent: B.others vs A.music
    decided = stage.decide_one(row(-20, -60, l1_om=0.2))
    assert decided["demix.pairs"] == "speech,others_music" and decided["keep"] and decided["demix.max_l1"] == 0.2
    # speech disagreement always drops
    assert stage.decide_one(row(-20, -20, l1_speech=0.8))["drop_reason"] == "separation_disagrees"
    assert comparable_pairs(-45.1, -44.9, -45.0) == ["speech", "others_effects"]


def test_presence_follows_the_gated_levels_and_pairs_the_raw_ones(tmp_path):
    stage = DemixStage(load_config(), None)
    # A left residue in both stems (raw -30 dB) but the tagger heard neither: no subset, only the speech pair
    decided = stage.decide_one(row(-30, -30, gated_music=-120, gated_effects=-120))
    assert decided["demix.pairs"] == "speech" and decided["keep"]
    assert decided["demix.music_present"] is False and decided["demix.effects_present"] is False
    decided = stage.decide_one(row(-30, -60, l1_om=0.2, gated_music=-35, gated_effects=-120))
    assert decided["demix.music_present"] is True and decided["demix.effects_present"] is False
    raw = DemixStage(load_config(overrides=["demix.stem_levels=raw"]), None)
    assert raw.decide_one(row(-30, -30, gated_music=-120, gated_effects=-120))["demix.music_present"] is True


def test_gate_mask_follows_the_event_frames():
    from demix_pipeline.backends.audio_events.base import pack_active, sample_mask, unpack_active

    frames = unpack_active([4, 4, 0, 0, 8, 12], 0.5, 0.25, 3.0)  # music, music, -, -, other, music+other
    assert pack_active(frames) == [4, 4, 0, 0, 8, 12]
    music = sample_mask(frames, ("music", "singing"), 3000, 1000, 0.0)
    other = sample_mask(frames, ("other",), 3000, 1000, 0.0)
    assert music[:950].min() == 1.0 and music[1050:2450].max() == 0.0 and music[2550:].min() == 1.0
    assert other[:1950].max() == 0.0 and other[2050:].min() == 1.0
    ramped = sample_mask(frames, ("music",), 3000, 1000, 0.1)
    assert 0.0 < ramped[1000] < 1.0  # a fade, not a click


def test_l1_is_scaled_by_the_mixture_level():
    rng = np.random.default_rng(0)
    a, b, mix = rng.normal(size=(3, 48000)).astype(np.float32)
    loud = normalised_l1(a, b, mix, 1e-4)
    assert normalised_l1(a * 0.01, b * 0.01, mix * 0.01, 1e-4) == pytest.approx(loud, rel=1e-5)
    assert normalised_l1(a, a, mix, 1e-4) == 0.0
    silent = np.zeros(48000, np.float32)
    assert normalised_l1(silent, silent, silent, 1e-4) == 0.0


@pytest.fixture(scope="module")
def demix_run(media, tmp_path_factory, ray_session):
    folder = tmp_path_factory.mktemp("demix_inputs")
    for name in ("talking_head_single/videoretalking_face_2.mp4", "music/vggsound_playing_harp_6zlMP_kQ_-w_30000_40000.mp4",
                 "sound_effects/vas_dog_video_02677.mp4"):
        shutil.copy(media / name, folder / name.split("/")[1])
    out = tmp_path_factory.mktemp("demix_run")
    cfg = load_config(overrides=["run.progress=false", *FAST])
    run_pipeline([folder], out, FAST)
    run_stage("audio_quality", cfg, out)
    run_stage("demix", cfg, out)
    return out, read_stage(out, "demix").to_pylist()


def test_stems_are_written_for_measured_clips(demix_run):
    out, rows = demix_run
    measured = [r for r in rows if r["demix.l1_speech"] is not None]
    assert len(measured) >= 3
    for r in measured:
        duration = r["shots.duration_s"]
        for stem in ("speech", "effects", "music"):
            info = soundfile.info(out / r[f"demix.{stem}_uri"])
            assert info.format == "FLAC" and info.samplerate == 48000 and info.channels == 1
            assert info.duration == pytest.approx(duration, abs=0.05)
        assert r["demix.pairs"].startswith("speech") and r["keep"]


def test_decide_demix_without_separators(demix_run, tmp_path, monkeypatch):
    out = tmp_path / "copy"
    shutil.copytree(demix_run[0], out)

    def forbidden(*_args, **_kwargs):
        raise AssertionError("decide must not run a separator")

    monkeypatch.setattr(DemixStage, "setup", forbidden)
    monkeypatch.setattr(DemixStage, "measure", forbidden)
    apply_decide("demix", load_config(overrides=[*FAST, "demix.max_l1=0.0001"]), out)
    rows = [r for r in read_stage(out, "demix").to_pylist() if r["demix.l1_speech"] is not None]
    assert rows and all(r["drop_reason"] == "separation_disagrees" for r in rows if r["demix.max_l1"] > 0.0001)
