"""Stage `ingest`: one row per source file; probe, content id, perceptual fingerprint, and reject what cannot be used.

decide (over the whole corpus): drop unusable files and exact duplicates (same content id), then
group near-duplicates by their fingerprints (`ingest.group_id`, the smallest source_id of the
group; `ingest.group_reason` names the source it matched and the figures). The test split keeps
each group on one side (stages/assign.py).

Inputs it cannot take are rows too, never silently skipped: a symlink loop (`symlink_loop`), a
broken symlink (`broken_symlink`), a file that is not a video at all (`not_a_video`: an image, a
text file, audio only) and an unreadable file (`unreadable`, an error row: retried). A file cut
short is marked (`ingest.truncated`, what is missing) and kept while it decodes; one that no
longer opens is an error row with drop_reason `truncated`. Files a folder scan leaves out (other
extensions, dot-files) are counted in `_stage.json` (`inputs_not_taken`).
"""
from __future__ import annotations

import errno
import json
import os
import stat
from collections import Counter
from pathlib import Path

import av
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from demix_pipeline.decide import apply_checks, col, only_ok, replace
from demix_pipeline.media import fingerprint as fp
from demix_pipeline.media.hashing import content_id
from demix_pipeline.media.probe import ProbeError, container_shortfall, not_a_video, probe, sniff_not_media
from demix_pipeline.stages.base import Stage, failed

SOURCE_KINDS = ("talking_head", "cinematic", "film_related")


class UndecodableError(ProbeError):
    drop_reason = "undecodable"


class TruncatedError(UndecodableError):
    """A file cut short that no longer opens; `columns` are the truncation columns of its error row."""

    drop_reason = "truncated"

    def __init__(self, message: str, columns: dict):
        super().__init__(message)
        self.columns = columns


class UnreadableError(ProbeError):
    drop_reason = "unreadable"


# codes measure writes to `ingest.input_issue` for inputs that are no video source; decide drops them
INPUT_ISSUES = ("symlink_loop", "broken_symlink", "not_a_video")


class IngestStage(Stage):
    name = "ingest"
    version = "3"  # 2: perceptual fingerprint; 3: inputs not taken as rows, truncation marked
    id_column = "source_id"
    measure_unit = "source_uri"
    decide_per_row = False  # duplicates are found over the whole corpus

    def backends(self) -> dict[str, str]:
        return {"ingest": f"demix_pipeline.stages.ingest {self.version} (PyAV {av.__version__}, FFmpeg libavformat "
                          f"{'.'.join(map(str, av.library_versions['libavformat']))})"}

    def _base_row(self, item: dict, resolve: bool = True) -> dict:
        try:
            path = Path(item["path"]).resolve() if resolve else Path(os.path.abspath(item["path"]))
        except (OSError, RuntimeError):  # a symlink loop: the row keeps the link's own path
            path = Path(os.path.abspath(item["path"]))
        try:
            source_id = content_id(path, self.cfg.hash_chunk_bytes, self.cfg.hash_chunks)
        except OSError:
            source_id = "p" + xxhash.xxh3_64_hexdigest(str(path).encode())[:15]  # unreadable: id from the path
        return {"source_id": source_id, "source_uri": str(path), "source_kind": item["source_kind"]}

    def measure(self, rows: list[dict]) -> list[dict]:
        return [self._measure_one(item) for item in rows]

    def _measure_one(self, item: dict) -> dict:
        issue = input_issue(item["path"])
        if issue is not None:  # the row names the link itself, not where it points
            return {**self._base_row(item, resolve=False), "ingest.input_issue": issue[0],
                    "ingest.input_detail": issue[1], "keep": False, "drop_reason": issue[0], "error": None}
        row = self._base_row(item)
        try:
            info = probe(row["source_uri"])
        except ProbeError as exc:
            what = sniff_not_media(row["source_uri"])
            if what is not None or str(exc) == "no video and no audio stream":
                return {**row, "ingest.input_issue": "not_a_video", "ingest.input_detail": what or str(exc),
                        "ingest.size_bytes": os.path.getsize(row["source_uri"]),
                        "keep": False, "drop_reason": "not_a_video", "error": None}
            missing = container_shortfall(row["source_uri"])
            if missing:
                raise TruncatedError(f"{missing} bytes missing at the end of the file; {exc}",
                                     {"ingest.truncated": True, "ingest.missing_bytes": missing,
                                      "ingest.truncated_detail": f"the container needs {missing} bytes past the "
                                                                 f"end of the file; the rest does not open or decode"}
                                     ) from None
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
            "ingest.truncated": info.truncated,
            "ingest.missing_s": info.missing_s,
            "ingest.missing_bytes": info.missing_bytes,
            "ingest.truncated_detail": info.truncated_detail,
            "keep": True, "drop_reason": None, "error": None,
        })
        what = not_a_video(info)
        if what is not None:
            row.update({"ingest.input_issue": "not_a_video", "ingest.input_detail": what})
            return row
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
        return [failed({**self._base_row(row), **getattr(exc, "columns", {})}, exc)]

    # decide sees every source (duplicates): `demix decide` gathers decide_columns() over the whole view
    decide_reads = ("source_uri", "ingest.input_issue", "ingest.video_codec", "has_audio", "ingest.duplicate_of",
                    "ingest.fingerprint_times", "ingest.fingerprint_hashes", "ingest.fingerprint_meta",
                    "ingest.group_id", "ingest.group_reason")

    def decide_table(self, table: pa.Table) -> pa.Table:
        cfg = self.cfg
        codec = col(table, "ingest.video_codec", pa.string())
        issue = col(table, "ingest.input_issue", pa.string())
        # not a video: found so by measure (an image, text, audio only), or no video codec at all
        not_video = pc.or_kleene(pc.equal(issue, "not_a_video"), pc.or_kleene(pc.is_null(codec), pc.equal(codec, "")))
        no_audio = pc.and_(pa.scalar(cfg.require_audio), pc.invert(pc.fill_null(col(table, "has_audio", pa.bool_()), False)))
        too_short = pc.less(pc.fill_null(col(table, "duration_s"), 0.0), cfg.min_duration_s)
        checks = [(code, pc.equal(issue, code)) for code in INPUT_ISSUES if code != "not_a_video"]
        checks += [("not_a_video", not_video), ("no_audio", no_audio), ("too_short", too_short)]
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


class Sources(list):
    """collect_sources' {path, source_kind} dicts, and `not_taken`: what folder scans left out (counted, no
    rows): dot-files and files of other extensions (by extension), and special files (FIFOs, sockets, devices)."""

    def __init__(self, items, not_taken: dict):
        super().__init__(items)
        self.not_taken = not_taken

    @property
    def not_taken_token(self) -> str | None:
        """Part of ingest's input fingerprint, so `_stage.json` is rewritten when only these counts change."""
        counts = self.not_taken
        if not (counts["dotfiles"] or counts["other_extensions"] or counts["special_files"]):
            return None
        return json.dumps(counts, sort_keys=True)

    def describe(self) -> str:
        """`demix run`'s line about its inputs."""
        counts = self.not_taken
        links = sum(1 for item in self if os.path.islink(item["path"]) and not os.path.exists(item["path"]))
        text = f"ingest: {len(self)} input files"
        if links:
            text += f" ({links} broken or looping symlinks among them, dropped with their reason)"
        other = sum(counts["other_extensions"].values())
        parts = []
        if other:
            top = sorted(counts["other_extensions"].items(), key=lambda kv: (-kv[1], kv[0]))
            listed = ", ".join(f"{ext} {n}" for ext, n in top[:8]) + (", ..." if len(top) > 8 else "")
            parts.append(f"{other} of other extensions ({listed}; ingest.extensions sets what is taken)")
        if counts["dotfiles"]:
            parts.append(f"{counts['dotfiles']} dot-files")
        if counts["special_files"]:
            parts.append(f"{counts['special_files']} special files")
        return text + ("; not taken: " + "; ".join(parts) if parts else "")


def collect_sources(paths: list[str], default_kind: str, extensions: list[str]) -> Sources:
    """Expand files, folders (recursive, by extension) and CSV/Parquet lists into {path, source_kind}.

    A folder scan follows symlinks to folders (each folder once); broken and looping symlinks with a
    video extension, and folders that cannot be listed, are returned too (measure gives them a
    drop_reason); dot-files and other extensions are counted in `not_taken`.
    """
    if default_kind not in SOURCE_KINDS:
        raise InputError(f"--kind {default_kind!r}: expected one of {', '.join(SOURCE_KINDS)}")
    exts = {e.lower() for e in extensions}
    found: dict[str, str] = {}
    counts = {"dotfiles": 0, "other_extensions": Counter(), "special_files": 0}
    scanned: set[str] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            _scan(path, default_kind, exts, found, counts, scanned, ())
        elif path.suffix.lower() in (".csv", ".parquet") and path.is_file():
            for item in _read_list(path, default_kind):
                found.setdefault(item["path"], item["source_kind"])
        elif path.exists():
            found.setdefault(str(path.resolve()), default_kind)
        elif path.is_symlink():  # broken or looping: a row with its reason
            found.setdefault(os.path.abspath(path), default_kind)
        else:
            raise InputError(f"input not found: {raw}")
    counts["other_extensions"] = dict(sorted(counts["other_extensions"].items()))
    return Sources([{"path": p, "source_kind": k} for p, k in sorted(found.items())], counts)


def _scan(folder: Path, kind: str, exts: set[str], found: dict, counts: dict, scanned: set[str],
          ancestors: tuple[str, ...]) -> None:
    real = os.path.realpath(folder)
    if real in scanned:  # reached again through a symlink: its files are taken already
        return
    scanned.add(real)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:  # cannot be listed: a row, so its files are not lost without a word
        found.setdefault(os.path.abspath(folder), kind)
        return
    ancestors = ancestors + (real,)
    for entry in entries:
        name, suffix = entry.name, os.path.splitext(entry.name)[1].lower()
        try:
            st = entry.stat()  # follows symlinks
        except OSError:
            target = os.readlink(entry.path) if entry.is_symlink() else ""
            if name.startswith("."):
                counts["dotfiles"] += 1
            elif suffix in exts or os.path.splitext(target)[1].lower() in exts or not entry.is_symlink():
                found.setdefault(os.path.abspath(entry.path), kind)  # broken, looping or unreadable
            else:
                counts["other_extensions"][suffix or "(none)"] += 1
            continue
        if stat.S_ISDIR(st.st_mode):
            if entry.is_symlink() and os.path.realpath(entry.path) in ancestors:
                found.setdefault(os.path.abspath(entry.path), kind)  # links back to a folder above: a loop
            else:
                _scan(Path(entry.path), kind, exts, found, counts, scanned, ancestors)
        elif name.startswith("."):
            counts["dotfiles"] += 1
        elif not stat.S_ISREG(st.st_mode):
            counts["special_files"] += 1
        elif suffix in exts:
            found.setdefault(str(Path(entry.path).resolve()), kind)
        else:
            counts["other_extensions"][suffix or "(none)"] += 1


def input_issue(path: str) -> tuple[str, str] | None:
    """(drop_reason, detail) for an input path that is no file to probe: a symlink loop, a broken
    symlink, a folder linking back to one above it, not a regular file; raises UnreadableError when
    it cannot be read (an error row: retried next run). None for a readable file."""
    try:
        st = os.stat(path)
    except OSError as exc:
        target = os.readlink(path) if os.path.islink(path) else None
        if exc.errno == errno.ELOOP:
            return "symlink_loop", f"symlink loop: {path} -> {target}"
        if target is not None and exc.errno == errno.ENOENT:
            return "broken_symlink", f"broken symlink: {path} -> {target} (missing)"
        raise UnreadableError(f"cannot read: {exc}") from None
    if stat.S_ISDIR(st.st_mode):
        real, parent = os.path.realpath(path), os.path.realpath(os.path.dirname(os.path.abspath(path)))
        if os.path.islink(path) and (parent == real or parent.startswith(real.rstrip(os.sep) + os.sep)):
            return "symlink_loop", f"symlink to a folder above it: {path} -> {os.readlink(path)}"
        try:
            os.listdir(path)
        except OSError as exc:
            raise UnreadableError(f"cannot list the folder: {exc}") from None
        raise UnreadableError("a folder that could not be listed when the inputs were collected")
    if not stat.S_ISREG(st.st_mode):
        return "not_a_video", "not a regular file (a FIFO, socket or device)"
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise UnreadableError(f"cannot read: {exc}") from None
    return None


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
        try:
            resolved = resolved.resolve()
        except RuntimeError:  # a symlink loop: kept as it is named, measure reports it
            resolved = Path(os.path.abspath(resolved))
        out.append({"path": str(resolved), "source_kind": kind})
    return out
