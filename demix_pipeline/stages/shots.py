"""Stage `shots`: split every source into single-shot clips and cut each to a file with its audio.

measure: detect hard cuts and the ranges no clip may contain (gradual transitions, blank
frames), plan pieces (trimmed at cut edges, long shots split into windows), cut every piece of
at least `cut_min_s` to `artifacts/clips/<id[:2]>/<id>.mp4`. Damaged media: packets that do not
decode are skipped (media/decode.py) and every clip records how much of its span was lost. decide:
keep clips whose length lies in [min_clip_s, max_clip_s] and that lost at most `max_lost_frac`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from demix_pipeline.backends.shot_detection import ShotBoundaries, make_detector
from demix_pipeline.config import ShotsConfig
from demix_pipeline.decide import any_of, apply_checks, col
from demix_pipeline.media.cut import ClipSpan, cut_clip
from demix_pipeline.media.decode import DecodeReport, scan_audio, set_decode_limit
from demix_pipeline.media.ffmpeg import ffmpeg_binary, ffmpeg_version
from demix_pipeline.stages.base import Stage, failed
from demix_pipeline.storage import RunPath, local_input, local_output, remove_tree


@dataclass(frozen=True)
class Piece:
    start_frame: int
    end_frame: int  # exclusive
    shot_index: int
    piece_index: int
    cut_in: str
    cut_out: str
    cut_in_score: float | None


def plan_clips(bounds: ShotBoundaries, cfg: ShotsConfig) -> list[Piece]:
    """Pieces of shots that hold no cut, transition or blank frame, trimmed and windowed."""
    n = bounds.num_frames
    if n == 0:
        return []
    edges = [0] + list(bounds.cuts) + [n]
    excluded = sorted(bounds.excluded)
    trim = cfg.trim_frames
    pieces: list[Piece] = []
    for shot_index, (shot_start, shot_end) in enumerate(zip(edges[:-1], edges[1:])):
        # free stretches of the shot between excluded ranges, with what bounds each side
        stretches = []
        cursor, cursor_kind = shot_start, "start" if shot_start == 0 else "hard"
        for ex_start, ex_end, kind in excluded:
            if ex_end <= shot_start or ex_start >= shot_end:
                continue
            if ex_start > cursor:
                stretches.append((cursor, ex_start, cursor_kind, kind))
            cursor, cursor_kind = max(cursor, ex_end), kind
        if cursor < shot_end:
            stretches.append((cursor, shot_end, cursor_kind, "end" if shot_end == n else "hard"))
        piece_index = 0
        for start, end, kind_in, kind_out in stretches:
            start += trim if kind_in != "start" else 0
            end -= trim if kind_out != "end" else 0
            if end <= start:
                continue
            for w_start, w_end, w_in, w_out in _windows(bounds, start, end, kind_in, kind_out, cfg):
                score = bounds.cut_scores.get(shot_start) if w_in == "hard" else None
                pieces.append(Piece(w_start, w_end, shot_index, piece_index, w_in, w_out, score))
                piece_index += 1
    return pieces


def _windows(bounds: ShotBoundaries, start: int, end: int, kind_in: str, kind_out: str, cfg: ShotsConfig):
    duration = _time(bounds, end) - _time(bounds, start)
    if cfg.long_shots == "drop" or duration <= cfg.max_clip_s:
        return [(start, end, kind_in, kind_out)]
    count = math.ceil(duration / cfg.window_s)
    cuts = [start + round(i * (end - start) / count) for i in range(count + 1)]
    out = []
    for i in range(count):
        out.append((cuts[i], cuts[i + 1], kind_in if i == 0 else "window", kind_out if i == count - 1 else "window"))
    return out


def _time(bounds: ShotBoundaries, frame: int) -> float:
    return float(bounds.times[frame]) if frame < bounds.num_frames else bounds.end_time()


def _damaged_ranges(bounds: ShotBoundaries, picture: DecodeReport) -> list[tuple[int, int, str]]:
    """Frame ranges whose picture was lost or concealed (up to the next keyframe): excluded like blank runs.
    A gap of lost frames alone excludes the frame after it (the picture jumps there)."""
    ranges = []
    for start, end in picture.damaged_spans():
        first = int(np.searchsorted(bounds.times, start - 1e-6))
        last = int(np.searchsorted(bounds.times, end - 1e-6))
        if first < bounds.num_frames:
            ranges.append((first, min(bounds.num_frames, max(last, first + 1)), "damaged"))
    return ranges


def _damage(picture: DecodeReport, sound: DecodeReport | None, start_s: float, end_s: float,
            audio_end: float | None) -> dict:
    """What of the clip's span did not decode: picture and audio packets skipped in it."""
    covered_end = min(end_s, audio_end) if audio_end is not None else end_s
    covered = max(0.0, covered_end - start_s)
    audio_lost = sound.lost_within(start_s, covered_end) if sound is not None else None
    return {"shots.decode_errors": picture.errors_within(start_s, end_s)
            + (sound.errors_within(start_s, covered_end) if sound is not None else 0),
            "shots.picture_lost_s": round(picture.lost_within(start_s, end_s), 4),
            "shots.audio_lost_s": None if audio_lost is None else round(audio_lost, 4),
            "shots.audio_real_frac": None if sound is None or covered <= 0 else round(max(0.0, 1 - audio_lost / covered), 4)}


def clip_id(source_id: str, start_frame: int, end_frame: int) -> str:
    return f"{source_id}-{start_frame:06d}-{end_frame:06d}"


def _frame_size(clip: Path) -> tuple[int, int]:
    with av.open(str(clip)) as container:
        ctx = container.streams.video[0].codec_context
        return ctx.width, ctx.height


def clip_path(out: RunPath, cid: str) -> RunPath:
    return out / "artifacts" / "clips" / cid[:2] / f"{cid}.mp4"


class ShotsStage(Stage):
    name = "shots"
    id_column = "clip_id"
    measure_unit = "source_id"
    fan_out = True
    version = "2"  # 2: damaged packets skipped and counted per clip
    decide_reads = ("clip_uri", "shots.picture_lost_s", "shots.audio_lost_s")

    @classmethod
    def artifacts_fingerprint(cls, config) -> str | None:
        return config.fingerprint_of(config.shots.encode)

    @classmethod
    def clear_artifacts(cls, out: RunPath) -> None:
        remove_tree(out / "artifacts" / "clips")

    def _make_detector(self):
        resources = self.cfg.resources
        return make_detector(self.cfg.detector, num_threads=max(1, int(resources.num_cpus)),
                             device="cuda" if resources.num_gpus > 0 else "cpu")

    def setup(self) -> None:
        self.detector = self._make_detector()
        self.ffmpeg = ffmpeg_binary(self.cfg.encode.ffmpeg)

    def backends(self) -> dict[str, str]:
        detector = self._make_detector()
        return {"shots": f"detector {detector.name} {detector.version}; cut with "
                         f"{ffmpeg_version(ffmpeg_binary(self.cfg.encode.ffmpeg))}"}

    def measure(self, rows: list[dict]) -> list[dict]:
        out = []
        for source in rows:
            out.extend(self._measure_source(source))
        return out

    def _measure_source(self, source: dict) -> list[dict]:
        set_decode_limit(self.cfg.max_consecutive_decode_errors)
        bounds = self.detector.detect(source["source_uri"])
        picture = bounds.decode
        bounds.excluded = sorted(bounds.excluded + _damaged_ranges(bounds, picture))  # no clip spans damage
        sound = scan_audio(source["source_uri"]) if source.get("has_audio") else None
        source_errors = picture.errors + (sound.errors if sound else 0)
        source_lost = picture.lost_s + (sound.lost_s if sound else 0.0)
        rows = []
        frame_interval = float(np.median(np.diff(bounds.times))) if bounds.num_frames > 1 else 1.0 / (source["fps"] or 25)
        offset = source.get("ingest.start_offset_s") or 0.0
        audio_end = source.get("ingest.audio_duration_s")
        for piece in plan_clips(bounds, self.cfg):
            start_s, end_s = _time(bounds, piece.start_frame), _time(bounds, piece.end_frame)
            cid = clip_id(source["source_id"], piece.start_frame, piece.end_frame)
            row = {
                "clip_id": cid, "source_id": source["source_id"], "source_kind": source["source_kind"],
                "start_s": start_s, "end_s": end_s,
                "start_frame": piece.start_frame, "end_frame": piece.end_frame, "clip_uri": None,
                "shots.shot_index": piece.shot_index, "shots.piece_index": piece.piece_index,
                "shots.num_frames": piece.end_frame - piece.start_frame, "shots.duration_s": end_s - start_s,
                "shots.cut_in": piece.cut_in, "shots.cut_out": piece.cut_out, "shots.cut_in_score": piece.cut_in_score,
                "shots.audio_coverage": None if audio_end is None else
                min(1.0, max(0.0, (audio_end - start_s) / max(end_s - start_s, 1e-9))),
                **_damage(picture, sound, start_s, end_s, audio_end), "shots.source_decode_errors": source_errors,
                "shots.source_lost_s": round(source_lost, 4),
                "keep": True, "drop_reason": None, "error": None,
            }
            span = (ClipSpan(offset + start_s, end_s - start_s, piece.end_frame - piece.start_frame, frame_interval)
                    if end_s - start_s >= self.cfg.cut_min_s else None)
            rows.append((row, span))
        return self._cut_all(source, rows)

    def _cut_all(self, source: dict, planned: list[tuple[dict, ClipSpan | None]]) -> list[dict]:
        """Cut the source's pieces, as many at once as the stage's CPUs (`resources.num_cpus`): a long source
        is not cut by one ffmpeg after another while the actor's other CPUs wait. Rows keep their order."""
        from concurrent.futures import ThreadPoolExecutor

        def cut(item: tuple[dict, ClipSpan | None]) -> dict:
            row, span = item
            if span is None:
                return row
            try:
                return {**row, **self._cut(source, row["clip_id"], span)}
            except Exception as exc:  # one bad clip must not lose the source's other clips
                return failed(row, exc)

        workers = max(1, int(self.cfg.resources.num_cpus))
        if workers == 1 or len(planned) < 2:
            return [cut(item) for item in planned]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cut") as pool:  # ffmpeg runs outside the GIL
            return list(pool.map(cut, planned))

    def _cut(self, source: dict, cid: str, span: ClipSpan) -> dict:
        dest = clip_path(self.ctx.out, cid)
        if dest.exists():  # written atomically, so an existing file is complete
            with local_input(dest) as local:
                width, height = _frame_size(local)
        else:
            with local_output(dest) as local:
                cut_clip(source["source_uri"], local, span, self.cfg.encode, bool(source["has_audio"]))
                width, height = _frame_size(local)
        return {"clip_uri": dest.relative_to(self.ctx.out).as_posix(), "shots.clip_width": width, "shots.clip_height": height}

    def error_rows(self, row: dict, exc: BaseException) -> list[dict]:
        base = {"clip_id": f"{row['source_id']}-error", "source_id": row["source_id"], "source_kind": row["source_kind"]}
        return [failed(base, exc)]

    def decide_table(self, table: pa.Table) -> pa.Table:
        duration = col(table, "shots.duration_s")
        no_file = pc.is_null(col(table, "clip_uri", pa.string()))
        lost = pc.max_element_wise(pc.fill_null(col(table, "shots.picture_lost_s"), 0.0),
                                   pc.fill_null(col(table, "shots.audio_lost_s"), 0.0))
        damaged = pc.greater(lost, pc.multiply(duration, self.cfg.max_lost_frac))
        return apply_checks(table, [("too_short", any_of([no_file, pc.less(duration, self.cfg.min_clip_s)])),
                                    ("too_long", pc.greater(duration, self.cfg.max_clip_s)),
                                    ("damaged", damaged)])
