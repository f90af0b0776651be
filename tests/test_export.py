"""demix export: WebDataset shards read back with the webdataset package, index, checksums, resume, determinism."""
from __future__ import annotations

import hashlib
import io
import json

import pyarrow.parquet as pq
import soundfile

from demix_pipeline.config import load_config
from demix_pipeline.export import export
from demix_pipeline.manifest import read_stage
from demix_pipeline.runner import run_stage
from tests.pipeline_helpers import LATE_STAGES_FAST


def test_export_shards_are_complete_resumable_and_deterministic(late_stages_run, tmp_path):
    import webdataset

    run = late_stages_run["out"]
    run_stage("assign", load_config(overrides=["run.progress=false", *LATE_STAGES_FAST, "assign.test_size=0.25"]), run)
    kept = [r for r in read_stage(run, "assign").to_pylist() if r["keep"]]
    dest = tmp_path / "export"
    summary = export(run, dest, shard_size=3, progress=None)
    assert summary
    for name, counts in summary.items():
        subset, split = name.split("/")
        folder = dest / subset / split
        expected = sorted(r["clip_id"] for r in kept if subset in r["subsets"] and r["split"] == split)
        shards = sorted(folder.glob("shard-*.tar"))
        assert len(shards) == counts["shards"] == -(-len(expected) // 3)
        seen = []
        for sample in webdataset.WebDataset([str(s) for s in shards], shardshuffle=False):
            assert {k for k in sample if not k.startswith("__")} == {"mp4", "speech.flac", "effects.flac", "music.flac", "json"}
            meta = json.loads(sample["json"])
            assert meta["clip_id"] == sample["__key__"] and subset in meta["subsets"] and meta["split"] == split
            assert meta["caption.text"]
            row = next(r for r in kept if r["clip_id"] == meta["clip_id"])
            assert sample["mp4"] == (run / row["clip_uri"]).read_bytes()
            speech, rate = soundfile.read(io.BytesIO(sample["speech.flac"]))
            assert rate == 48000 and len(speech) > 0
            seen.append(sample["__key__"])
        assert seen == expected
        index = pq.read_table(folder / "index.parquet").to_pylist()
        assert [r["clip_id"] for r in index] == expected and all(r["split"] == split for r in index)
        sums = dict(line.split("  ")[::-1] for line in (folder / "checksums.sha256").read_text().splitlines())
        assert sums == {s.name: hashlib.sha256(s.read_bytes()).hexdigest() for s in shards}
    # resume: nothing to redo; a lost shard is rewritten byte for byte
    assert all(c["written"] == 0 for c in export(run, dest, shard_size=3, progress=None).values())
    name = next(iter(summary))
    lost = dest / name / "shard-000000.tar"
    before = lost.read_bytes()
    lost.unlink()
    again = export(run, dest, shard_size=3, progress=None)
    assert again[name]["written"] == 1 and lost.read_bytes() == before
