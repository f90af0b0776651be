"""Run figures from the manifests alone: per-stage status, and the paper-style subset table."""
from __future__ import annotations

import json

from demix_pipeline.config import STAGE_ORDER
from demix_pipeline.manifest import read_stage, stage_dir
from demix_pipeline.measurements import MEASURE_DIR
from demix_pipeline.stages.assign import SUBSETS
from demix_pipeline.storage import RunPath


def dataset_stats(out: str | RunPath) -> dict:
    rows = [r for r in read_stage(out, "assign").to_pylist() if r["keep"]]

    def hours(selected: list[dict]) -> float:
        return sum(r["shots.duration_s"] or 0.0 for r in selected) / 3600.0

    subsets = []
    for name in SUBSETS:
        members = [r for r in rows if name in (r["subsets"] or [])]
        subsets.append({"subset": name, "clips": len(members), "hours": hours(members),
                        "test_clips": sum(r["split"] == "test" for r in members),
                        "train_clips": sum(r["split"] == "train" for r in members)})
    test = [r for r in rows if r["split"] == "test"]
    train = [r for r in rows if r["split"] == "train"]
    return {"subsets": subsets, "distinct_clips": len(rows), "hours": hours(rows),
            "test_clips": len(test), "train_clips": len(train), "test_hours": hours(test), "train_hours": hours(train),
            "test_sources": len({r["source_id"] for r in test}), "train_sources": len({r["source_id"] for r in train})}


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
