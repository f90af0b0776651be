"""`demix export`: what a training team gets, per subset and split, from the `assign` manifest.

For each subset and split: WebDataset tar shards (`shard-000000.tar`, ...) whose samples are keyed
by clip_id and hold `<clip_id>.mp4`, `.speech.flac`, `.effects.flac`, `.music.flac` and `.json`
(caption, its structure, subsets, split and the main measurements), an `index.parquet` (one row per
sample: clip_id, shard, the same metadata and the sample's digest) and `checksums.sha256` over the shards.
Shards are planned from the sorted clip ids and written in parallel as Ray tasks (on the cluster
when RAY_ADDRESS is set), each to a temporary name and renamed, with a `<shard>.tar.json` sidecar.

Exports are content-addressed: a sample's digest (sample_digest) covers its key, the content id of
its clip and of each stem (media/hashing.py content_id) and the sha256 of its JSON; the sidecar
records the shard's keys, their digests and the sha256 and size of the tar as written (hashed while
it is written). A re-run skips a shard only when its tar is there with the recorded size and its
planned keys and digests equal the sidecar's, so a changed caption, split, subset, clip or stem
rewrites exactly the shards holding it, and a removed clip leaves no sample behind (the shards after
it shift); a (subset, split) that lost every clip loses its folder's files. `checksums.sha256` is
written from the sidecars' sha256 (what was written, never rehashed from whatever lies on disk),
and `index.parquet` holds every sample's digest: verify_export (`python -m demix_pipeline.export
RUN [DEST]`) checks the tars against the checksums, each sample in them against the index, and the
index against the digests the manifest gives now. The tar bytes are deterministic (fixed order,
mtime 0, no owner), so an unchanged run exports the same files.
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from demix_pipeline.manifest import write_atomic, write_text_atomic
from demix_pipeline.media.hashing import content_id, content_id_of, file_sha256
from demix_pipeline.stages.assign import SUBSETS
from demix_pipeline.stats import kept_clips, subset_membership
from demix_pipeline.storage import RunPath, ensure_dir, is_local, local_output, remove_file, run_root

STEMS = ("speech", "effects", "music")
DIGEST_FORMAT = "demix-export-1"  # part of every sample digest: a change of what a sample holds changes them all
META_COLUMNS = ("source_id", "source_kind", "start_s", "end_s", "shots.duration_s", "subsets", "split",
                "caption.text", "caption.structure", "caption.captioner", "voiceover.human_count",
                "voiceover.speakers", "voiceover.speech_s", "demix.a_effects_dbfs", "demix.a_music_dbfs")


INDEX_SCHEMA = pa.schema([
    pa.field("clip_id", pa.string()), pa.field("shard", pa.string()), pa.field("source_id", pa.string()),
    pa.field("duration_s", pa.float64()), pa.field("subsets", pa.list_(pa.string())), pa.field("split", pa.string()),
    pa.field("caption", pa.string()), pa.field("human_count", pa.int32()), pa.field("speakers", pa.int32()),
    pa.field("digest", pa.string()),
])
# the manifest column each index field is taken from ("": made by export, the shard's name and the
# sample's digest; the digest is null in an --index-only plan, which reads no media)
INDEX_SOURCES = ("clip_id", "", "source_id", "shots.duration_s", "subsets", "split", "caption.text",
                 "voiceover.human_count", "voiceover.speakers", "")


def sample_metadata(row: dict) -> dict:
    return {"clip_id": row["clip_id"], **{name: row.get(name) for name in META_COLUMNS}}


def sample_json(row: dict) -> bytes:
    return json.dumps(sample_metadata(row), sort_keys=True, default=str).encode()


def sample_files(run: RunPath, row: dict) -> list[tuple[str, RunPath]]:
    """(name in the tar, file) of a sample's media, in the tar's order; its JSON follows them."""
    key = row["clip_id"]
    return [(f"{key}.mp4", run / row["clip_uri"]),
            *((f"{key}.{stem}.flac", run / row[f"demix.{stem}_uri"]) for stem in STEMS)]


def sample_digest(key: str, file_ids: list[str], meta: bytes) -> str:
    """sha256 over the key, the content id of each media file (tar order) and the sha256 of the JSON."""
    text = "\n".join([DIGEST_FORMAT, key, *file_ids, hashlib.sha256(meta).hexdigest()])
    return hashlib.sha256(text.encode()).hexdigest()


def file_content_id(path: RunPath) -> str:
    if is_local(path):
        return content_id(path)
    with path.open("rb") as handle:  # object storage: the same sampled chunks, read by range
        return content_id_of(handle, path.stat().st_size)


def planned_digest(run: RunPath, row: dict) -> str:
    """The digest of the sample this manifest row exports (reads the sampled chunks of its media)."""
    return sample_digest(row["clip_id"], [file_content_id(f) for _, f in sample_files(run, row)], sample_json(row))


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    archive.addfile(info, io.BytesIO(data))


class _Sha256Writer:
    """A file that hashes what is written to it: a tar's checksum is taken from the bytes written."""

    def __init__(self, handle):
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.handle.tell()


def write_shard(path: RunPath, run: RunPath, rows: list[dict]) -> dict:
    """One WebDataset tar, written whole to a temporary name, then renamed (or uploaded whole); returns
    its sidecar: keys, each sample's digest (from the bytes written), sha256 and size of the tar."""
    with local_output(path) as local:
        tmp = local.with_name(f".{local.name}.tmp")
        record = _write_tar(tmp, run, rows)
        tmp.replace(local)
    return record


def _write_tar(tmp: Path, run: RunPath, rows: list[dict]) -> dict:
    digests = []
    with open(tmp, "wb") as handle:
        sink = _Sha256Writer(handle)
        with tarfile.open(fileobj=sink, mode="w", format=tarfile.USTAR_FORMAT) as archive:
            for row in rows:
                ids = []
                for name, source in sample_files(run, row):
                    data = source.read_bytes()
                    ids.append(content_id_of(io.BytesIO(data), len(data)))
                    _add(archive, name, data)
                meta = sample_json(row)
                _add(archive, f"{row['clip_id']}.json", meta)
                digests.append(sample_digest(row["clip_id"], ids, meta))
    return {"format": DIGEST_FORMAT, "keys": [row["clip_id"] for row in rows], "digests": digests,
            "sha256": sink.digest.hexdigest(), "size": sink.size}


def sidecar_path(shard: RunPath) -> RunPath:
    return shard.with_name(shard.name + ".json")


def read_sidecar(shard: RunPath) -> dict | None:
    path = sidecar_path(shard)
    try:
        record = json.loads(path.read_text()) if path.exists() else None
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("format") == DIGEST_FORMAT else None


def export_shard(path: RunPath, run: RunPath, members: pa.Table) -> tuple[str, list[str], bool]:
    """Write the shard unless it is there as its sidecar recorded it, with the same keys and sample
    digests; returns the tar's sha256 as written, the sample digests and whether it was written."""
    rows = members.to_pylist()
    record = read_sidecar(path)
    if record is not None and record["keys"] == [row["clip_id"] for row in rows] and path.exists() \
            and path.stat().st_size == record["size"] and record["digests"] == [planned_digest(run, row) for row in rows]:
        return record["sha256"], record["digests"], False
    record = write_shard(path, run, rows)
    write_text_atomic(json.dumps(record, indent=1) + "\n", sidecar_path(path))
    remove_file(path.with_suffix(".keys"))  # the sidecar of earlier versions
    return record["sha256"], record["digests"], True


def _map_shards(jobs: list[tuple[RunPath, RunPath, pa.Table]]) -> list[tuple[str, list[str], bool]]:
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
            folder = dest / subset / split
            if not members.num_rows:
                if not index_only:
                    _remove_stale(folder, [])  # a folder that lost every clip keeps no sample
                continue
            ensure_dir(folder)
            starts = range(0, members.num_rows, shard_size)
            names = [f"shard-{number:06d}.tar" for number in range(len(starts))]
            results = [] if index_only else _map_shards([(folder / name, run, members.slice(start, shard_size))
                                                          for name, start in zip(names, starts)])
            written = sum(was_written for _, _, was_written in results)
            made = {"shard": pa.array(names).take(pa.array(np.arange(members.num_rows) // shard_size)),
                    "digest": pa.array([d for _, digests, _ in results for d in digests] if results
                                       else [None] * members.num_rows, pa.string())}
            index = pa.Table.from_arrays(
                [members.column(c).cast(f.type) if c else made[f.name] for c, f in zip(INDEX_SOURCES, INDEX_SCHEMA)],
                schema=INDEX_SCHEMA)
            write_atomic(index, folder / "index.parquet")
            summary[f"{subset}/{split}"] = {"clips": members.num_rows, "shards": len(names), "written": written}
            if progress:
                progress(f"export {subset}/{split}: {members.num_rows} clips, {len(names)} shards "
                         + ("(index only)" if index_only else f"({written} written)"))
            if index_only:
                continue
            _remove_stale(folder, names)  # fewer shards than before
            # the sha256 of each tar as it was written (recorded in its sidecar), not rehashed from the disk
            sums = "".join(f"{digest}  {name}\n" for name, (digest, _, _) in zip(names, results))
            write_text_atomic(sums, folder / "checksums.sha256")
    return summary


def _remove_stale(folder: RunPath, names: list[str]) -> None:
    """Shards and sidecars beyond this plan's `names`; with none, the folder's index and checksums too."""
    if not folder.exists():
        return
    for stale in sorted(folder.glob("shard-*.tar"), key=str):
        if stale.name not in names:
            stale.unlink()
    for side in [*folder.glob("shard-*.tar.json"), *folder.glob("shard-*.keys")]:
        if side.name.removesuffix(".json").removesuffix(".keys").removesuffix(".tar") + ".tar" not in names:
            side.unlink()
    if not names:
        for name in ("index.parquet", "checksums.sha256"):
            remove_file(folder / name)


def tar_digests(shard: RunPath) -> list[tuple[str, str]]:
    """(key, digest) of every sample in a tar, in order, recomputed from the bytes it holds."""
    found, ids = [], {}
    with shard.open("rb") as handle, tarfile.open(fileobj=handle, mode="r:") as archive:
        for info in archive:
            key, _, ext = info.name.partition(".")
            data = archive.extractfile(info)
            if ext == "json":
                found.append((key, sample_digest(key, ids.pop(key, []), data.read())))
            else:
                ids.setdefault(key, []).append(content_id_of(data, info.size))
    return found


def verify_export(run: str | RunPath, dest: str | RunPath | None = None, subsets: list[str] | None = None,
                  splits: list[str] | None = None) -> list[str]:
    """What in an export is not what the manifest says now (an empty list: all is); per (subset, split):
    every tar against checksums.sha256, every sample in the tars against index.parquet (digest and
    shard), and the index against the digests of the manifest's samples (a stale export fails here)."""
    run = run_root(run)
    dest = run_root(dest) if dest else run / "export"
    kept = kept_clips(run, ["clip_id", "clip_uri", *(f"demix.{stem}_uri" for stem in STEMS), *META_COLUMNS])
    kept = kept.sort_by("clip_id") if kept.num_rows else kept
    member = subset_membership(kept)
    split_of = kept.column("split").to_numpy(zero_copy_only=False)
    problems = []
    for subset in subsets or list(SUBSETS):
        for split in splits or ["train", "test"]:
            folder = dest / subset / split
            chosen = member[:, SUBSETS.index(subset)] & (split_of == split)
            rows = kept.filter(pa.array(chosen)).to_pylist() if chosen.any() else []
            shards = sorted(folder.glob("shard-*.tar"), key=str) if folder.exists() else []
            if not rows:
                if shards:
                    problems.append(f"{subset}/{split}: {len(shards)} shards, but the manifest has no clip here")
                continue
            if not (folder / "index.parquet").exists() or not (folder / "checksums.sha256").exists():
                problems.append(f"{subset}/{split}: not exported (no index.parquet or checksums.sha256)")
                continue
            with (folder / "index.parquet").open("rb") as handle:
                index = pq.read_table(pa.BufferReader(handle.read()), columns=["clip_id", "shard", "digest"]).to_pylist()
            planned = {row["clip_id"]: planned_digest(run, row) for row in rows}
            indexed = {r["clip_id"]: r["digest"] for r in index}
            differ = sorted(k for k in planned.keys() | indexed.keys() if planned.get(k) != indexed.get(k))
            if differ:
                problems.append(f"{subset}/{split}: {len(differ)} samples of index.parquet differ from the manifest "
                                f"(stale, missing or removed), e.g. {differ[0]}")
            sums = dict(line.split("  ", 1)[::-1] for line in (folder / "checksums.sha256").read_text().splitlines())
            if sorted(sums) != [s.name for s in shards]:
                problems.append(f"{subset}/{split}: checksums.sha256 lists {sorted(sums)}, the folder holds "
                                f"{[s.name for s in shards]}")
            in_tars = {}
            for shard in shards:
                if shard.name in sums and file_sha256(shard) != sums[shard.name]:
                    problems.append(f"{subset}/{split}/{shard.name}: sha256 differs from checksums.sha256")
                for key, digest in tar_digests(shard):
                    in_tars[key] = (shard.name, digest)
            wanted = {r["clip_id"]: (r["shard"], r["digest"]) for r in index}
            wrong = sorted(k for k in wanted.keys() | in_tars.keys() if wanted.get(k) != in_tars.get(k))
            if wrong:
                problems.append(f"{subset}/{split}: {len(wrong)} samples in the tars differ from index.parquet, "
                                f"e.g. {wrong[0]}")
    return problems


if __name__ == "__main__":  # python -m demix_pipeline.export RUN [DEST]: verify an export
    found = verify_export(*sys.argv[1:3])
    print("\n".join(found) or "export verified: tars, checksums.sha256, index.parquet and the manifest agree")
    sys.exit(1 if found else 0)
