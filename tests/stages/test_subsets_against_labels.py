"""sound_event and visual_mood against labels.tsv, through ingest .. demix on every labelled video.

The recipe reads "the music track is not silent" (-45 dB) as "music is present"; demix gates A's
music and effects stems with the audio event tags so that it does. Labels' `unsure` cells are
skipped; a clip that audio_quality drops (silent) is in no subset. Nothing here was tuned: the
tagger's threshold is the sigmoid midpoint and -45 dB is the paper's level (what was chosen on
tests/data/tune_files.txt, and the held-out figures, are in the stages' YAML and the closing note).
"""
from __future__ import annotations

import shutil

import pytest

from demix_pipeline.config import load_config
from demix_pipeline.evaluation import label_rows, shot_of_clip
from demix_pipeline.manifest import read_stage
from demix_pipeline.runner import run_stage
from tests.pipeline_helpers import CHEAP_SHOTS, run_pipeline

FAST = ["shots.encode.preset=ultrafast", CHEAP_SHOTS, "audio_quality.resources.shard_size=4",
        "demix.resources.shard_size=2"]


@pytest.fixture(scope="module")
def presence(media, tmp_path_factory, ray_session) -> list[dict]:
    """One row per clip that maps to a labelled shot: labels' music/effects and the pipeline's decisions."""
    labels = label_rows(media)
    folder = tmp_path_factory.mktemp("labelled")
    names = {}
    for video in sorted({row["video_path"] for row in labels}):
        name = video.replace("/", "__")
        shutil.copy(media / video, folder / name)
        names[name] = video
    out = tmp_path_factory.mktemp("subsets_run")
    run_pipeline([folder], out, FAST)
    cfg = load_config(overrides=["run.progress=false", *FAST])
    for stage in ("audio_quality", "demix"):
        run_stage(stage, cfg, out)
    sources = {r["source_id"]: names[r["source_uri"].rsplit("/", 1)[1]] for r in read_stage(out, "ingest").to_pylist()}
    demixed = {r["clip_id"]: r for r in read_stage(out, "demix").to_pylist() if r["error"] is None}
    rows = []
    for clip in read_stage(out, "audio_quality").to_pylist():
        if clip["error"] is not None:
            continue
        video = sources[clip["source_id"]]
        label = shot_of_clip(labels, video, clip["start_s"], clip["end_s"])
        if label is None:
            continue
        decided = demixed.get(clip["clip_id"]) if clip["keep"] else None
        rows.append({"video": video, "shot": label["shot_index"], "music": label["music"], "effects": label["effects"],
                     "music_present": bool(decided and decided["demix.music_present"]),
                     "effects_present": bool(decided and decided["demix.effects_present"])})
    return rows


def agreement(presence: list[dict], kind: str) -> tuple[float, list[str]]:
    judged = [row for row in presence if row[kind] in ("yes", "no")]
    assert len(judged) >= 25, len(judged)
    wrong = [f"{row['video']}#{row['shot']}" for row in judged if row[f"{kind}_present"] != (row[kind] == "yes")]
    return 1 - len(wrong) / len(judged), wrong


def test_visual_mood_agrees_with_the_music_labels(presence):
    """Measured: 38 of 39 clips (ungated levels: 29 of 39); the one miss is a child rapping over a beat that
    labels.tsv calls speech only."""
    share, wrong = agreement(presence, "music")
    assert share >= 0.90, (share, wrong)


def test_sound_event_agrees_with_the_effects_labels_better_than_raw_levels(presence):
    """Measured 27 of 31 (0.87; ungated levels: 22 of 31). The misses: Big Buck Bunny's bird
    and rustle sounds under its score (YAMNet hears only music there: tune file) and GoldenEye's quiet effects
    under dialogue (heard, but their stem stays below -45 dBFS)."""
    share, wrong = agreement(presence, "effects")
    assert share >= 0.80, (share, wrong)


@pytest.mark.xfail(strict=True, reason="issue 14's target 0.90 for sound_event is not met: 0.87 (27 of 31)")
def test_sound_event_reaches_the_target(presence):
    assert agreement(presence, "effects")[0] >= 0.90
