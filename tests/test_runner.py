"""Runner and stream: resume after a kill, determinism, decide without models, error rows as data, each row measured once."""
from __future__ import annotations

import json
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
from demix_pipeline.measurements import MEASURE_DIR, MeasurementStore
from demix_pipeline.runner import StageFailed, apply_decide, previous_stage, run_stage
from demix_pipeline.stages.ingest import collect_sources
from demix_pipeline.stages.shots import ShotsStage
from demix_pipeline.streaming import run_stages
from tests.pipeline_helpers import CHEAP_SHOTS, run_pipeline

SMALL = ["multi_person_dialogue/datajuicer_video1_cartoon_dialogue.mp4",
         "multi_person_dialogue/pyscenedetect_bbc_documentary_issue195.mp4",
         "multi_person_dialogue/pyscenedetect_goldeneye_rotated_issue134.mp4",
         "talking_head_single/videoretalking_face_2.mp4",
         "sound_effects/vas_dog_video_02677.mp4",
         "music/vggsound_playing_harp_6zlMP_kQ_-w_30000_40000.mp4"]
FAST = ["shots.encode.preset=ultrafast", "shots.resources.shard_size=1", "ingest.resources.shard_size=2", CHEAP_SHOTS]


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
    summary = apply_decide("shots", cfg, out)  # the patches above prove it decodes nothing (no timing here)
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
    overrides = ["shots.max_clip_s=2.5", "shots.window_s=2.0", "shots.min_clip_s=1.0", "shots.encode.preset=ultrafast",
                 CHEAP_SHOTS]
    _, clips = run_pipeline([media / "talking_head_single" / "videoretalking_face_3.mp4"], tmp_path, overrides)
    assert len(clips) == 3 and all(c["shots.duration_s"] <= 2.0 for c in clips)  # a 5 s shot in 3 windows
    assert [c["shots.cut_in"] for c in clips] == ["start", "window", "window"]
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
    for row in kept:
        row["_key"] = "test-key"
    _execute(CrashingShots, cfg, ctx, [(0, kept[:3]), (1, kept[3:])], "0", progress=False)
    rows = [r for p in MeasurementStore(out, "shots", "source_id").parts() for r in pq.read_table(p).to_pylist()]
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


# ----------------------------------------------------------------------------------------------
# each row measured once: growth, re-thresholding, measure-config changes, retries

GROW_FIRST = ["multi_person_dialogue/datajuicer_video1_cartoon_dialogue.mp4", "sound_effects/vas_dog_video_02677.mp4",
              "music/vggsound_playing_harp_6zlMP_kQ_-w_30000_40000.mp4"]
GROW_MORE = ["sound_effects/vas_fireworks_video_02997.mp4"]
ALL_FAST = ["shots.encode.preset=ultrafast", "assign.test_size=0.3", CHEAP_SHOTS]
MODEL_STAGES = ("shots", "audio_quality", "demix", "voiceover", "caption")


def run_all(inputs: Path, out: Path, overrides: list[str] = ()) -> dict:
    """Every stage over `inputs`, in-process on the test session's Ray; name -> this run's counters."""
    from dataclasses import asdict

    from demix_pipeline.stages import IMPLEMENTED

    cfg = load_config(overrides=["run.progress=false", *ALL_FAST, *overrides])
    sources = collect_sources([str(inputs)], "cinematic", cfg.ingest.extensions)
    return {summary.stage: asdict(summary) for summary in run_stages(list(IMPLEMENTED), cfg, out, sources=sources)}


def all_tables(out: Path) -> dict:
    from demix_pipeline.stages import IMPLEMENTED

    return {name: read_stage(out, name) for name in IMPLEMENTED}


def clips_of(out: Path, stage: str, source_ids: set[str], kept_before: bool) -> int:
    """Rows of `stage` from these sources that the stage before it kept (what the stage had to measure)."""
    rows = read_stage(out, previous_stage(stage)).to_pylist()
    return sum(1 for r in rows if r["source_id"] in source_ids and (r["keep"] or not kept_before))


@pytest.fixture(scope="module")
def grown(media, tmp_path_factory, ray_session) -> dict:
    """A run over GROW_FIRST, the same run grown by GROW_MORE, and a fresh run over all of them."""
    root = tmp_path_factory.mktemp("grow")
    inputs = root / "inputs"
    inputs.mkdir()
    for name in GROW_FIRST:
        shutil.copy2(media / name, inputs / name.split("/")[1])
    first = run_all(inputs, root / "run")
    for name in GROW_MORE:
        shutil.copy2(media / name, inputs / name.split("/")[1])
    second = run_all(inputs, root / "run", ["run.compact_measurements_at=2"])  # and fold the stores' parts
    fresh = run_all(inputs, root / "fresh")
    new_ids = {r["source_id"] for r in read_stage(root / "run", "ingest").to_pylist()
               if r["source_uri"].rsplit("/", 1)[1] in {n.split("/")[1] for n in GROW_MORE}}
    return {"root": root, "inputs": inputs, "first": first, "second": second, "fresh": fresh, "new_ids": new_ids}


def test_growing_a_run_measures_only_the_new_sources(grown):
    first, second, out = grown["first"], grown["second"], grown["root"] / "run"
    assert len(grown["new_ids"]) == len(GROW_MORE)
    assert first["ingest"]["measured"] == len(GROW_FIRST)
    assert second["ingest"]["measured"] == len(GROW_MORE) and second["ingest"]["reused"] == len(GROW_FIRST)
    assert second["shots"]["measured"] == len(GROW_MORE) and second["shots"]["reused"] == len(GROW_FIRST)
    for stage in MODEL_STAGES[1:] + ("assign",):
        new_rows = clips_of(out, stage, grown["new_ids"], kept_before=True)
        assert new_rows > 0, stage
        assert second[stage]["measured"] == new_rows, (stage, second[stage])
        assert second[stage]["reused"] == first[stage]["measured"], stage
        assert second[stage]["retried"] == 0
        dropped_before = sum(1 for r in read_stage(out, previous_stage(stage)).to_pylist() if not r["keep"])
        assert second[stage]["passed_through"] == dropped_before, stage
    recorded = json.loads((stage_dir(out, "demix") / "_stage.json").read_text())
    assert {k: recorded[k] for k in ("measured", "reused", "retried")} == {k: second["demix"][k] for k in ("measured", "reused", "retried")}
    fresh = grown["fresh"]
    for stage in MODEL_STAGES:
        assert fresh[stage]["measured"] == second[stage]["measured"] + second[stage]["reused"], stage


def test_a_grown_run_equals_a_fresh_run(grown):
    """Every manifest (the grown run's built from folded measurement stores) equals a fresh run's, but for the split: a grown run keeps the sides its sources were
    given before (recorded placements never move), where a fresh run places all sources at once."""
    ours, fresh = all_tables(grown["root"] / "run"), all_tables(grown["root"] / "fresh")
    assert all(len(MeasurementStore(grown["root"] / "run", s, "clip_id").parts()) == 1 for s in MODEL_STAGES[1:])
    split_columns = ["split", "assign.split_reason"]
    for stage, table in ours.items():
        assert table.num_rows > 0, stage
        if stage == "assign":
            assert table.drop_columns(split_columns).equals(fresh[stage].drop_columns(split_columns))
        else:
            assert table.equals(fresh[stage]), stage
    sides: dict[str, set] = {}
    for row in ours["assign"].to_pylist():
        if row["keep"]:
            sides.setdefault(row["source_id"], set()).add(row["split"])
    assert all(len(s) == 1 for s in sides.values()) and {"train", "test"} <= set().union(*sides.values())


def test_rethresholding_measures_no_row_again_and_looser_only_the_new_ones(grown, tmp_path, ray_session):
    out = tmp_path / "run"
    shutil.copytree(grown["root"] / "run", out)
    stricter = apply_decide("shots", load_config(overrides=[*ALL_FAST, "shots.min_clip_s=4"]), out)
    assert stricter.dropped.get("too_short", 0) > 0
    records = run_all(grown["inputs"], out, ["shots.min_clip_s=4"])
    assert records["shots"]["measured"] == 0 and records["ingest"]["measured"] == 0
    for stage in MODEL_STAGES[1:] + ("assign",):
        assert records[stage]["measured"] == 0, (stage, records[stage])
    assert read_stage(out, "audio_quality").num_rows == read_stage(out, "shots").num_rows
    kept_strict = {r["clip_id"] for r in read_stage(out, "shots").to_pylist() if r["keep"]}
    # looser than the first run: only the clips that pass now and never passed before are measured
    first_kept = {r["clip_id"] for r in read_stage(grown["root"] / "run", "shots").to_pylist() if r["keep"]}
    records = run_all(grown["inputs"], out, ["shots.min_clip_s=1.5"])  # the cartoon's 1.8 s clip now passes
    kept_loose = {r["clip_id"] for r in read_stage(out, "shots").to_pylist() if r["keep"]}
    newly = kept_loose - first_kept
    assert kept_strict < first_kept <= kept_loose and newly, (len(kept_strict), len(first_kept), len(kept_loose))
    assert records["shots"]["measured"] == 0
    assert records["audio_quality"]["measured"] == len(newly)
    assert records["audio_quality"]["reused"] == len(first_kept)


def test_a_measure_config_change_remeasures_that_stage_and_what_reads_it(grown, tmp_path, ray_session):
    out = tmp_path / "run"
    shutil.copytree(grown["root"] / "run", out)
    before = all_tables(out)
    records = run_all(grown["inputs"], out, ["demix.hpss_margin=3.0"])
    for stage in ("ingest", "shots", "audio_quality"):
        assert records[stage]["measured"] == 0, stage
        assert all_tables(out)[stage].equals(before[stage]), stage
    demix_rows = sum(1 for r in read_stage(out, "audio_quality").to_pylist() if r["keep"])
    assert records["demix"]["measured"] == demix_rows > 0 and records["demix"]["reused"] == 0
    for stage in ("voiceover", "caption", "assign"):
        kept_before = sum(1 for r in read_stage(out, previous_stage(stage)).to_pylist() if r["keep"])
        assert records[stage]["measured"] == kept_before, stage  # they read demix's output
    old = {r["clip_id"]: r["demix.measure_key"] for r in before["demix"].to_pylist() if r["demix.measure_key"]}
    new = {r["clip_id"]: r["demix.measure_key"] for r in read_stage(out, "demix").to_pylist() if r["demix.measure_key"]}
    assert old.keys() == new.keys() and all(old[c] != new[c] for c in old)
    assert all(new[c].startswith(r["shots.measure_key"]) for c, r in
               ((r["clip_id"], r) for r in read_stage(out, "demix").to_pylist() if r["clip_id"] in new))


def test_a_row_that_failed_is_retried_on_the_next_run(grown, tmp_path, ray_session):
    out = tmp_path / "run"
    shutil.copytree(grown["root"] / "run", out)
    victim = next(r for r in read_stage(out, "shots").to_pylist() if r["keep"])
    clip = out / victim["clip_uri"]
    hidden = clip.with_name("hidden.mp4")
    # a fault: the clip file is gone while audio_quality runs (its measurements are dropped to force the run)
    shutil.rmtree(stage_dir(out, "audio_quality"))
    clip.rename(hidden)
    cfg = load_config(overrides=["run.progress=false", *ALL_FAST, "audio_quality.max_error_rate=0.5"])
    failed = run_stage("audio_quality", cfg, out)
    rows = {r["clip_id"]: r for r in read_stage(out, "audio_quality").to_pylist()}
    assert failed.errors == 1 and rows[victim["clip_id"]]["error"] and not rows[victim["clip_id"]]["keep"]
    hidden.rename(clip)
    kept_errors = run_stage("audio_quality", cfg.model_copy(update={"run": cfg.run.model_copy(update={"keep_errors": True})}), out)
    assert kept_errors.status == "up-to-date" and kept_errors.errors == 1
    again = run_stage("audio_quality", cfg, out)
    assert (again.measured, again.retried, again.errors) == (1, 1, 0)
    assert again.reused == failed.measured - 1
    fixed = {r["clip_id"]: r for r in read_stage(out, "audio_quality").to_pylist()}[victim["clip_id"]]
    assert fixed["error"] is None and fixed["audio_quality.rms_dbfs"] is not None
    assert read_stage(out, "audio_quality").equals(read_stage(grown["root"] / "run", "audio_quality"))


@pytest.mark.parametrize("as_actors", [False, True], ids=["tasks", "actors"])
def test_a_worker_whose_setup_fails_stops_the_stage_with_its_message(as_actors, reference_run, tmp_path, ray_session):
    from demix_pipeline.runner import _execute
    from demix_pipeline.stages import RunContext

    class BrokenShots(ShotsStage):  # defined here, so Ray pickles it by value
        uses_model = as_actors

        def setup(self):
            raise RuntimeError("CUDA driver not found on this node")

    cfg = load_config(overrides=["run.progress=false", *FAST])
    kept = [dict(r, _key="k") for r in read_stage(reference_run, "ingest").to_pylist() if r["keep"]]
    with pytest.raises(StageFailed, match=r"setup\(\) failed on a worker: RuntimeError: CUDA driver not found"):
        _execute(BrokenShots, cfg, RunContext(out=tmp_path / "out"), [(0, kept[:2]), (1, kept[2:])], "0", progress=False)
    assert not MeasurementStore(tmp_path / "out", "shots", "source_id").parts()


def test_every_row_failing_alike_stops_the_stage():
    from demix_pipeline.runner import _check_not_alike

    with pytest.raises(StageFailed, match="all 3 rows it measured failed alike: KeyError: 'x'"):
        _check_not_alike("demix", 3, ["KeyError: 'x'"] * 3)
    _check_not_alike("demix", 3, ["KeyError: 'x'", "KeyError: 'x'", "ValueError: y"])  # bad inputs differ
    _check_not_alike("demix", 1, ["KeyError: 'x'"])  # one row says nothing about the machinery


def test_decide_on_the_gathered_columns_equals_decide_on_whole_rows(grown, tmp_path):
    """`demix decide` gathers only decide_columns(); with the thresholds of the run it must change nothing."""
    out = tmp_path / "run"
    shutil.copytree(grown["root"] / "run", out)
    before = all_tables(out)
    cfg = load_config(overrides=["run.progress=false", *ALL_FAST])
    for stage in before:
        summary = apply_decide(stage, cfg, out)
        assert summary.status == "decided" and summary.measured == 0
        assert read_stage(out, stage).equals(before[stage]), stage


def _units_measured(out: Path, stage: str) -> int:
    """Rows (sources for shots) a stage's store holds so far; parts being written are not listed yet."""
    from demix_pipeline.stages import stage_class

    unit = stage_class(stage).measure_unit
    store = MeasurementStore(out, stage, unit)
    try:
        return len({v for p in store.parts() for v in pq.read_table(p, columns=[unit]).column(unit).to_pylist()})
    except (OSError, ValueError):  # a part folded away between listing and reading
        return 0


def test_a_run_killed_mid_stream_resumes_to_the_manifests_of_an_uninterrupted_run(grown, tmp_path):
    """SIGKILL `demix run`'s process group while two stages are part-way through the stream (their
    stores hold some of the rows an uninterrupted run measures); the re-run must equal that run."""
    out = tmp_path / "run"
    fresh_out = grown["root"] / "fresh"
    totals = {stage: grown["fresh"][stage]["measured"] for stage in MODEL_STAGES}
    cmd = [sys.executable, "-m", "demix_pipeline.cli", "run", "--input", str(grown["inputs"]), "--out", str(out),
           *[arg for item in ALL_FAST + ["run.progress=false", "run.num_cpus=2"] for arg in ("--set", item)]]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    partial: list[str] = []
    while time.time() < deadline and proc.poll() is None and len(partial) < 2:
        partial = [s for s in MODEL_STAGES if 0 < _units_measured(out, s) < totals[s]]
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(partial) >= 2, partial
    done = {stage: _units_measured(out, stage) for stage in MODEL_STAGES}
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for stage in partial:
        assert f"{stage}: resumed" in resumed.stderr, resumed.stderr[-3000:]
        record = json.loads((stage_dir(out, stage) / "_stage.json").read_text())
        # only what the killed run had not stored is measured; a Ray worker may still store a batch or two
        # after the driver's group is killed, so the re-run can find a stage complete
        assert record["reused"] >= done[stage] and record["measured"] == totals[stage] - record["reused"], record
    ours, fresh = all_tables(out), all_tables(fresh_out)
    for stage, table in ours.items():
        ids = table.column("source_id" if stage == "ingest" else "clip_id").to_pylist()
        assert len(ids) == len(set(ids)), f"{stage}: duplicate rows after resume"
        assert table.equals(fresh[stage]), stage
    assert not list(out.rglob(".*.tmp"))


def test_a_worker_without_the_model_store_stops_the_stage_with_the_models_name(reference_run, tmp_path, ray_session):
    """The driver's store check passed (or the driver has the store); the node that measures has none."""
    from demix_pipeline.runner import _execute
    from demix_pipeline.stages import RunContext

    class StoreShots(ShotsStage):  # defined here, so Ray pickles it by value
        uses_model = True

        @classmethod
        def required_models(cls, config):
            return [("lr_asd", "voiceover.lr_asd_model", ("finetuning_TalkSet.model",))]

    cfg = load_config(overrides=["run.progress=false", *FAST])
    kept = [dict(r, _key="k") for r in read_stage(reference_run, "ingest").to_pylist() if r["keep"]]
    empty_store = tmp_path / "no-models-here"
    empty_store.mkdir()
    with pytest.raises(StageFailed, match=r"model 'lr_asd' .*demix models fetch lr_asd") as failure:
        _execute(StoreShots, cfg, RunContext(out=tmp_path / "out", models_dir=str(empty_store)), [(0, kept[:2])], "0",
                 progress=False)
    assert "setup() failed on a worker" in str(failure.value)
    assert not MeasurementStore(tmp_path / "out", "shots", "source_id").parts()


def test_a_row_past_its_deadline_becomes_an_error_row_and_the_worker_goes_on(reference_run, tmp_path):
    from demix_pipeline.runner import _Worker
    from demix_pipeline.stages import RunContext

    cfg = load_config(overrides=["run.progress=false", "run.row_deadline_s=0.000001", *FAST])
    kept = [dict(r, _key="k") for r in read_stage(reference_run, "ingest").to_pylist() if r["keep"]][:2]
    worker = _Worker(ShotsStage, cfg.model_dump_json(), RunContext(out=tmp_path / "out"))
    rows = worker.measure(kept, batch_size=1)
    assert [r["source_id"] for r in rows] == [r["source_id"] for r in kept]  # one error row each, in order
    assert all(r["error"].startswith("DecodeTimeout: the row ran past its deadline") for r in rows)
    from demix_pipeline import row_deadline

    assert row_deadline.remaining() is None  # the deadline ended with the rows
