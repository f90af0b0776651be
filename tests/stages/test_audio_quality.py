"""Stage audio_quality end to end: clean music and effects pass, silent and broken audio fails."""
from __future__ import annotations

import shutil

import pytest

from demix_pipeline.config import load_config
from demix_pipeline.manifest import read_stage
from demix_pipeline.runner import apply_decide, run_stage
from demix_pipeline.stages.audio_quality import AudioQualityStage
from tests.conftest import ffmpeg
from tests.pipeline_helpers import CHEAP_SHOTS, run_pipeline

CLEAN = ["music/difffoley_drum.mp4", "music/vggsound_playing_harp_6zlMP_kQ_-w_30000_40000.mp4",
         "music/vggsound_playing_bass_drum_-Qowmc0P9ic_34000_44000.mp4", "music/liveportrait_d10_face_with_music.mp4",
         "sound_effects/vas_dog_video_02677.mp4", "sound_effects/vas_fireworks_video_02997.mp4",
         "sound_effects/vas_hammer_video_00323.mp4", "sound_effects/difffoley_car.mp4",
         "sound_effects/vggsound_waterfall_burbling_7fRaV39Y-2o_50000_60000.mp4",
         "sound_effects/activitynet_v_GGSY1Qvo990_weightlifting.mp4",
         "talking_head_single/liveportrait_d11_child_speaking.mp4", "talking_head_single/videoretalking_face_3.mp4",
         "multi_person_dialogue/datajuicer_video1_cartoon_dialogue.mp4"]
FAST = ["shots.encode.preset=ultrafast", CHEAP_SHOTS, "shots.resources.shard_size=2", "audio_quality.resources.shard_size=8"]


@pytest.fixture(scope="module")
def quality_run(media, tmp_path_factory, ray_session):
    folder = tmp_path_factory.mktemp("aq_inputs")
    for name in CLEAN:
        shutil.copy(media / name, folder / name.split("/")[1])
    shutil.copy(media / "scenery_no_people" / "datajuicer_video11_great_wall_silent_track.mp4", folder)
    face = media / "talking_head_single" / "videoretalking_face_2.mp4"
    ffmpeg("-i", str(face), "-c:v", "copy", "-af", "volume=30", "-c:a", "aac", str(folder / "broken_clipped.mp4"))
    ffmpeg("-i", str(face), "-c:v", "copy", "-af", "lowpass=f=700,lowpass=f=700,lowpass=f=700,lowpass=f=700",
           "-c:a", "aac", str(folder / "broken_muffled.mp4"))
    out = tmp_path_factory.mktemp("aq_run")
    cfg = load_config(overrides=["run.progress=false", *FAST])
    run_pipeline([folder], out, FAST)
    run_stage("audio_quality", cfg, out)
    sources = {r["source_id"]: r["source_uri"].rsplit("/", 1)[1] for r in read_stage(out, "ingest").to_pylist()}
    rows = read_stage(out, "audio_quality").to_pylist()
    return out, [dict(r, name=sources[r["source_id"]]) for r in rows]


def measured(rows, name):
    return [r for r in rows if r["name"] == name and r["audio_quality.rms_dbfs"] is not None]


def test_clean_music_effects_and_speech_pass(quality_run):
    _, rows = quality_run
    for name in CLEAN:
        clips = measured(rows, name.split("/")[1])
        assert clips, name
        for clip in clips:
            assert clip["keep"], (name, clip["drop_reason"], {k: v for k, v in clip.items() if k.startswith("audio_quality.")})


def test_silent_and_broken_audio_fail(quality_run):
    _, rows = quality_run
    assert {c["drop_reason"] for c in measured(rows, "datajuicer_video11_great_wall_silent_track.mp4")} == {"silent"}
    assert {c["drop_reason"] for c in measured(rows, "broken_clipped.mp4")} == {"clipped"}
    assert {c["drop_reason"] for c in measured(rows, "broken_muffled.mp4")} == {"low_bandwidth"}


def test_dnsmos_only_where_there_is_speech(quality_run):
    _, rows = quality_run
    for clip in measured(rows, "vas_hammer_video_00323.mp4") + measured(rows, "difffoley_drum.mp4"):
        assert clip["audio_quality.speech_s"] < 1.0 and clip["audio_quality.dnsmos_ovrl"] is None
    face = measured(rows, "videoretalking_face_3.mp4")
    assert face and all(c["audio_quality.dnsmos_sig"] > 3.0 and c["audio_quality.speech_ratio"] > 0.7 for c in face)


def test_rows_dropped_upstream_pass_through_unmeasured(quality_run):
    out, rows = quality_run
    shots = {r["clip_id"]: r for r in read_stage(out, "shots").to_pylist()}
    assert len(rows) == len(shots)
    upstream_dropped = [r for r in rows if not shots[r["clip_id"]]["keep"]]
    assert upstream_dropped, "the run should have short pieces dropped by shots"
    for row in upstream_dropped:
        assert not row["keep"] and row["drop_reason"] == shots[row["clip_id"]]["drop_reason"]
        assert row["audio_quality.rms_dbfs"] is None


def test_decide_rethresholds_without_models(quality_run, tmp_path, monkeypatch):
    out = tmp_path / "copy"
    shutil.copytree(quality_run[0], out)

    def forbidden(*_args, **_kwargs):
        raise AssertionError("decide must not load a model or decode audio")

    monkeypatch.setattr(AudioQualityStage, "setup", forbidden)
    monkeypatch.setattr(AudioQualityStage, "measure", forbidden)
    cfg = load_config(overrides=[*FAST, "audio_quality.min_rms_dbfs=-20"])
    apply_decide("audio_quality", cfg, out)
    rows = read_stage(out, "audio_quality").to_pylist()
    measured_rows = [r for r in rows if r["audio_quality.rms_dbfs"] is not None]
    assert any(r["drop_reason"] == "silent" and r["audio_quality.rms_dbfs"] > -55 for r in measured_rows)
    assert all(not r["keep"] for r in measured_rows if r["audio_quality.rms_dbfs"] < -20)


def test_dnsmos_floor_judges_only_speech_dominant_clean_background_clips():
    stage = AudioQualityStage(load_config(), None)
    base = {"error": None, "keep": True, "drop_reason": None, "audio_quality.rms_dbfs": -25.0,
            "audio_quality.silence_ratio": 0.0, "audio_quality.clipping_ratio": 0.0, "audio_quality.bandwidth_hz": 8000.0,
            "audio_quality.dnsmos_ovrl": 1.2}
    poor_clean = dict(base, **{"audio_quality.speech_ratio": 0.9, "audio_quality.dnsmos_sig": 1.5, "audio_quality.dnsmos_bak": 3.5})
    over_music = dict(poor_clean, **{"audio_quality.dnsmos_bak": 1.3})
    little_speech = dict(poor_clean, **{"audio_quality.speech_ratio": 0.2})
    no_speech = dict(base, **{"audio_quality.speech_ratio": 0.0, "audio_quality.dnsmos_sig": None,
                              "audio_quality.dnsmos_bak": None, "audio_quality.dnsmos_ovrl": None})
    assert stage.decide_one(dict(poor_clean))["drop_reason"] == "low_speech_quality"
    for row in (over_music, little_speech, no_speech):
        assert stage.decide_one(dict(row))["keep"]
