"""Stage ingest on real media and on odd files made from it: probe fields, rejections, errors as rows."""
from __future__ import annotations

import json
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
    sources, _ = run_pipeline([folder], tmp_path_factory.mktemp("run"), ["ingest.max_error_rate=0.2"], shots=False)
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


def test_text_file_is_not_a_video_and_truncated_file_is_an_error_row(ingested):
    text = ingested["notes_renamed.mp4"]
    assert not text["keep"] and text["drop_reason"] == "not_a_video" and text["error"] is None
    assert text["ingest.input_detail"] == "a text file"
    truncated = ingested["truncated.mp4"]  # moov atom at the end was cut off
    assert not truncated["keep"] and truncated["drop_reason"] == "truncated"
    assert "ffmpeg: moov atom not found" in truncated["error"]
    assert truncated["ingest.truncated"] is True and truncated["ingest.missing_bytes"] > 1_000_000


def test_truncated_faststart_file_keeps_what_decodes(ingested):
    row = ingested["truncated_faststart.mp4"]
    assert row["keep"] and row["error"] is None
    assert 0 < row["duration_s"] < 25.12  # shorter than the full 25.12 s documentary
    assert row["ingest.truncated"] is True and row["ingest.missing_bytes"] > 0  # marked, with what is lost
    assert row["ingest.missing_s"] == pytest.approx(25.12 - row["duration_s"], abs=0.1)
    assert not ingested["pyscenedetect_bbc_documentary_issue195.mp4"]["ingest.truncated"]


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


# ------------------------------------------------------------------------------------------------
# inputs ingest does not take: rows with a reason, or counts in _stage.json (fast: ingest only)

@pytest.fixture(scope="module")
def odd_inputs(media, edge_cases, tmp_path_factory):
    """A folder of things that are no usable video, beside one good file."""
    from tests.conftest import ffmpeg

    folder = tmp_path_factory.mktemp("odd_inputs")
    (folder / "sub").mkdir()
    shutil.copy(media / "talking_head_single" / "videoretalking_face_3.mp4", folder / "good.mp4")
    (folder / "speech.wav").write_bytes(b"RIFF")                        # another extension
    (folder / "song.m4a").write_bytes(b"x")                             # another extension
    (folder / ".hidden.mp4").write_bytes(b"x")                          # a dot-file
    (folder / "loop.mp4").symlink_to("loop.mp4")                        # a symlink loop
    (folder / "broken.mp4").symlink_to(folder / "gone.mp4")             # a broken symlink
    (folder / "sub" / "up").symlink_to("..")                            # a folder linking back above it
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=32x32", "-frames:v", "1", str(folder / "picture.png"))
    (folder / "picture.png").rename(folder / "picture.mp4")             # a PNG renamed .mp4
    shutil.copy(edge_cases["text"], folder / "notes.mp4")               # text renamed .mp4
    shutil.copy(edge_cases["truncated"], folder / "moov_lost.mp4")      # half the bytes, moov cut off
    whole = (media / "scenery_no_people" / "datajuicer_video11_great_wall_silent_track.mp4").read_bytes()
    (folder / "half.mp4").write_bytes(whole[: len(whole) // 2])         # half the bytes, moov at the front
    return folder


@pytest.fixture(scope="module")
def odd_run(odd_inputs, tmp_path_factory, ray_session):
    from demix_pipeline.config import load_config
    from demix_pipeline.manifest import read_stage, stage_dir
    from demix_pipeline.runner import run_stage
    from demix_pipeline.stages.ingest import collect_sources

    cfg = load_config(overrides=["run.progress=false", "ingest.max_error_rate=0.5", "ingest.fingerprint.enabled=false"])
    sources = collect_sources([str(odd_inputs)], "cinematic", cfg.ingest.extensions)
    out = tmp_path_factory.mktemp("odd_run")
    run_stage("ingest", cfg, out, sources=sources)
    rows = {row["source_uri"][len(str(odd_inputs)) + 1:]: row for row in read_stage(out, "ingest").to_pylist()}
    record = json.loads((stage_dir(out, "ingest") / "_stage.json").read_text())
    return {"sources": sources, "rows": rows, "stage": record}


def test_ingest_reports_other_extensions_dotfiles_and_symlink_loops(odd_run):
    """Ingest of a folder with a `.wav`, a dot-file and a symlink loop reports each."""
    rows, counts = odd_run["rows"], odd_run["stage"]["inputs_not_taken"]
    assert counts == {"dotfiles": 1, "other_extensions": {".m4a": 1, ".wav": 1}, "special_files": 0}
    line = odd_run["sources"].describe()  # what `demix run` prints
    assert line.startswith(f"ingest: {len(rows)} input files") and ".wav 1" in line and "1 dot-files" in line
    loop = rows["loop.mp4"]
    assert not loop["keep"] and loop["drop_reason"] == "symlink_loop" and loop["error"] is None
    assert rows["sub/up"]["drop_reason"] == "symlink_loop"
    broken = rows["broken.mp4"]
    assert broken["drop_reason"] == "broken_symlink" and "gone.mp4" in broken["ingest.input_detail"]
    assert set(rows) == {"good.mp4", "loop.mp4", "broken.mp4", "sub/up", "picture.mp4", "notes.mp4", "moov_lost.mp4",
                         "half.mp4"}
    assert odd_run["stage"]["dropped_by_reason"]["symlink_loop"] == 2
    assert rows["good.mp4"]["keep"] and rows["good.mp4"]["ingest.input_issue"] is None


def test_files_that_are_no_video_are_not_a_video(odd_run):
    picture, notes = odd_run["rows"]["picture.mp4"], odd_run["rows"]["notes.mp4"]
    assert picture["drop_reason"] == "not_a_video" and picture["error"] is None
    assert "png" in picture["ingest.input_detail"] and picture["ingest.video_codec"] == "png"
    assert notes["drop_reason"] == "not_a_video" and notes["ingest.input_detail"] == "a text file"


def test_truncated_files_are_marked(odd_run):
    half = odd_run["rows"]["half.mp4"]  # the index (moov) survived: kept, with what was lost
    assert half["keep"] and half["ingest.truncated"] is True
    assert half["duration_s"] == pytest.approx(5.375, abs=0.1)
    assert half["ingest.missing_s"] == pytest.approx(6.6, abs=0.1)  # of the 12 s the header gives
    assert half["ingest.missing_bytes"] == 514177 - 514177 // 2
    assert "the index lists 288 video frames, 129 could be read" in half["ingest.truncated_detail"]
    lost = odd_run["rows"]["moov_lost.mp4"]  # the index was at the end: nothing opens, an error row
    assert lost["drop_reason"] == "truncated" and lost["ingest.truncated"] is True and lost["error"]
    assert odd_run["rows"]["good.mp4"]["ingest.truncated"] is False


def test_a_complete_file_has_no_shortfall(media):
    from demix_pipeline.media.probe import container_shortfall

    for name in ("talking_head_single/videoretalking_face_3.mp4", "music/moviepy_big_buck_bunny_0_30.webm"):
        assert container_shortfall(media / name) == 0
