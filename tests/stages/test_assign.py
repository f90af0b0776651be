"""Stage assign: the spec's subset rules and the split's properties (no leak, coverage, determinism, stability)."""
from __future__ import annotations

import random


from demix_pipeline.config import load_config
from demix_pipeline.manifest import read_stage
from demix_pipeline.runner import apply_decide, run_stage
from demix_pipeline.stages.assign import SUBSETS, AssignStage, clip_subsets, place_sources
from demix_pipeline.stages.base import RunContext
from demix_pipeline.stats import dataset_stats
from tests.pipeline_helpers import LATE_STAGES_FAST

KINDS = (["talking_head"], ["cinematic", "film_related"], -45.0, "gated")


def clip(kind="cinematic", people=1, effects=-60.0, music=-60.0, **extra):
    return {"source_kind": kind, "voiceover.human_count": people, "demix.a_effects_dbfs": effects,
            "demix.a_music_dbfs": music, **extra}


def test_subset_rules_follow_the_spec():
    assert clip_subsets(clip("talking_head", people=3, effects=-10, music=-10), *KINDS) == ["basic_face"]
    assert clip_subsets(clip(people=1), *KINDS) == ["single_character"]
    assert clip_subsets(clip("film_related", people=4), *KINDS) == ["multiple_characters"]
    assert clip_subsets(clip(people=0, effects=-45.0, music=-44.0), *KINDS) == ["sound_event", "visual_mood"]
    assert clip_subsets(clip(people=0, effects=-45.1, music=None), *KINDS) == []  # a missing level is absent
    raw = clip(people=0, **{"demix.a_music_raw_dbfs": -30.0})  # gated silent, raw loud
    assert clip_subsets(raw, *KINDS) == [] and clip_subsets(raw, *KINDS[:3], "raw") == ["visual_mood"]
    assert clip_subsets(clip("home_video", people=1), *KINDS) == []


def synthetic_rows(sources: int, seed: int) -> list[dict]:
    """Clips of `sources` sources: a few talking-head sources, the rest cinematic with mixed content."""
    rng = random.Random(seed)
    rows = []
    for s in range(sources):
        source_id = f"{seed:02d}{s:014x}"
        kind = "talking_head" if s % 7 == 0 else "cinematic"
        for c in range(rng.randint(1, 12)):
            rows.append({**clip(kind, people=rng.choice([0, 1, 1, 2, 3]), effects=rng.choice([-80, -30]),
                                music=rng.choice([-80, -20])),
                         "clip_id": f"{source_id}-{c:06d}-{c + 1:06d}", "source_id": source_id,
                         "error": None, "keep": True, "drop_reason": None})
    return rows


def decide(rows, tmp_path, *overrides):
    stage = AssignStage(load_config(overrides=list(overrides)), RunContext(tmp_path))
    return stage.decide([dict(r) for r in rows])


def sides(rows) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for row in rows:
        if row["keep"]:
            out.setdefault(row["source_id"], set()).add(row["split"])
    return out


def test_split_is_leak_free_covers_every_subset_and_keeps_its_size(tmp_path):
    rows = synthetic_rows(300, seed=1)
    decided = decide(rows, tmp_path, "assign.test_size=150")
    assert all(len(s) == 1 for s in sides(decided).values())  # no source on both sides
    test = [r for r in decided if r["split"] == "test"]
    assert {s for r in test for s in r["subsets"]} == set(SUBSETS)
    assert 130 <= len(test) <= 150
    assert all(r["split"] is None for r in decided if not r["keep"])
    assert {r["drop_reason"] for r in decided if not r["keep"]} <= {"no_subset"}


def test_split_is_deterministic_and_ignores_input_order(tmp_path):
    rows = synthetic_rows(120, seed=2)
    first = {r["clip_id"]: r["split"] for r in decide(rows, tmp_path / "a", "assign.test_size=0.1")}
    shuffled = list(rows)
    random.Random(5).shuffle(shuffled)
    second = {r["clip_id"]: r["split"] for r in decide(shuffled, tmp_path / "b", "assign.test_size=0.1")}
    assert first == second


def test_adding_sources_never_moves_a_clip(tmp_path):
    old = synthetic_rows(100, seed=3)
    first = decide(old, tmp_path, "assign.test_size=0.1")
    before = {r["clip_id"]: r["split"] for r in first}
    first_reasons = {r["clip_id"]: r["assign.split_reason"] for r in first if r["keep"]}
    grown = old + synthetic_rows(100, seed=4)
    after = decide(grown, tmp_path, "assign.test_size=0.1")
    assert all(after_row["split"] == before[after_row["clip_id"]] for after_row in after if after_row["clip_id"] in before)
    # the sources placed before keep their side and the reason they were given then
    assert {r["clip_id"]: r["assign.split_reason"] for r in after if r["clip_id"] in before and r["keep"]} == first_reasons
    new_sources = {r["source_id"] for r in after if r["clip_id"] not in before and r["keep"]}
    assert new_sources and all(len(sides([r for r in after if r["source_id"] == s])[s]) == 1 for s in new_sources)
    # a different seed is a different split, recorded apart from the first
    reseeded = decide(grown, tmp_path, "assign.test_size=0.1", "assign.split_seed=other")
    assert {r["clip_id"]: r["split"] for r in reseeded} != {r["clip_id"]: r["split"] for r in after}


def test_placement_leaves_train_non_empty_on_tiny_runs():
    sources = {"a": {"clips": 3, "subsets": {"basic_face"}}, "b": {"clips": 2, "subsets": {"single_character"}}}
    placed = place_sources(sources, {}, "seed", test_clips=1000)
    assert sorted(side for side, _ in placed.values()) == ["test", "train"]


def test_assign_through_the_runner_and_stats(late_stages_run, capsys):
    out = late_stages_run["out"]
    cfg = load_config(overrides=["run.progress=false", *LATE_STAGES_FAST, "assign.test_size=0.25"])
    run_stage("assign", cfg, out)
    rows = read_stage(out, "assign").to_pylist()
    kept = [r for r in rows if r["keep"]]
    assert kept and all(r["split"] in ("train", "test") and r["subsets"] for r in kept)
    assert all(len(s) == 1 for s in sides(rows).values())
    stats = dataset_stats(out)
    assert stats["distinct_clips"] == len(kept) and stats["test_clips"] + stats["train_clips"] == len(kept)
    by_name = {s["subset"]: s for s in stats["subsets"]}
    assert by_name["multiple_characters"]["clips"] == sum("multiple_characters" in r["subsets"] for r in kept)
    from demix_pipeline.cli import main

    assert main(["stats", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "multiple_characters" in printed and "distinct clips" in printed and "test split:" in printed
    # re-deciding with the same settings keeps every side
    apply_decide("assign", cfg, out)
    assert {r["clip_id"]: r["split"] for r in read_stage(out, "assign").to_pylist()} == {r["clip_id"]: r["split"] for r in rows}
    assert ({r["clip_id"]: r["assign.split_reason"] for r in read_stage(out, "assign").to_pylist()}
            == {r["clip_id"]: r["assign.split_reason"] for r in rows})  # the reasons too, not `recorded`
    assert run_stage("assign", cfg, out).status == "up-to-date"
    # regrouping near-duplicates (ingest's decide) re-applies assign's decide, which reads the groups
    apply_decide("ingest", load_config(overrides=[*LATE_STAGES_FAST, "ingest.group.max_mean_distance=5"]), out)
    assert run_stage("assign", cfg, out).status != "up-to-date"
    apply_decide("ingest", load_config(overrides=LATE_STAGES_FAST), out)
    assert run_stage("assign", cfg, out).status != "up-to-date"
    assert run_stage("assign", cfg, out).status == "up-to-date"
    # demix's presence rule on the raw stems (A's residue in every clip): assign re-decides, more clips in visual_mood
    raw = load_config(overrides=["run.progress=false", *LATE_STAGES_FAST, "assign.test_size=0.25", "demix.stem_levels=raw"])
    apply_decide("demix", raw, out)
    assert run_stage("assign", raw, out).status != "up-to-date"

    def members(table_rows, subset):
        return {r["clip_id"] for r in table_rows if r["keep"] and subset in r["subsets"]}

    assert members(read_stage(out, "assign").to_pylist(), "visual_mood") > members(rows, "visual_mood")
    apply_decide("demix", cfg, out)
    assert run_stage("assign", cfg, out).status != "up-to-date"
    assert members(read_stage(out, "assign").to_pylist(), "visual_mood") == members(rows, "visual_mood")


def write_ingest_groups(out, groups: dict[str, str]) -> None:
    """An ingest view holding only what assign reads from it: each source's near-duplicate group."""
    from demix_pipeline.manifest import part_name, stage_dir, to_table, write_atomic

    rows = [{"source_id": sid, "source_uri": f"/videos/{sid}.mp4", "source_kind": "cinematic", "keep": True,
             "ingest.group_id": gid} for sid, gid in groups.items()]
    folder = stage_dir(out, "ingest")
    folder.mkdir(parents=True)
    write_atomic(to_table("ingest", rows), folder / part_name(0))
    (folder / "_SUCCESS").write_text("")


def test_near_duplicate_groups_land_on_one_side(tmp_path):
    rows = synthetic_rows(200, seed=6)
    source_ids = sorted({r["source_id"] for r in rows})
    # groups of 1-4 sources (copies of one film from several collections)
    rng, groups, i = random.Random(8), {}, 0
    while i < len(source_ids):
        size = rng.choice([1, 1, 2, 3, 4])
        for sid in source_ids[i:i + size]:
            groups[sid] = source_ids[i]
        i += size
    write_ingest_groups(tmp_path, groups)
    decided = decide(rows, tmp_path, "assign.test_size=0.2")
    by_group: dict[str, set[str]] = {}
    for row in decided:
        if row["keep"]:
            by_group.setdefault(groups[row["source_id"]], set()).add(row["split"])
    assert all(len(s) == 1 for s in by_group.values()), "a group on both sides"
    assert sum(1 for s in by_group.values() if s == {"test"}) >= 5  # the test side holds groups, not nothing
    grouped_test = [r for r in decided if r["keep"] and r["split"] == "test"
                    and sum(g == groups[r["source_id"]] for g in groups.values()) > 1]
    assert grouped_test and all("with its group" in r["assign.split_reason"] for r in grouped_test)
    # a copy that arrives later joins its group's recorded side
    late = [{**r, "clip_id": "ff" + r["clip_id"][2:], "source_id": "ff" + r["source_id"][2:]}
            for r in rows if r["source_id"] == grouped_test[0]["source_id"]]
    groups[late[0]["source_id"]] = groups[grouped_test[0]["source_id"]]
    (tmp_path / "00_ingest").rename(tmp_path / "old_ingest")
    write_ingest_groups(tmp_path, groups)
    again = decide(rows + late, tmp_path, "assign.test_size=0.2")
    assert {r["split"] for r in again if r["source_id"] == late[0]["source_id"] and r["keep"]} == {"test"}


def test_split_reasons_do_not_depend_on_run_history(tmp_path):
    """assign.split_reason is the reason each source was placed for: re-runs, a grown run and regrouping leave it
    as a fresh run gives it (it used to turn into `recorded` or grow a note on every re-run)."""
    rows = synthetic_rows(80, seed=9)
    source_ids = sorted({r["source_id"] for r in rows})
    groups = {sid: source_ids[i - i % 2] for i, sid in enumerate(source_ids)}  # pairs of near-duplicates

    def reasons(decided, of=None):
        return {r["clip_id"]: r["assign.split_reason"] for r in decided if r["keep"] and (of is None or r["source_id"] in of)}

    write_ingest_groups(tmp_path / "fresh", groups)
    fresh = reasons(decide(rows, tmp_path / "fresh", "assign.test_size=0.2"))
    assert "recorded" not in set(fresh.values()) and any("with its group" in why for why in fresh.values())
    run = tmp_path / "run"
    write_ingest_groups(run, groups)
    for _ in range(3):  # the first run, then re-runs over the recorded split
        assert reasons(decide(rows, run, "assign.test_size=0.2")) == fresh
    # a grown run: one new source, a copy of a source placed in test as part of a group, joins that group
    placed = decide(rows, run, "assign.test_size=0.2")
    twin = next(r for r in placed if r["keep"] and r["split"] == "test" and "with its group" in r["assign.split_reason"])
    copy = [{**r, "clip_id": "ff" + r["clip_id"][2:], "source_id": "ff" + r["source_id"][2:]}
            for r in rows if r["source_id"] == twin["source_id"]]
    groups[copy[0]["source_id"]] = groups[twin["source_id"]]
    (run / "00_ingest").rename(run / "ingest_before")
    write_ingest_groups(run, groups)
    for _ in range(2):
        grown = decide(rows + copy, run, "assign.test_size=0.2")
        assert reasons(grown, source_ids) == fresh
        assert set(reasons(grown, {copy[0]["source_id"]}).values()) == {twin["assign.split_reason"]}  # noted once
    # regrouping bridges a train group and a test group: the sources keep their sides and reasons, noted once
    train_unit = groups[next(r["source_id"] for r in placed if r["keep"] and r["split"] == "train")]
    bridged = {sid: groups[twin["source_id"]] if unit == train_unit else unit for sid, unit in groups.items()}
    (run / "00_ingest").rename(run / "ingest_grown")
    write_ingest_groups(run, bridged)
    noted = [reasons(decide(rows + copy, run, "assign.test_size=0.2"), source_ids) for _ in range(2)]
    assert noted[0] == noted[1] and noted[0] != fresh
    assert all(why == fresh[clip_id] or why.startswith(fresh[clip_id] + "; group ") and why.count("; group ") == 1
               for clip_id, why in noted[0].items())
