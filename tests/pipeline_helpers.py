"""Run ingest + shots in-process (on the test session's Ray) and read the results back; the shared
run of the later stages over real clips."""
from __future__ import annotations

import shutil
from pathlib import Path

from demix_pipeline.config import load_config
from demix_pipeline.manifest import read_stage
from demix_pipeline.runner import run_stage
from demix_pipeline.evaluation import label_rows, shot_of_clip
from demix_pipeline.stages.ingest import collect_sources


def run_pipeline(inputs: list[Path], out: Path, overrides: list[str] | None = None, kind: str = "cinematic",
                 shots: bool = True):
    """ingest (and shots unless `shots` is false); the rows of both (shots' are [] when it did not run)."""
    cfg = load_config(overrides=["run.progress=false", *(overrides or [])])
    sources = collect_sources([str(p) for p in inputs], kind, cfg.ingest.extensions)
    run_stage("ingest", cfg, out, sources=sources)
    if not shots:
        return read_stage(out, "ingest").to_pylist(), []
    run_stage("shots", cfg, out)
    return read_stage(out, "ingest").to_pylist(), read_stage(out, "shots").to_pylist()


# Where the test is not about cut quality, our cheap detector (the default's quality is tested in
# tests/backends/test_shot_detection.py and tests/stages/test_shots.py) keeps TransNetV2's CPU cost out:
# 5 CPU-s instead of 70 over LATE_STAGES_FILES.
CHEAP_SHOTS = "shots.detector.name=demix"


# the default detector here: the shared run's clips are the ones a user gets, and tests pick clips by
# their labelled shot (a jump cut the cheap detector cuts at splits a shot's speech unevenly)
LATE_STAGES_FAST = ["shots.encode.preset=ultrafast", "voiceover.resources.shard_size=4"]
LATE_STAGES_FILES = [
    "talking_head_single/videoretalking_face_1.mp4", "talking_head_single/videoretalking_face_2.mp4",
    "talking_head_single/videoretalking_face_3.mp4", "talking_head_single/liveportrait_d11_child_speaking.mp4",
    "talking_head_single/datajuicer_video5_woman_vertical.mp4",
    "multi_person_dialogue/datajuicer_video3_two_women_talk_vertical.mp4",
    "multi_person_dialogue/pyscenedetect_bbc_documentary_issue195.mp4",
    "music/liveportrait_d10_face_with_music.mp4", "music/difffoley_drum.mp4", "music/moviepy_big_buck_bunny_0_30.webm",
]


def run_late_stages(media: Path, workdir: Path) -> dict:
    """ingest .. caption over LATE_STAGES_FILES; `rows(stage)` gives that stage's error-free measured rows,
    each with `video_path` (relative to media) and `label` (its labels.tsv shot)."""
    from demix_pipeline.runner import run_stage

    folder, out = workdir / "inputs", workdir / "run"
    folder.mkdir(parents=True)
    names = {}
    for name in LATE_STAGES_FILES:
        shutil.copy(media / name, folder / name.split("/")[1])
        names[name.split("/")[1]] = name
    run_pipeline([folder], out, LATE_STAGES_FAST)
    cfg = load_config(overrides=["run.progress=false", *LATE_STAGES_FAST])
    for stage in ("audio_quality", "demix", "voiceover", "caption"):
        run_stage(stage, cfg, out)
    sources = {r["source_id"]: names[r["source_uri"].rsplit("/", 1)[1]] for r in read_stage(out, "ingest").to_pylist()}
    labels = label_rows(media)

    def rows(stage: str) -> list[dict]:
        measured = f"{stage}.human_count" if stage == "voiceover" else f"{stage}.text"
        out_rows = [r for r in read_stage(out, stage).to_pylist() if r["error"] is None and r.get(measured) is not None]
        for row in out_rows:
            row["video_path"] = sources[row["source_id"]]
            row["label"] = shot_of_clip(labels, row["video_path"], row["start_s"], row["end_s"])
        return out_rows

    return {"out": out, "rows": rows}
