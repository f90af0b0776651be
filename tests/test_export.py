"""demix export: WebDataset shards read back with the webdataset package, index, checksums, resume, determinism."""
from __future__ import annotations

import hashlib
import io
import json
import shutil

import pyarrow.parquet as pq
import soundfile

from demix_pipeline.config import load_config
from demix_pipeline.export import export, sample_json, verify_export
from demix_pipeline.manifest import read_stage
from demix_pipeline.runner import apply_decide, run_stage
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


def caption_change(run) -> tuple[list[str], set[str]]:
    """A caption measure setting that words the scene of the fewest exported clips (at least one) another way:
    the low threshold of one picture measure raised just past the lowest value in its middle band."""
    kept = {r["clip_id"] for r in read_stage(run, "assign").to_pylist() if r["keep"]}
    rows = [r for r in read_stage(run, "caption").to_pylist() if r["clip_id"] in kept]
    cfg = load_config().caption
    best = None
    for measure, low, high in (("brightness", "dark_luma", "bright_luma"), ("colourfulness", "muted_chroma", "vivid_chroma"),
                               ("motion", "still_motion", "busy_motion")):
        middle = sorted(r[f"caption.{measure}"] for r in rows if r[f"caption.{measure}"] is not None
                        and getattr(cfg, low) <= r[f"caption.{measure}"] <= getattr(cfg, high))
        if middle:
            flipped = {r["clip_id"] for r in rows if r[f"caption.{measure}"] is not None
                       and getattr(cfg, low) <= r[f"caption.{measure}"] <= middle[0]}
            if best is None or len(flipped) < len(best[1]):
                best = ([f"caption.{low}={middle[0] + 1e-6!r}"], flipped)
    assert best and len(best[1]) < len(kept), "no caption setting rewords only some clips"
    return best


def shard_files(dest):
    return {p.relative_to(dest): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in dest.rglob("shard-*.tar")}


def test_reexport_rewrites_exactly_the_shards_a_caption_change_touches(late_stages_run, tmp_path):
    """The stale export of the issue: re-captioning with another setting used to export '0 written' and leave
    the old captions in the tars (the sidecar listed only keys); now exactly the shards holding a changed sample
    are rewritten, every sample's JSON is the manifest's, and verify_export checks tars, index and manifest."""
    import webdataset

    run = tmp_path / "run"
    shutil.copytree(late_stages_run["out"], run, symlinks=True)  # the shared run stays as the other tests see it
    base = ["run.progress=false", *LATE_STAGES_FAST, "assign.test_size=0.25"]
    run_stage("assign", load_config(overrides=base), run)
    dest = tmp_path / "export"
    export(run, dest, shard_size=2, progress=None)
    assert verify_export(run, dest) == []
    before_rows = {r["clip_id"]: r for r in read_stage(run, "assign").to_pylist() if r["keep"]}
    before = shard_files(dest)

    setting, reworded = caption_change(run)
    changed_cfg = load_config(overrides=[*base, *setting])
    run_stage("caption", changed_cfg, run)
    run_stage("assign", changed_cfg, run)
    after_rows = {r["clip_id"]: r for r in read_stage(run, "assign").to_pylist() if r["keep"]}
    assert after_rows.keys() == before_rows.keys()
    changed = {k for k in after_rows if sample_json(after_rows[k]) != sample_json(before_rows[k])}
    assert changed and changed <= reworded and all(
        after_rows[k]["caption.text"] != before_rows[k]["caption.text"] for k in changed)
    problems = verify_export(run, dest)  # the old export is now stale, and verifying says so
    assert problems and all("differ from the manifest" in p for p in problems)
    from demix_pipeline.cli import main

    assert main(["export", "--out", str(run), "--dest", str(dest), "--verify"]) == 1  # the same check, from the CLI

    summary = export(run, dest, shard_size=2, progress=None)
    affected = set()
    for name in summary:
        index = pq.read_table(dest / name / "index.parquet").to_pylist()
        affected |= {dest.joinpath(name, r["shard"]).relative_to(dest) for r in index if r["clip_id"] in changed}
        assert summary[name]["written"] == sum(p.parent == dest.joinpath(name).relative_to(dest) for p in affected)
    after = shard_files(dest)
    assert after.keys() == before.keys() and affected
    assert {p for p in after if after[p] != before[p]} == affected  # rewritten: new file; the rest untouched
    assert all(after[p][2] != before[p][2] for p in affected)
    for name in summary:
        folder = dest / name
        shards = sorted(folder.glob("shard-*.tar"))
        for sample in webdataset.WebDataset([str(s) for s in shards], shardshuffle=False):
            assert json.loads(sample["json"]) == json.loads(sample_json(after_rows[sample["__key__"]]))
        sums = dict(line.split("  ")[::-1] for line in (folder / "checksums.sha256").read_text().splitlines())
        assert sums == {s.name: hashlib.sha256(s.read_bytes()).hexdigest() for s in shards}
    assert verify_export(run, dest) == []
    assert all(c["written"] == 0 for c in export(run, dest, shard_size=2, progress=None).values())

    # clips leaving the export take their samples along: without talking-head kinds basic_face is empty
    apply_decide("assign", load_config(overrides=[*base, *setting, "assign.talking_head_kinds=[]"]), run)
    gone = export(run, dest, shard_size=2, progress=None)
    assert not any(name.startswith("basic_face/") for name in gone) and all(c["written"] == 0 for c in gone.values())
    assert not list((dest / "basic_face").rglob("shard-*")) and verify_export(run, dest) == []
    apply_decide("assign", changed_cfg, run)
    back = export(run, dest, shard_size=2, progress=None)
    assert shard_files(dest).keys() == after.keys() and all(
        (dest / p).read_bytes() == after[p][2] for p in after)  # deterministic: the same bytes again
    assert sum(c["written"] for c in back.values()) == sum(p.parts[0] == "basic_face" for p in after)

    # a tar changed on disk fails the checksums, which come from what was written, not from the disk
    victim = dest / next(iter(sorted(after)))
    data = bytearray(victim.read_bytes())
    data[600] ^= 0xFF  # a byte of the first sample's clip
    victim.write_bytes(bytes(data))
    assert any("sha256 differs" in p for p in verify_export(run, dest))
