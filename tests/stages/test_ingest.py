"""Stage ingest on real media and on odd files made from it: probe fields, rejections, errors as rows."""
from __future__ import annotations

import shutil

import pytest

from tests.pipeline_helpers import run_pipeline


@pytest.fixture(scope="module")
def ingested(media, edge_cases, tmp_path_factory, ray_session):
    folder = tmp_path_factory.mktemp("inputs")
    picks = ["multi_person_dialogue/pyscenedetect_goldeneye_rotated_issue134.mp4",
             "multi_person_dialogue/pyscenedetect_bbc_documentary_issue195.mp4",
             "scenery_no_people/datajuicer_video10_plant_no_audio.mp4",
             "scenery_no_people/datajuicer_video11_great_wall_silent_track.mp4",
             "shot_boundaries/pyscenedetect_goldeneye-vfr-drop3.mp4"]
    for name in picks:
        shutil.copy(media / name, folder / name.split("/")[1])
    shutil.copy(media / picks[1], folder / "bbc_copy.mp4")  # identical content under another name
    for path in edge_cases.values():
        shutil.copy(path, folder / path.name)
    # 2 of the 13 files are broken on purpose (a text file, a truncated mp4): over the default max_error_rate
    sources, _ = run_pipeline([folder], tmp_path_factory.mktemp("run"), ["shots.encode.preset=ultrafast",
                                                                         "ingest.max_error_rate=0.2"])
    return {row["source_uri"].rsplit("/", 1)[1]: row for row in sources}


def test_rotated_source_reports_size_after_rotation(ingested):
    row = ingested["pyscenedetect_goldeneye_rotated_issue134.mp4"]
    assert (row["ingest.coded_width"], row["ingest.coded_height"]) == (1280, 544)
    assert row["ingest.rotation"] in (90, 270)
    assert (row["width"], row["height"]) == (544, 1280)
    assert row["keep"]


def test_anamorphic_source_reports_display_width(ingested):
    row = ingested["pyscenedetect_bbc_documentary_issue195.mp4"]
    assert row["ingest.sar"] == "16:11"
    assert (row["width"], row["height"]) == (1024, 576)


def test_vfr_is_detected(ingested):
    vfr = ingested["goldeneye_vfr_with_audio.mp4"]
    assert vfr["ingest.vfr"] is True and vfr["keep"]
    assert 150 <= vfr["ingest.frame_count"] <= 160  # the remux with audio may drop the last frames
    assert not ingested["pyscenedetect_bbc_documentary_issue195.mp4"]["ingest.vfr"]


def test_sources_without_audio_are_rejected_with_reason(ingested):
    for name in ("datajuicer_video10_plant_no_audio.mp4", "pyscenedetect_goldeneye-vfr-drop3.mp4"):
        row = ingested[name]
        assert not row["keep"] and row["drop_reason"] == "no_audio" and row["has_audio"] is False
    plant = ingested["datajuicer_video10_plant_no_audio.mp4"]
    assert plant["fps"] == pytest.approx(1.0) and plant["ingest.frame_count"] == 20


def test_silent_track_is_kept_at_ingest(ingested):
    row = ingested["datajuicer_video11_great_wall_silent_track.mp4"]
    assert row["keep"] and row["has_audio"]  # silence is judged by the audio stages


def test_identical_content_is_ingested_once(ingested):
    a, b = ingested["pyscenedetect_bbc_documentary_issue195.mp4"], ingested["bbc_copy.mp4"]
    assert a["source_id"] == b["source_id"]
    assert [a["keep"], b["keep"]].count(True) == 1
    dup = b if not b["keep"] else a
    assert dup["drop_reason"] == "duplicate" and dup["ingest.duplicate_of"]


def test_text_file_and_truncated_files_are_error_rows(ingested):
    text = ingested["notes_renamed.mp4"]
    assert not text["keep"] and text["drop_reason"] == "undecodable"
    assert text["error"].startswith("UndecodableError: cannot open as media")
    truncated = ingested["truncated.mp4"]  # moov atom at the end was cut off
    assert not truncated["keep"] and "ffmpeg: moov atom not found" in truncated["error"]


def test_truncated_faststart_file_keeps_what_decodes(ingested):
    row = ingested["truncated_faststart.mp4"]
    assert row["keep"] and row["error"] is None
    assert 0 < row["duration_s"] < 25.12  # shorter than the full 25.12 s documentary


def test_audio_ending_early_and_surround_are_probed(ingested):
    short = ingested["short_audio.mp4"]
    assert short["duration_s"] == pytest.approx(8.0, abs=0.05)
    assert short["ingest.audio_duration_s"] == pytest.approx(3.0, abs=0.1)
    surround = ingested["surround_51.mp4"]
    assert surround["ingest.audio_channels"] == 6 and surround["ingest.audio_layout"] == "5.1"
    avi = ingested["mpeg4_mp3.avi"]
    assert avi["ingest.container"] == "avi" and avi["ingest.video_codec"] == "mpeg4" and avi["ingest.audio_codec"].startswith("mp3")
    assert avi["keep"]


def test_near_duplicates_share_a_group_with_the_reason(ingested):
    """The AVI is the BBC clip's first 7 s re-encoded (MPEG-4 Part 2); the VFR file with audio is the
    GoldenEye VFR stream remuxed with a tone. Each groups with its original; the two files drawn from
    ffmpeg's testsrc2 pattern (4 s at 24 fps and 8 s at 25 fps) are the same picture and group too;
    the others stay alone."""
    bbc = next(r for r in (ingested["pyscenedetect_bbc_documentary_issue195.mp4"], ingested["bbc_copy.mp4"]) if r["keep"])
    avi = ingested["mpeg4_mp3.avi"]
    assert avi["keep"] and avi["ingest.group_id"] == bbc["ingest.group_id"] == min(avi["source_id"], bbc["source_id"])
    grouped = avi if avi["ingest.group_id"] != avi["source_id"] else bbc
    assert grouped["ingest.group_reason"].startswith("matches ")
    assert len(grouped["ingest.fingerprint_hashes"]) == len(grouped["ingest.fingerprint_times"]) > 4
    assert ingested["surround_51.mp4"]["ingest.group_id"] == ingested["short_audio.mp4"]["ingest.group_id"]
    for name in ("datajuicer_video11_great_wall_silent_track.mp4", "pyscenedetect_goldeneye_rotated_issue134.mp4"):
        row = ingested[name]
        assert row["ingest.group_id"] == row["source_id"] and row["ingest.group_reason"] is None, name
