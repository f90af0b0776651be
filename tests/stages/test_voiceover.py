"""Stage voiceover on real clips: human counts, voice-over drops, faces over music, decide without models."""
from __future__ import annotations

from pathlib import Path

import pytest

from demix_pipeline.config import load_config
from demix_pipeline.evaluation import count_class
from demix_pipeline.manifest import read_stage
from demix_pipeline.runner import apply_decide
from demix_pipeline.stages.voiceover import VoiceoverStage, human_count
from tests.pipeline_helpers import LATE_STAGES_FAST

@pytest.fixture(scope="module")
def voiceover_run(late_stages_run):
    """The shared run of ingest..caption over real clips (tests/pipeline_helpers.py), at the voiceover stage."""
    return late_stages_run["out"], late_stages_run["rows"]("voiceover")


def test_talking_heads_count_one_and_are_kept(voiceover_run):
    _, rows = voiceover_run
    heads = [r for r in rows if r["video_path"].startswith("talking_head_single/")]
    assert len(heads) >= 5
    assert all(r["voiceover.human_count"] == 1 for r in heads), [(r["clip_id"], r["voiceover.human_count"]) for r in heads]
    assert all(r["keep"] for r in heads)
    assert all(r["voiceover.speech_s"] > 2 and r["voiceover.speakers"] >= 1 for r in heads)
    # the offline active-speaker step finds the talking face in most of their speech
    assert sum(r["voiceover.active_speaker_frac"] for r in heads) / len(heads) >= 0.2


def test_two_people_talking_count_two_or_more(voiceover_run):
    _, rows = voiceover_run
    dialogue = [r for r in rows if "two_women" in r["video_path"]]
    assert dialogue and all(r["voiceover.human_count"] >= 2 and r["keep"] for r in dialogue)


def test_narration_over_hands_and_objects_is_dropped_as_voice_over(voiceover_run):
    """The BBC clip: off-screen narration over shots without people (labelled voice_over=yes)."""
    _, rows = voiceover_run
    bbc = [r for r in rows if "bbc" in r["video_path"] and r["label"]["voice_over"] in ("yes", "no")]
    assert bbc
    agree = [r["drop_reason"] == ("voice_over" if r["label"]["voice_over"] == "yes" else None) for r in bbc]
    assert sum(agree) / len(agree) >= 0.75, [(r["clip_id"], r["label"]["voice_over"], r["drop_reason"]) for r in bbc]
    dropped = [r for r in bbc if r["drop_reason"] == "voice_over"]
    assert all(r["voiceover.uncovered_speech_s"] > 1.0 for r in dropped)


def test_clips_without_speech_or_with_faces_over_music_pass(voiceover_run):
    _, rows = voiceover_run
    for name in ("liveportrait_d10", "difffoley_drum", "big_buck_bunny"):
        clips = [r for r in rows if name in r["video_path"]]
        assert clips and all(r["keep"] for r in clips), name


def test_human_count_accuracy_against_the_labels(voiceover_run):
    """Measured on these clips: 0.93 (14 of 15 labelled clips; BBC's hands-only shot counts 0 where labelled 1)."""
    _, rows = voiceover_run
    labelled = [r for r in rows if r["label"] and r["label"]["max_people"] != "unsure"]
    right = [count_class(r["voiceover.human_count"]) == count_class(r["label"]["max_people"]) for r in labelled]
    assert len(labelled) >= 12 and sum(right) / len(right) >= 0.8


def test_scenery_and_generated_scenes_have_no_people(media, tmp_path):
    """No person in the shared scenery, nor in any frame of the demo's generated scenes (abstract
    shapes, where BlazeFace alone found a face on every clip of film_related_mood)."""
    from demix_pipeline.sample import make_sample_corpus

    stage = VoiceoverStage(load_config(), None)
    stage.setup()
    for name in ("scenery_no_people/datajuicer_video10_plant_no_audio.mp4",
                 "scenery_no_people/datajuicer_video11_great_wall_silent_track.mp4",
                 "sound_effects/vas_fireworks_video_02997.mp4"):
        scan = stage.scan_video(media / name)
        assert scan.sample_times and human_count(scan.person_counts, 5.0, 0.6, 90) == 0, name
    corpus = make_sample_corpus(tmp_path / "demo")
    videos = sorted(corpus.parent.glob("*.mp4"))
    assert len(videos) == 3
    for video in videos:
        scan = stage.scan_video(video)
        assert len(scan.sample_times) >= 20 and max(scan.person_counts) == 0 and scan.face_tracks == [], video.name


def test_same_clip_same_measurements(media):
    stage = VoiceoverStage(load_config(), None)
    stage.setup()
    video = media / "talking_head_single/videoretalking_face_3.mp4"
    from demix_pipeline.media.audio import ClipAudio

    speech = ClipAudio.load(video).at(16000)
    first, second = stage.measure_clip(video, speech), stage.measure_clip(video, speech)
    assert first == second
    assert first["voiceover.tracks"] and len(first["voiceover.tracks"][0]["boxes"]) == len(first["voiceover.tracks"][0]["times"])


def test_decide_reapplies_tolerances_without_models(voiceover_run):
    out, _ = voiceover_run
    cfg = load_config(overrides=["run.progress=false", *LATE_STAGES_FAST, "voiceover.max_uncovered_s=1000"])
    apply_decide("voiceover", cfg, out)
    after = read_stage(out, "voiceover").to_pylist()
    assert not any(r["drop_reason"] == "voice_over" for r in after)
    apply_decide("voiceover", load_config(overrides=["run.progress=false", *LATE_STAGES_FAST]), out)
    assert any(r["drop_reason"] == "voice_over" for r in read_stage(out, "voiceover").to_pylist())


def test_stricter_coverage_needs_an_active_speaker():
    stage = VoiceoverStage(load_config(overrides=["voiceover.coverage=active_speaker"]), None)
    row = {"error": None, "voiceover.speech_s": 5.0, "voiceover.uncovered_speech_s": 0.0,
           "voiceover.uncovered_speech_frac": 0.0, "voiceover.no_speaker_speech_s": 4.0,
           "voiceover.no_speaker_speech_frac": 0.8}
    assert stage.decide_one(dict(row))["drop_reason"] == "voice_over"
    default = VoiceoverStage(load_config(), None)
    assert default.decide_one(dict(row))["keep"]
    assert default.decide_one(dict(row, **{"voiceover.speech_s": 0.2, "voiceover.uncovered_speech_s": 0.2,
                                           "voiceover.uncovered_speech_frac": 1.0}))["keep"]
