"""Stage `ingest`: one row per source file; probe, content id, perceptual fingerprint, and reject what cannot be used.

decide (over the whole corpus): drop unusable files and exact duplicates (same content id), then
group near-duplicates by their fingerprints (`ingest.group_id`, the smallest source_id of the
group; `ingest.group_reason` names the source it matched and the figures). The test split keeps
each group on one side (stages/assign.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import av
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from demix_pipeline.decide import apply_checks, col, only_ok, replace
from demix_pipeline.media import fingerprint as fp
from demix_pipeline.media.hashing import content_id
from demix_pipeline.media.probe import ProbeError, probe
from demix_pipeline.stages.base import Stage, failed

SOURCE_KINDS = ("talking_head", "cinematic", "film_related")


class UndecodableError(ProbeError):
    drop_reason = "undecodable"


class IngestStage(Stage):
    name = "ingest"
    version = "2"  # 2: perceptual fingerprint
    id_column = "source_id"
    measure_unit = "source_uri"
    decide_per_row = False  # duplicates are found over the whole corpus

    def backends(self) -> dict[str, str]:
        return {"ingest": f"demix_pipeline.stages.ingest {self.version} (PyAV {av.__version__}, FFmpeg libavformat "
                          f"{'.'.join(map(str, av.library_versions['libavformat']))})"}

    def _base_row(self, item: dict) -> dict:
        path = Path(item["path"]).resolve()
        try:
            source_id = content_id(path, self.cfg.hash_chunk_bytes, self.cfg.hash_chunks)
        except OSError:
            source_id = "p" + xxhash.xxh3_64_hexdigest(str(path).encode())[:15]  # unreadable: id from the path
        return {"source_id": source_id, "source_uri": str(path), "source_kind": item["source_kind"]}

    def measure(self, rows: list[dict]) -> list[dict]:
        return [self._measure_one(item) for item in rows]

    def _measure_one(self, item: dict) -> dict:
        row = self._base_row(item)
        try:
            info = probe(row["source_uri"])
        except ProbeError as exc:
            raise UndecodableError(str(exc)) from None
        row.update({
            "duration_s": info.video_duration_s,
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "has_audio": info.audio_streams > 0,
            "ingest.size_bytes": info.size_bytes,
            "ingest.container": info.container,
            "ingest.video_codec": info.video_codec,
            "ingest.pix_fmt": info.pix_fmt,
            "ingest.coded_width": info.coded_width,
            "ingest.coded_height": info.coded_height,
            "ingest.rotation": info.rotation if info.has_video else None,
            "ingest.sar": info.sar if info.has_video else None,
            "ingest.frame_count": info.frame_count,
            "ingest.vfr": info.vfr if info.has_video else None,
            "ingest.fps_min": info.fps_min,
            "ingest.fps_max": info.fps_max,
            "ingest.video_duration_s": info.video_duration_s,
            "ingest.start_offset_s": (info.video_start_s - info.container_start_s) if info.has_video else None,
            "ingest.audio_streams": info.audio_streams,
            "ingest.audio_codec": info.audio_codec,
            "ingest.audio_channels": info.audio_channels,
            "ingest.audio_layout": info.audio_layout,
            "ingest.audio_sample_rate": info.audio_sample_rate,
            "ingest.audio_duration_s": info.audio_duration_s,
            "keep": True, "drop_reason": None, "error": None,
        })
        row.update(self._fingerprint(row["source_uri"], info.has_video))
        return row

    def _fingerprint(self, uri: str, has_video: bool) -> dict:
        if not (self.cfg.fingerprint.enabled and has_video):
            return {}
        try:
            record = fp.fingerprint(uri, sample_fps=self.cfg.fingerprint.sample_fps).to_record()
        except (ValueError, av.error.FFmpegError):  # no decodable picture: the source is its own group
            return {}
        meta = {k: v for k, v in record.items() if k not in ("times", "hashes")}
        return {"ingest.fingerprint_times": record["times"], "ingest.fingerprint_hashes": record["hashes"],
                "ingest.fingerprint_meta": json.dumps(meta, sort_keys=True)}

    def error_rows(self, row: dict, exc: BaseException) -> list[dict]:
        return [failed(self._base_row(row), exc)]

    # decide sees every source (duplicates): `demix decide` gathers decide_columns() over the whole view
    decide_reads = ("source_uri", "ingest.video_codec", "has_audio", "ingest.duplicate_of", "ingest.fingerprint_times",
                    "ingest.fingerprint_hashes", "ingest.fingerprint_meta", "ingest.group_id", "ingest.group_reason")

    def decide_table(self, table: pa.Table) -> pa.Table:
        cfg = self.cfg
        codec = col(table, "ingest.video_codec", pa.string())
        no_video = pc.or_kleene(pc.is_null(codec), pc.equal(codec, ""))
        no_audio = pc.and_(pa.scalar(cfg.require_audio), pc.invert(pc.fill_null(col(table, "has_audio", pa.bool_()), False)))
        too_short = pc.less(pc.fill_null(col(table, "duration_s"), 0.0), cfg.min_duration_s)
        checks = [("no_video", no_video), ("no_audio", no_audio), ("too_short", too_short)]
        decided = apply_checks(table, checks)
        # among the sources that pass, the first path (in path order) of each content id is the original
        candidates = pc.fill_null(decided.column("keep"), False).to_pylist()
        uris = table.column("source_uri").to_pylist()
        ids = table.column("source_id").to_pylist()
        first_uri: dict[str, str] = {}
        for index in sorted((i for i, ok in enumerate(candidates) if ok), key=uris.__getitem__):
            first_uri.setdefault(ids[index], uris[index])
        duplicate_of = [first_uri[ids[i]] if ok and first_uri[ids[i]] != uris[i] else None for i, ok in enumerate(candidates)]
        is_duplicate = pa.array([d is not None for d in duplicate_of])
        decided = replace(decided, {"ingest.duplicate_of": only_ok(table, pa.array(duplicate_of, pa.string()),
                                                                    "ingest.duplicate_of")})
        decided = apply_checks(decided, checks + [("duplicate", is_duplicate)])
        group_id, reason = self._groups(decided)
        return replace(decided, {"ingest.group_id": only_ok(decided, group_id, "ingest.group_id"),
                                 "ingest.group_reason": only_ok(decided, reason, "ingest.group_reason")})

    def _groups(self, table: pa.Table) -> tuple[pa.Array, pa.Array]:
        """Near-duplicate groups among the kept sources: only the fingerprint columns are gathered."""
        kept = pc.fill_null(table.column("keep"), False).to_pylist()
        ids = table.column("source_id").to_pylist()
        names = set(table.column_names)
        prints: dict[str, fp.Fingerprint] = {}
        if {"ingest.fingerprint_hashes", "ingest.fingerprint_meta"} <= names:
            hashes = table.column("ingest.fingerprint_hashes").to_pylist()
            times = table.column("ingest.fingerprint_times").to_pylist()
            metas = table.column("ingest.fingerprint_meta").to_pylist()
            for i, ok in enumerate(kept):
                if ok and hashes[i] and metas[i] and json.loads(metas[i]).get("version") == fp.VERSION:
                    prints[ids[i]] = fp.Fingerprint.from_record({**json.loads(metas[i]), "times": times[i],
                                                                 "hashes": hashes[i]})
        result = fp.group(prints, **self.cfg.group.model_dump())
        reasons = {}
        for sid, (other, found) in result.reasons.items():
            reasons[sid] = (f"matches {other}: {found.matched_frac:.2f} of {found.compared} samples within "
                            f"{self.cfg.group.hamming_max} bits, mean {found.mean_distance:.1f} bits, "
                            f"overlap {found.overlap_s:.1f} s at offset {found.offset_s:+.1f} s")
        group_ids = [result.groups.get(sid, sid) if ok else None for sid, ok in zip(ids, kept)]
        return pa.array(group_ids, pa.string()), pa.array([reasons.get(sid) if ok else None
                                                           for sid, ok in zip(ids, kept)], pa.string())


class InputError(ValueError):
    """An input path or list cannot be read; the message names it."""


def collect_sources(paths: list[str], default_kind: str, extensions: list[str]) -> list[dict]:
    """Expand files, folders (recursive, by extension) and CSV/Parquet lists into {path, source_kind}."""
    if default_kind not in SOURCE_KINDS:
        raise InputError(f"--kind {default_kind!r}: expected one of {', '.join(SOURCE_KINDS)}")
    exts = {e.lower() for e in extensions}
    found: dict[str, str] = {}
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in exts and not child.name.startswith("."):
                    found.setdefault(str(child.resolve()), default_kind)
        elif path.suffix.lower() in (".csv", ".parquet") and path.is_file():
            for item in _read_list(path, default_kind):
                found.setdefault(item["path"], item["source_kind"])
        elif path.exists():
            found.setdefault(str(path.resolve()), default_kind)
        else:
            raise InputError(f"input not found: {raw}")
    return [{"path": p, "source_kind": k} for p, k in sorted(found.items())]


def _read_list(path: Path, default_kind: str) -> list[dict]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path) if path.suffix.lower() == ".parquet" else pacsv.read_csv(path)
    except Exception as exc:
        raise InputError(f"{path}: cannot read the input list: {exc}") from None
    if "path" not in table.column_names:
        raise InputError(f"{path}: an input list needs a column 'path' (has {', '.join(table.column_names)})")
    kinds = table.column("source_kind").to_pylist() if "source_kind" in table.column_names else [None] * table.num_rows
    out = []
    for line, (item, kind) in enumerate(zip(table.column("path").to_pylist(), kinds), start=2):
        kind = kind or default_kind
        if kind not in SOURCE_KINDS:
            raise InputError(f"{path}:{line}: source_kind {kind!r} is not one of {', '.join(SOURCE_KINDS)}")
        resolved = Path(item).expanduser()
        if not resolved.is_absolute():
            resolved = path.parent / resolved
        out.append({"path": str(resolved.resolve()), "source_kind": kind})
    return out
