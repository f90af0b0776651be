"""Stage `assign`: the five overlapping subsets and the held-out test split (spec section 6).

Subsets, per clip: `basic_face` for clips of talking-head sources; for cinematic and film-related
clips, `single_character` (human count 1), `multiple_characters` (>= 2), `sound_event` (separator
A's effects stem at or above demix's silence_dbfs, on the levels demix.stem_levels picks: the rule that
gives demix.effects_present), `visual_mood` (its music stem likewise). Demix gates those stems with the audio event tags, so they read
"effects are heard" and "music is heard". A clip in no
subset is dropped (`no_subset`).

Split (ours): whole sources go to one side, so no source has clips on both sides. Sources are
ordered by a hash of split_seed and source_id (not by input order, so the order is the same on
every machine). First, for each subset the test side lacks, the first source in that order that
has it goes to test (while at least one source stays in train); then sources join test in that
order while the test side stays within test_size clips. Near-duplicate sources (one
`ingest.group_id`: the same film re-encoded, rescaled, letterboxed or trimmed) are placed as one. Every placement is recorded in
`<out>/artifacts/split/<fingerprint>.json`; a later run over more sources keeps every recorded
placement (and the reason it was given) and only places the new sources, so a clip's side never moves. Changing split_seed or
test_size starts a new record (a new split).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from demix_pipeline.decide import apply_checks, col, ok_rows, replace

from demix_pipeline.manifest import ManifestError, read_stage_columns, write_json_atomic
from demix_pipeline.stages.base import ClipStage
from demix_pipeline.stages.demix import stem_presence

SUBSETS = ("basic_face", "single_character", "multiple_characters", "sound_event", "visual_mood")


def clip_subsets(row: dict, talking_head_kinds: list[str], cinematic_kinds: list[str], silence_dbfs: float = -45.0,
                 stem_levels: str = "gated") -> list[str]:
    """The subsets of one clip (subset_masks on a table of one row)."""
    from demix_pipeline.decide import rows_table

    masks = subset_masks(rows_table("assign", [dict(row, error=None)]), talking_head_kinds, cinematic_kinds,
                         silence_dbfs, stem_levels)
    return [SUBSETS[j] for j in np.nonzero(masks[0])[0]]


def source_order_key(seed: str, source_id: str) -> str:
    return xxhash.xxh3_64_hexdigest(f"{seed}/{source_id}".encode())


_GROUP_NOTE = re.compile(r" \(with its group [^)]*\)$")


def placement_reason(reason: str) -> str:
    """The reason a source was placed for, without the note on groups placed on both sides (that note is
    derived on each run, never recorded; registries of earlier versions appended it on every re-run)."""
    return reason.split("; group ", 1)[0]


def place_sources(sources: dict[str, dict], recorded: dict[str, str], seed: str, test_clips: int,
                  reasons: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """source_id -> (split, reason) for every source; recorded placements are kept as they are, with the
    reason they were first given (`reasons`; `recorded` where none was recorded).

    `sources` maps source_id -> {"clips": n, "subsets": set(...)} for this run's kept clips. One sort of
    the new sources, then linear passes: O(n log n).
    """
    reasons = reasons or {}
    placed = {sid: (side, reasons.get(sid, "recorded")) for sid, side in recorded.items() if sid in sources}
    new = sorted((sid for sid in sources if sid not in recorded), key=lambda sid: source_order_key(seed, sid))
    in_train = sum(1 for side, _ in placed.values() if side == "train")
    unplaced = len(new)
    test_count = sum(sources[sid]["clips"] for sid, (side, _) in placed.items() if side == "test")
    covered: set[str] = set().union(*(sources[sid]["subsets"] for sid, (side, _) in placed.items() if side == "test"))
    having = {subset: (sid for sid in new if subset in sources[sid]["subsets"]) for subset in SUBSETS}

    def to_test(sid: str, reason: str) -> None:
        nonlocal unplaced, test_count
        placed[sid] = ("test", reason)
        unplaced -= 1
        test_count += sources[sid]["clips"]
        covered.update(sources[sid]["subsets"])

    for subset in SUBSETS:
        if subset in covered:
            continue
        candidate = next((sid for sid in having[subset] if sid not in placed), None)
        if candidate is not None and in_train + unplaced - 1 >= 1:
            to_test(candidate, f"covers {subset}")
    for sid in new:
        if sid in placed:
            continue
        if test_count + sources[sid]["clips"] <= test_clips and in_train + unplaced - 1 >= 1:
            to_test(sid, "fills test_size")
        else:
            placed[sid] = ("train", "train")
            in_train += 1
            unplaced -= 1
    return placed


def place_groups(sources: dict[str, dict], groups: dict[str, str], recorded: dict[str, str], seed: str,
                 test_clips: int, reasons: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """place_sources over near-duplicate groups: every source of a group lands on one side.

    A group takes the side recorded for any of its sources (the smallest recorded source_id when
    earlier runs, before a bridging copy arrived, put members on both sides: those keep their recorded
    sides, since a clip's side never moves; the reason says so).
    """
    reasons = {sid: placement_reason(why) for sid, why in (reasons or {}).items()}
    units: dict[str, dict] = {}
    members: dict[str, list[str]] = {}
    for sid, info in sources.items():
        unit = groups.get(sid, sid)
        members.setdefault(unit, []).append(sid)
        entry = units.setdefault(unit, {"clips": 0, "subsets": set()})
        entry["clips"] += info["clips"]
        entry["subsets"] |= info["subsets"]
    unit_recorded, unit_reasons, split_groups = {}, {}, set()
    for unit, sids in members.items():
        sides = {recorded[sid] for sid in sids if sid in recorded}
        first = min((sid for sid in sids if sid in recorded), default=None)
        if first is not None:
            unit_recorded[unit] = recorded[first]
            # what a copy arriving later is placed for: its group's reason (noted once, below)
            unit_reasons[unit] = _GROUP_NOTE.sub("", reasons.get(first, "recorded"))
        if len(sides) > 1:
            split_groups.add(unit)
    placed_units = place_sources(units, unit_recorded, seed, test_clips, unit_reasons)
    placed = {}
    for unit, sids in members.items():
        side, why = placed_units[unit]
        for sid in sids:
            if sid in recorded:
                own = reasons.get(sid, "recorded")
                placed[sid] = (recorded[sid], own if unit not in split_groups else
                               f"{own}; group {unit} was placed on both sides by earlier runs")
            else:
                placed[sid] = (side, why if len(sids) == 1 else f"{why} (with its group {unit})")
    return placed


def subset_masks(table: pa.Table, talking_head_kinds: list[str], cinematic_kinds: list[str], silence_dbfs: float,
                 stem_levels: str) -> np.ndarray:
    """(rows, 5) booleans: membership of each error-free row in each of SUBSETS, column-wise."""
    kind = col(table, "source_kind", pa.string())
    talking = pc.fill_null(pc.is_in(kind, pa.array(talking_head_kinds, pa.string())), False)
    cinematic = pc.and_(pc.fill_null(pc.is_in(kind, pa.array(cinematic_kinds, pa.string())), False), pc.invert(talking))
    count = col(table, "voiceover.human_count", pa.int32())
    # from the measured levels with demix's own rule (not demix's decided columns, which a view downstream
    # of demix does not refresh when only demix's decide config changes)
    present = stem_presence(table, silence_dbfs, stem_levels)
    masks = [talking,
             pc.and_kleene(cinematic, pc.equal(count, 1)),
             pc.and_kleene(cinematic, pc.greater_equal(count, 2)),
             pc.and_(cinematic, present["effects"]),
             pc.and_(cinematic, present["music"])]
    ok = ok_rows(table)
    return np.stack([pc.and_(pc.fill_null(m, False), ok).to_numpy(zero_copy_only=False) for m in masks], axis=1)


class AssignStage(ClipStage):
    name = "assign"
    decide_per_row = False  # the test split places whole sources over the corpus
    # ingest: its near-duplicate groups (ingest.group_id); demix: its presence rule (silence_dbfs, stem_levels)
    decide_reads_stages = ("ingest", "demix")
    # the split places whole sources, seeing all of them through decide_columns()
    decide_reads = ("source_id", "source_kind", "voiceover.human_count", "demix.a_effects_dbfs", "demix.a_music_dbfs",
                    "demix.a_effects_raw_dbfs", "demix.a_music_raw_dbfs",
                    "subsets", "split", "assign.split_reason")

    def measure_one(self, row: dict) -> dict:
        return dict(row)  # everything assign does is a decision over stored measurements

    def _groups(self) -> dict[str, str]:
        """source_id -> ingest.group_id (near-duplicates), from the ingest view: two columns, one row per source."""
        try:
            table = read_stage_columns(self.ctx.out, "ingest", ["source_id", "ingest.group_id"])
        except (ManifestError, FileNotFoundError):
            return {}
        return {sid: gid for sid, gid in zip(table.column("source_id").to_pylist(),
                                             table.column("ingest.group_id").to_pylist()) if gid}

    def registry_path(self) -> Path:
        cfg = self.cfg
        key = self.pipeline_config.fingerprint_of({"seed": cfg.split_seed, "test_size": cfg.test_size})
        return self.ctx.out / "artifacts" / "split" / f"{key}.json"

    def decide_table(self, table: pa.Table) -> pa.Table:
        cfg = self.cfg
        masks = subset_masks(table, cfg.talking_head_kinds, cfg.cinematic_kinds,
                             self.pipeline_config.demix.silence_dbfs, self.pipeline_config.demix.stem_levels)
        ok = ok_rows(table).to_numpy(zero_copy_only=False)
        rows, which = np.nonzero(masks)
        offsets = np.concatenate([[0], np.cumsum(masks.sum(axis=1))]).astype(np.int32)
        subsets = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.array(SUBSETS, dtype=object)[which], pa.string()),
                                           mask=pa.array(~ok))
        table = replace(table, {"subsets": subsets})
        table = apply_checks(table, [("no_subset", pa.array(ok & (masks.sum(axis=1) == 0)))])
        # the split: gather the kept clips' sources (clip count, subsets present) and place them
        kept = table.column("keep").to_numpy(zero_copy_only=False)
        encoded = pc.dictionary_encode(table.column("source_id")).combine_chunks()
        source_index = encoded.indices.to_numpy(zero_copy_only=False)
        source_ids = encoded.dictionary.to_pylist()
        clips = np.bincount(source_index[kept], minlength=len(source_ids))
        present = np.zeros((len(source_ids), len(SUBSETS)), dtype=bool)
        np.logical_or.at(present, source_index[kept], masks[kept])
        sources = {source_ids[i]: {"clips": int(clips[i]), "subsets": {SUBSETS[j] for j in np.nonzero(present[i])[0]}}
                   for i in np.nonzero(clips)[0]}
        total = int(clips.sum())
        test_clips = int(cfg.test_size) if cfg.test_size >= 1 else int(round(cfg.test_size * total))
        path = self.registry_path()
        registry = json.loads(path.read_text()) if path.exists() else {}
        recorded = registry.get("sources", {})
        reasons = {sid: placement_reason(why) for sid, why in registry.get("reasons", {}).items()}
        placed = place_groups(sources, self._groups(), recorded, cfg.split_seed, test_clips, reasons)
        # only new placements are recorded, each with the reason it was made for: a recorded source keeps
        # its side and its reason whatever later runs see, so split_reason does not depend on run history
        new = {sid: placed[sid] for sid in placed if sid not in recorded}
        write_json_atomic({"split_seed": cfg.split_seed, "test_size": cfg.test_size,
                           "sources": {**recorded, **{sid: side for sid, (side, _) in new.items()}},
                           "reasons": {**reasons, **{sid: why for sid, (_, why) in new.items()}}}, path)
        side = pa.array([placed.get(sid, (None, None))[0] for sid in source_ids], pa.string())
        reason = pa.array([placed.get(sid, (None, None))[1] for sid in source_ids], pa.string())
        keep_mask = pa.array(kept)
        none = pa.scalar(None, pa.string())
        return replace(table, {"split": pc.if_else(keep_mask, side.take(pa.array(source_index)), none),
                               "assign.split_reason": pc.if_else(keep_mask, reason.take(pa.array(source_index)), none)})
