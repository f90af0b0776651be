"""Run figures from the manifests alone: per-stage status, and the paper-style subset table."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from demix_pipeline.config import STAGE_ORDER
from demix_pipeline.manifest import read_stage_columns, stage_dir
from demix_pipeline.measurements import MEASURE_DIR
from demix_pipeline.stages.assign import SUBSETS
from demix_pipeline.storage import RunPath


def subset_membership(table: pa.Table) -> np.ndarray:
    """(rows, 5) booleans from the `subsets` list column: which of SUBSETS each row is in."""
    subsets = table.column("subsets").combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(subsets), 0).to_numpy(zero_copy_only=False)
    names = pc.list_flatten(subsets).to_numpy(zero_copy_only=False)
    rows = np.repeat(np.arange(table.num_rows), lengths)
    member = np.zeros((table.num_rows, len(SUBSETS)), dtype=bool)
    for j, name in enumerate(SUBSETS):
        member[rows[names == name], j] = True
    return member


def kept_clips(out: str | RunPath, columns: list[str] = ()) -> pa.Table:
    """The assign stage's kept rows, only the columns the figures need."""
    wanted = list(dict.fromkeys(["keep", "source_id", "subsets", "split", "shots.duration_s", *columns]))
    table = read_stage_columns(out, "assign", wanted)
    return table.filter(pc.fill_null(table.column("keep"), False))


def dataset_stats(out: str | RunPath, kept: pa.Table | None = None) -> dict:
    kept = kept_clips(out) if kept is None else kept
    member = subset_membership(kept)
    hours_of = pc.fill_null(kept.column("shots.duration_s"), 0.0).to_numpy(zero_copy_only=False) / 3600.0
    split = kept.column("split").to_numpy(zero_copy_only=False)
    sources = kept.column("source_id").to_numpy(zero_copy_only=False)
    test, train = split == "test", split == "train"
    subsets = [{"subset": name, "clips": int(member[:, j].sum()), "hours": float(hours_of[member[:, j]].sum()),
                "test_clips": int((member[:, j] & test).sum()), "train_clips": int((member[:, j] & train).sum())}
               for j, name in enumerate(SUBSETS)]
    return {"subsets": subsets, "distinct_clips": kept.num_rows, "hours": float(hours_of.sum()),
            "test_clips": int(test.sum()), "train_clips": int(train.sum()),
            "test_hours": float(hours_of[test].sum()), "train_hours": float(hours_of[train].sum()),
            "test_sources": len(set(sources[test])), "train_sources": len(set(sources[train]))}


def stats_table(stats: dict) -> tuple[list[str], list[list[str]]]:
    header = ["subset", "clips", "hours", "train clips", "test clips"]
    body = [[s["subset"], str(s["clips"]), f"{s['hours']:.3f}", str(s["train_clips"]), str(s["test_clips"])]
            for s in stats["subsets"]]
    body.append(["distinct clips", str(stats["distinct_clips"]), f"{stats['hours']:.3f}", str(stats["train_clips"]),
                 str(stats["test_clips"])])
    return header, body


def status_rows(out: str | RunPath) -> list[dict]:
    rows = []
    for name in STAGE_ORDER:
        folder = stage_dir(out, name)
        if not folder.exists():
            continue
        marker = folder / "_measure.json"
        measure = json.loads(marker.read_text()) if marker.exists() else {}
        record = json.loads((folder / "_stage.json").read_text()) if (folder / "_stage.json").exists() else {}
        stamp = measure.get("run_stamp")
        done = len(list((folder / MEASURE_DIR).glob(f"m-{stamp}-*.parquet"))) if stamp else 0
        total = measure.get("shards", done)
        finished = (folder / "_SUCCESS").exists()
        rows.append({
            "stage": folder.name, "state": "done" if finished else "incomplete",
            "rows_in": measure.get("rows_in"), "rows_out": record.get("rows_out") if finished else None,
            "kept": record.get("kept") if finished else None, "errors": record.get("errors") if finished else None,
            **{key: record.get(key) if finished else None for key in ("measured", "reused", "retried", "passed_through")},
            "dropped": record.get("dropped_by_reason", {}) if finished else {},
            "shards_done": done, "shards_pending": max(0, total - done),
            "hours_out": record.get("hours_out") if finished else None,
            "hours_kept": record.get("hours_kept") if finished else None,
        })
    return rows
