"""Stage caption on real clips: the four-part structure, PersonN ids, scene-only captions, config reaching it."""
from __future__ import annotations

import re

import pytest

from demix_pipeline.backends.captioning.appearance import COLOURS
from demix_pipeline.backends.captioning.offline import TemplateCaptioner
from demix_pipeline.backends.captioning.structure import Caption, Person, participants_sentence
from demix_pipeline.config import load_config
from demix_pipeline.media.visual import PictureStats
from demix_pipeline.stages.base import RunContext
from demix_pipeline.stages.caption import CaptionStage, group_persons

SCENE = re.compile(r"^A (dark|bright|moderately lit) scene in (muted|natural|vivid) colours with "
                   r"(little|moderate|strong) motion; sound: .+; \d+\.\d seconds\.$")


@pytest.fixture(scope="module")
def captions(late_stages_run):
    return late_stages_run["rows"]("caption")


def test_participants_sentence():
    assert participants_sentence(2) == "Two person conversation."
    assert participants_sentence(1) == "One person speaking."
    assert participants_sentence(12) == "12 person conversation."


def test_text_has_four_parts_or_only_the_scene():
    people = [Person("Person1", [0], [0.1, 0.2, 0.3, 0.5], "a person on the left."),
              Person("Person2", [1], [0.6, 0.2, 0.8, 0.5], "a person on the right.")]
    caption = Caption(2, "Two person conversation.", people, "Person2", "A dark scene.")
    assert caption.text() == ("Two person conversation. Person1: a person on the left. Person2: a person on the right. "
                              "Active speaker: Person2. A dark scene.")
    assert Caption(2, "Two person conversation.", people, None, "A dark scene.").text() == "A dark scene."


def track(track_id, start, end, x, samples=5, speaking=None):
    box = [x - 0.05, 0.2, x + 0.05, 0.4]
    return {"track_id": track_id, "start_s": start, "end_s": end, "times": [start] * samples, "boxes": [box] * samples,
            "speaking_frac": speaking}


def test_persons_are_numbered_left_to_right_and_lost_faces_rejoin():
    tracks = [track(0, 0.0, 4.0, 0.8, speaking=0.6), track(1, 0.0, 2.0, 0.2), track(2, 2.5, 6.0, 0.25, speaking=0.1),
              track(3, 1.0, 1.4, 0.5, samples=1)]  # a one-sample false face is not a person
    persons = group_persons(tracks, min_samples=3, same_distance=0.15)
    assert [p.person_id for p in persons] == ["Person1", "Person2"]
    assert persons[0].track_ids == [1, 2] and persons[1].track_ids == [0]
    assert persons[1].speaking_frac == 0.6


def test_template_states_measured_facts_only():
    template = TemplateCaptioner(load_config().caption)
    assert template.describe_person([0.0, 0.0, 0.2, 0.5], 3.04) == "a person on the left, in close-up, seen for 3.0 seconds."
    scene = template.describe_scene(PictureStats(40.0, 5.0, 15.0, 10), ["speech", "music"], 8.25)
    assert scene == "A dark scene in muted colours with strong motion; sound: speech and music; 8.2 seconds."


def test_talking_heads_get_the_four_parts(captions):
    heads = [r for r in captions if r["video_path"].startswith("talking_head_single/")]
    assert len(heads) >= 5
    structured = [r for r in heads if r["caption.structure"]["active_speaker"]]
    assert len(structured) >= 4, [r["caption.text"] for r in heads]
    for row in structured:
        structure = row["caption.structure"]
        assert row["caption.text"].startswith(structure["participants"])
        assert structure["active_speaker"] == "Person1" and [p["person_id"] for p in structure["persons"]] == ["Person1"]
        assert "Person1: a person" in row["caption.text"] and "Active speaker: Person1." in row["caption.text"]
        assert SCENE.match(structure["scene"]) and row["caption.text"].endswith(structure["scene"])


def test_speaker_id_is_one_of_the_persons_and_speaks_most(captions):
    for row in captions:
        structure = row["caption.structure"]
        if structure["active_speaker"] is None:
            continue
        persons = {p["person_id"]: p for p in structure["persons"]}
        speaker = persons[structure["active_speaker"]]
        assert speaker["speaking_frac"] == max(p["speaking_frac"] or 0 for p in persons.values())
        tracks = {t["track_id"] for t in row["voiceover.tracks"]}
        assert set(speaker["track_ids"]) <= tracks


def test_clips_without_speech_get_only_the_scene_sentence(captions):
    silent = [r for r in captions if r["voiceover.speech_s"] < 0.5]
    assert len(silent) >= 4
    for row in silent:
        assert row["caption.structure"]["active_speaker"] is None
        assert row["caption.text"] == row["caption.structure"]["scene"] and SCENE.match(row["caption.text"])
        assert "speech" not in row["caption.text"].split("sound:")[1]
    # labelled without speech (drum, Big Buck Bunny): measured on these clips, 4 of 5 get the scene sentence only
    # (silero hears 0.6 s of "speech" in one cartoon shot, where a false face then "speaks")
    quiet = [r for r in captions if "difffoley_drum" in r["video_path"] or "big_buck_bunny" in r["video_path"]]
    assert len(quiet) >= 4 and sum(r["caption.structure"]["active_speaker"] is None for r in quiet) >= len(quiet) - 1
    assert all(r["caption.captioner"] == "offline" and r["keep"] for r in captions)


def test_config_changes_reach_the_captioner(captions, late_stages_run):
    row = next(r for r in captions if "difffoley_drum" in r["video_path"])
    row = {k: v for k, v in row.items() if k not in ("video_path", "label")}
    stage = CaptionStage(load_config(overrides=["caption.dark_luma=255"]), RunContext(late_stages_run["out"]))
    stage.setup()
    assert stage.measure_one(row)["caption.text"].startswith("A dark scene")
    stage = CaptionStage(load_config(overrides=["caption.bright_luma=0", "caption.dark_luma=0"]),
                         RunContext(late_stages_run["out"]))
    stage.setup()
    assert stage.measure_one(row)["caption.text"].startswith("A bright scene")


def test_person_list_matches_the_human_count(captions):
    assert len(captions) >= 10
    for row in captions:
        assert len(row["caption.structure"]["persons"]) == row["voiceover.human_count"], row["clip_id"]


def test_talking_heads_have_a_clothing_colour_or_say_it_is_not_seen(captions):
    heads = [r for r in captions if r["video_path"].startswith("talking_head_single/")]
    assert len(heads) >= 5
    for row in heads:
        for person in row["caption.structure"]["persons"]:
            assert person["clothing_colour"] in COLOURS + ("not visible",), person
            assert person["body_in_view"] in ("face only", "upper body", "whole body")
            wears = "clothing colour not visible" if person["clothing_colour"] == "not visible" else \
                f"wearing {person['clothing_colour']}"
            assert wears in person["description"]
    # the colours the labels' notes state on these clips: the red dress (video5, tune file) and the white
    # shirt (face_2, held out; read "grey" by the hand-set HSV names before the learned table and white patch)
    for clip, colour in (("datajuicer_video5", "red"), ("videoretalking_face_2", "white")):
        persons = [p for r in heads if clip in r["video_path"] for p in r["caption.structure"]["persons"]]
        assert persons and all(p["clothing_colour"] == colour for p in persons), (clip, persons)
