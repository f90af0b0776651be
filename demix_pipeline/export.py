"""`demix export`: what a training team gets, per subset and split, from the `assign` manifest.

For each subset and split: WebDataset tar shards (`shard-000000.tar`, ...) whose samples are keyed
by clip_id and hold `<clip_id>.mp4`, `.speech.flac`, `.effects.flac`, `.music.flac` and `.json`
(caption, its structure, subsets, split and the main measurements), an `index.parquet` (one row per
sample: clip_id, shard, and the same metadata) and `checksums.sha256` over the shards.
Shards are planned from the sorted clip ids and written in parallel as Ray tasks (on the cluster
when RAY_ADDRESS is set), each to a temporary name and renamed, with a `.keys` sidecar; a re-run skips every shard whose sidecar matches its planned keys (resume), and
the tar bytes are deterministic (fixed order, mtime 0, no owner), so an unchanged run exports the
same files.
"""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from demix_pipeline.manifest import write_atomic, write_text_atomic
from demix_pipeline.media.hashing import file_sha256
from demix_pipeline.stages.assign import SUBSETS
from demix_pipeline.stats import kept_clips, subset_membership
from demix_pipeline.storage import RunPath, ensure_dir, local_output, remove_file, run_root

STEMS = ("speech", "effects", "music")
META_COLUMNS = ("source_id", "source_kind", "start_s", "end_s", "shots.duration_s", "subsets", "split",
                "caption.text", "caption.structure", "caption.captioner", "voiceover.human_count",
                "voiceover.speakers", "voiceover.speech_s", "demix.a_effects_dbfs", "demix.a_music_dbfs")


INDEX_SCHEMA = pa.schema([
    pa.field("clip_id", pa.string()), pa.field("shard", pa.string()), pa.field("source_id", pa.string()),
    pa.field("duration_s", pa.float64()), pa.field("subsets", pa.list_(pa.string())), pa.field("split", pa.string()),
    pa.field("caption", pa.string()), pa.field("human_count", pa.int32()), pa.field("speakers", pa.int32()),
])
# the manifest column each index field is taken from ("" : the shard's name)
INDEX_SOURCES = ("clip_id", "", "source_id", "shots.duration_s", "subsets", "split", "caption.text",
                 "voiceover.human_count", "voiceover.speakers")


def sample_metadata(row: dict) -> dict:
    return {"clip_id": row["clip_id"], **{name: row.get(name) for name in META_COLUMNS}}


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    archive.addfile(info, io.BytesIO(data))


def write_shard(path: RunPath, run: RunPath, rows: list[dict]) -> None:
    """One WebDataset tar, written whole to a temporary name, then renamed (or uploaded whole)."""
    with local_output(path) as local:
        tmp = local.with_name(f".{local.name}.tmp")
        _write_tar(tmp, run, rows)
        tmp.replace(local)


def _write_tar(tmp: Path, run: RunPath, rows: list[dict]) -> None:
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as archive:
        for row in rows:
            key = row["clip_id"]
            _add(archive, f"{key}.mp4", (run / row["clip_uri"]).read_bytes())
            for stem in STEMS:
                _add(archive, f"{key}.{stem}.flac", (run / row[f"demix.{stem}_uri"]).read_bytes())
            _add(archive, f"{key}.json", json.dumps(sample_metadata(row), sort_keys=True, default=str).encode())



def export_shard(path: RunPath, run: RunPath, members: pa.Table) -> tuple[str, bool]:
    """Write the shard unless its sidecar lists the same keys; returns its sha256 and whether it was written."""
    keys = "\n".join(members.column("clip_id").to_pylist())
    sidecar = path.with_suffix(".keys")
    write = not (path.exists() and sidecar.exists() and sidecar.read_text() == keys)
    if write:
        write_shard(path, run, members.to_pylist())
        sidecar.write_text(keys)
    return file_sha256(path), write


def _map_shards(jobs: list[tuple[RunPath, RunPath, pa.Table]]) -> list[tuple[str, bool]]:
    """export_shard over the jobs: one Ray task per shard (on the cluster of RAY_ADDRESS, else a local
    Ray) when there are several, so shards are written and hashed in parallel; in-process for one."""
    if len(jobs) <= 1:
        return [export_shard(*job) for job in jobs]
    import ray

    from demix_pipeline.config import load_config
    from demix_pipeline.runner import ensure_ray

    ensure_ray(load_config())
    task = ray.remote(num_cpus=1, max_retries=1)(export_shard)
    return ray.get([task.remote(*job) for job in jobs])


def export(run: str | RunPath, dest: str | RunPath | None = None, shard_size: int = 1000,
           subsets: list[str] | None = None, splits: list[str] | None = None, progress=print,
           index_only: bool = False) -> dict:
    """Write every (subset, split) folder under dest (default <run>/export); returns counts per folder.
    `index_only` writes each folder's index.parquet (which clip goes to which shard) and no tar, to
    check the plan of a large export before writing it."""
    run = run_root(run)
    dest = run_root(dest) if dest else run / "export"
    columns = ([c for c in INDEX_SOURCES if c] if index_only
               else ["clip_id", "clip_uri", *(f"demix.{stem}_uri" for stem in STEMS), *META_COLUMNS])
    kept = kept_clips(run, columns)  # only what the samples and the index hold, column-wise
    kept = kept.sort_by("clip_id") if kept.num_rows else kept
    member = subset_membership(kept)
    split_of = kept.column("split").to_numpy(zero_copy_only=False)
    summary = {}
    for subset in subsets or list(SUBSETS):
        for split in splits or ["train", "test"]:
            chosen = member[:, SUBSETS.index(subset)] & (split_of == split)
            members = kept.filter(pa.array(chosen)) if chosen.any() else kept.slice(0, 0)
            if not members.num_rows:
                continue
            folder = dest / subset / split
            ensure_dir(folder)
            starts = range(0, members.num_rows, shard_size)
            names = [f"shard-{number:06d}.tar" for number in range(len(starts))]
            results = [] if index_only else _map_shards([(folder / name, run, members.slice(start, shard_size))
                                                          for name, start in zip(names, starts)])
            written = sum(was_written for _, was_written in results)
            shard_of = pa.array(names).take(pa.array(np.arange(members.num_rows) // shard_size))
            index = pa.Table.from_arrays(
                [members.column(c).cast(f.type) if c else shard_of for c, f in zip(INDEX_SOURCES, INDEX_SCHEMA)],
                schema=INDEX_SCHEMA)
            write_atomic(index, folder / "index.parquet")
            summary[f"{subset}/{split}"] = {"clips": members.num_rows, "shards": len(names), "written": written}
            if progress:
                progress(f"export {subset}/{split}: {members.num_rows} clips, {len(names)} shards "
                         + ("(index only)" if index_only else f"({written} written)"))
            if index_only:
                continue
            for stale in sorted(folder.glob("shard-*.tar"), key=str)[len(names):]:  # fewer shards than before
                stale.unlink()
                remove_file(stale.with_suffix(".keys"))
            sums = "".join(f"{digest}  shard-{n:06d}.tar\n" for n, (digest, _) in enumerate(results))
            write_text_atomic(sums, folder / "checksums.sha256")
    return summary
