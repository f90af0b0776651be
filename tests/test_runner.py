"""Runner: resume after a kill, determinism, decide without models, error rows as data."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from demix_pipeline.config import load_config
from demix_pipeline.manifest import read_stage, stage_dir
from demix_pipeline.runner import StageFailed, apply_decide, run_stage
from demix_pipeline.stages.ingest import collect_sources
from demix_pipeline.stages.shots import ShotsStage
from tests.pipeline_helpers import run_pipeline

SMALL = ["multi_person_dialogue/datajuicer_video1_cartoon_dialogue.mp4",
         "multi_person_dialogue/pyscenedetect_bbc_documentary_issue195.mp4",
         "multi_person_dialogue/pyscenedetect_goldeneye_rotated_issue134.mp4",
         "talking_head_single/videoretalking_face_2.mp4",
         "sound_effects/vas_dog_video_02677.mp4",
         "music/vggsound_playing_harp_6zlMP_kQ_-w_30000_40000.mp4"]
FAST = ["shots.encode.preset=ultrafast", "shots.resources.shard_size=1", "ingest.resources.shard_size=2"]


@pytest.fixture(scope="module")
def small_inputs(media, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("small")
    for name in SMALL:
        shutil.copy(media / name, folder / name.split("/")[1])
    return folder


def tables(out: Path) -> dict:
    return {stage: read_stage(out, stage) for stage in ("ingest", "shots")}


@pytest.fixture(scope="module")
def reference_run(small_inputs, tmp_path_factory, ray_session) -> Path:
    out = tmp_path_factory.mktemp("reference")
    run_pipeline([small_inputs], out, FAST)
    return out


def test_same_input_and_config_give_identical_manifests(small_inputs, reference_run, tmp_path, ray_session):
    run_pipeline([small_inputs], tmp_path, FAST)
    first, second = tables(reference_run), tables(tmp_path)
    for stage in first:
        assert first[stage].num_rows > 0
        assert first[stage].equals(second[stage]), stage


def test_killed_run_resumes_to_the_same_manifest(small_inputs, reference_run, tmp_path):
    """Kill `demix run` (SIGKILL to its process group) once shots has written a part, then re-run."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "demix_pipeline.cli", "run", "--input", str(small_inputs), "--out", str(out),
           *[arg for item in FAST + ["run.progress=false", "run.num_cpus=2"] for arg in ("--set", item)]]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    shots = stage_dir(out, "shots")
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if len(list(shots.glob("part-*.parquet"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(shots.glob("part-*.parquet")))
    assert not (shots / "_SUCCESS").exists() and 2 <= done < len(SMALL), done
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "shots: resumed" in resumed.stderr
    ours, reference = tables(out), tables(reference_run)
    for stage in ours:
        ids = ours[stage].column("source_id" if stage == "ingest" else "clip_id").to_pylist()
        assert len(ids) == len(set(ids)), f"{stage}: duplicate rows after resume"
        assert ours[stage].equals(reference[stage]), stage
    assert not list(shots.glob(".*.tmp"))


def test_decide_changes_keep_without_measuring(reference_run, tmp_path, monkeypatch):
    out = tmp_path / "copy"
    shutil.copytree(reference_run, out)
    before = read_stage(out, "shots").to_pylist()
    clip_files = {p: p.stat().st_mtime_ns for p in (out / "artifacts").rglob("*.mp4")}

    def forbidden(*_args, **_kwargs):
        raise AssertionError("decide must not decode or load a detector")

    monkeypatch.setattr(ShotsStage, "setup", forbidden)
    monkeypatch.setattr(ShotsStage, "measure", forbidden)
    monkeypatch.setattr("demix_pipeline.stages.shots.cut_clip", forbidden)
    cfg = load_config(overrides=[*FAST, "shots.min_clip_s=4.5"])
    started = time.time()
    summary = apply_decide("shots", cfg, out)
    assert time.time() - started < 10
    after = read_stage(out, "shots").to_pylist()
    assert len(after) == len(before)
    for row in after:
        if row["error"] is None:
            expected = row["clip_uri"] is not None and 4.5 <= row["shots.duration_s"] <= 20.0
            assert row["keep"] == expected
    assert sum(r["keep"] for r in after) < sum(r["keep"] for r in before)
    assert summary.dropped.get("too_short", 0) > 0
    assert (stage_dir(out, "shots") / "_SUCCESS").exists()
    assert clip_files == {p: p.stat().st_mtime_ns for p in (out / "artifacts").rglob("*.mp4")}
    # a later `run` with the same decide config is up to date, without measuring either
    assert run_stage("shots", cfg, out).status == "up-to-date"


def test_set_overrides_reach_the_stage(media, tmp_path, ray_session):
    overrides = ["shots.max_clip_s=2.5", "shots.window_s=2.0", "shots.min_clip_s=1.0", "shots.encode.preset=ultrafast"]
    _, clips = run_pipeline([media / "talking_head_single" / "videoretalking_face_3.mp4"], tmp_path, overrides)
    assert len(clips) == 3 and all(c["shots.duration_s"] <= 2.0 for c in clips)  # a 5 s shot in 3 windows
    assert [c["shots.cut_in"] for c in clips] == ["start", "window", "window"]
    import json

    recorded = json.loads((stage_dir(tmp_path, "shots") / "_stage.json").read_text())["config"]
    assert recorded["max_clip_s"] == 2.5 and recorded["window_s"] == 2.0


def test_stage_fails_past_max_error_rate(tmp_path, ray_session):
    bad = tmp_path / "in"
    bad.mkdir()
    for i in range(3):
        (bad / f"broken{i}.mp4").write_bytes(os.urandom(2048))
    cfg = load_config(overrides=["run.progress=false", "ingest.max_error_rate=0.5"])
    with pytest.raises(StageFailed, match="3 of 3 rows failed"):
        run_stage("ingest", cfg, tmp_path / "out", sources=collect_sources([str(bad)], "cinematic", cfg.ingest.extensions))
    assert not (stage_dir(tmp_path / "out", "ingest") / "_SUCCESS").exists()
    rows = pq.read_table(stage_dir(tmp_path / "out", "ingest")).to_pylist()
    assert len(rows) == 3 and all(r["error"] for r in rows)


def test_changed_measure_config_redoes_the_stage(reference_run, tmp_path, ray_session):
    out = tmp_path / "copy"
    shutil.copytree(reference_run, out)
    cfg = load_config(overrides=["run.progress=false", *FAST, "shots.trim_frames=0"])
    summary = run_stage("shots", cfg, out)
    assert summary.status == "ran"
    rows = read_stage(out, "shots").to_pylist()
    assert any(r["shots.cut_in"] == "hard" and r["start_frame"] in (144, 237, 70) for r in rows)


@pytest.mark.parametrize("as_actors", [False, True], ids=["tasks", "actors"])
def test_a_row_that_kills_its_worker_becomes_an_error_row(as_actors, reference_run, tmp_path, ray_session):
    """A crash in native code (here: os._exit in the worker) costs only the row that caused it."""
    from demix_pipeline.manifest import part_files
    from demix_pipeline.runner import _execute
    from demix_pipeline.stages import RunContext

    class CrashingShots(ShotsStage):  # defined here, so Ray pickles it by value
        uses_model = as_actors

        def measure(self, rows):
            if any("vas_dog" in r["source_uri"] for r in rows):
                os._exit(3)
            return super().measure(rows)

    cfg = load_config(overrides=["run.progress=false", *FAST, "shots.resources.shard_size=3"])
    sources = read_stage(reference_run, "ingest").to_pylist()
    kept = sorted((r for r in sources if r["keep"]), key=lambda r: r["source_id"])
    out = tmp_path / "crash"
    ctx = RunContext(out=out)
    _execute(CrashingShots, cfg, ctx, [(0, kept[:3]), (1, kept[3:])], set(), progress=False)
    rows = [r for p in part_files(out, "shots") for r in pq.read_table(p).to_pylist()]
    crashed = [r for r in rows if r["error"]]
    assert len(crashed) == 1 and crashed[0]["error"].startswith("WorkerCrashed: the worker died on this row")
    dog = next(r["source_id"] for r in kept if "vas_dog" in r["source_uri"])
    assert crashed[0]["source_id"] == dog
    assert {r["source_id"] for r in rows} == {r["source_id"] for r in kept}  # every other source measured


def test_changed_encode_settings_remake_the_clips(reference_run, tmp_path, ray_session):
    out = tmp_path / "copy"
    shutil.copytree(reference_run, out)
    before = {p.name: p.read_bytes() for p in (out / "artifacts").rglob("*.mp4")}
    cfg = load_config(overrides=["run.progress=false", *FAST, "shots.encode.crf=35"])
    assert run_stage("shots", cfg, out).status == "ran"
    after = {p.name: p.read_bytes() for p in (out / "artifacts").rglob("*.mp4")}
    assert set(after) == set(before)
    assert all(after[name] != before[name] for name in before)
