"""Stage `assign`: the five overlapping subsets and the held-out test split (spec section 6).

Subsets, per clip: `basic_face` for clips of talking-head sources; for cinematic and film-related
clips, `single_character` (human count 1), `multiple_characters` (>= 2), `sound_event` (separator
A's effects stem at or above silence_dbfs), `visual_mood` (its music stem likewise). A clip in no
subset is dropped (`no_subset`).

Split (ours): whole sources go to one side, so no source has clips on both sides. Sources are
ordered by a hash of split_seed and source_id (not by input order, so the order is the same on
every machine). First, for each subset the test side lacks, the first source in that order that
has it goes to test (while at least one source stays in train); then sources join test in that
order while the test side stays within test_size clips. Every placement is recorded in
`<out>/artifacts/split/<fingerprint>.json`; a later run over more sources keeps every recorded
placement and only places the new sources, so a clip's side never moves. Changing split_seed or
test_size starts a new record (a new split).
"""
from __future__ import annotations

import json
from pathlib import Path

import xxhash

from demix_pipeline.manifest import write_json_atomic
from demix_pipeline.stages.base import ClipStage

SUBSETS = ("basic_face", "single_character", "multiple_characters", "sound_event", "visual_mood")


def clip_subsets(row: dict, talking_head_kinds: list[str], cinematic_kinds: list[str], silence_dbfs: float) -> list[str]:
    kind = row["source_kind"]
    if kind in talking_head_kinds:
        return ["basic_face"]
    if kind not in cinematic_kinds:
        return []
    out = []
    count = row.get("voiceover.human_count")
    if count == 1:
        out.append("single_character")
    elif count is not None and count >= 2:
        out.append("multiple_characters")
    effects, music = row.get("demix.a_effects_dbfs"), row.get("demix.a_music_dbfs")
    if effects is not None and effects >= silence_dbfs:
        out.append("sound_event")
    if music is not None and music >= silence_dbfs:
        out.append("visual_mood")
    return out


def source_order_key(seed: str, source_id: str) -> str:
    return xxhash.xxh3_64_hexdigest(f"{seed}/{source_id}".encode())


def place_sources(sources: dict[str, dict], recorded: dict[str, str], seed: str, test_clips: int) -> dict[str, tuple[str, str]]:
    """source_id -> (split, reason) for every source; recorded placements are kept as they are.

    `sources` maps source_id -> {"clips": n, "subsets": set(...)} for this run's kept clips.
    """
    placed = {sid: (side, "recorded") for sid, side in recorded.items() if sid in sources}
    new = sorted((sid for sid in sources if sid not in recorded), key=lambda sid: source_order_key(seed, sid))
    in_test = {sid for sid, (side, _) in placed.items() if side == "test"}
    in_train = {sid for sid, (side, _) in placed.items() if side == "train"}
    test_count = sum(sources[sid]["clips"] for sid in in_test)

    def covered() -> set[str]:
        return set().union(*(sources[sid]["subsets"] for sid in in_test)) if in_test else set()

    for subset in SUBSETS:
        if subset in covered():
            continue
        candidates = [sid for sid in new if sid not in placed and subset in sources[sid]["subsets"]]
        remaining_train = len(in_train) + len([sid for sid in new if sid not in placed]) - 1
        if candidates and remaining_train >= 1:
            sid = candidates[0]
            placed[sid] = ("test", f"covers {subset}")
            in_test.add(sid)
            test_count += sources[sid]["clips"]
    for sid in new:
        if sid in placed:
            continue
        others_left = len(in_train) + len([s for s in new if s not in placed]) - 1
        if test_count + sources[sid]["clips"] <= test_clips and others_left >= 1:
            placed[sid] = ("test", "fills test_size")
            in_test.add(sid)
            test_count += sources[sid]["clips"]
        else:
            placed[sid] = ("train", "train")
            in_train.add(sid)
    return placed


class AssignStage(ClipStage):
    name = "assign"

    def measure_one(self, row: dict) -> dict:
        return dict(row)  # everything assign does is a decision over stored measurements

    def registry_path(self) -> Path:
        cfg = self.cfg
        key = self.pipeline_config.fingerprint_of({"seed": cfg.split_seed, "test_size": cfg.test_size})
        return self.ctx.out / "artifacts" / "split" / f"{key}.json"

    def decide(self, rows: list[dict]) -> list[dict]:
        cfg = self.cfg
        out_rows = []
        sources: dict[str, dict] = {}
        for row in rows:
            row = dict(row)
            if row["error"] is None:
                row["subsets"] = clip_subsets(row, cfg.talking_head_kinds, cfg.cinematic_kinds, cfg.silence_dbfs)
                row["keep"] = bool(row["subsets"])
                row["drop_reason"] = None if row["keep"] else "no_subset"
                if row["keep"]:
                    entry = sources.setdefault(row["source_id"], {"clips": 0, "subsets": set()})
                    entry["clips"] += 1
                    entry["subsets"].update(row["subsets"])
            out_rows.append(row)
        total = sum(entry["clips"] for entry in sources.values())
        test_clips = int(cfg.test_size) if cfg.test_size >= 1 else int(round(cfg.test_size * total))
        path = self.registry_path()
        recorded = json.loads(path.read_text())["sources"] if path.exists() else {}
        placed = place_sources(sources, recorded, cfg.split_seed, test_clips)
        write_json_atomic({"split_seed": cfg.split_seed, "test_size": cfg.test_size,
                           "sources": {**recorded, **{sid: side for sid, (side, _) in placed.items()}}}, path)
        for row in out_rows:
            if row.get("keep") and row["error"] is None:
                row["split"], row["assign.split_reason"] = placed[row["source_id"]]
            else:
                row["split"], row["assign.split_reason"] = None, None
        return out_rows
