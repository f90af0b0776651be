"""Column schemas, atomic Parquet parts, validation on read, and the column docs.

A stage's output is `<out>/<NN>_<stage>/part-<shard>.parquet` plus `_stage.json` and `_SUCCESS`.
Each field carries metadata: `doc` (what it holds), `stage` (which stage wrote it) and `backend`
(what produced the value). `manifests/README.md` is rendered from COLUMNS (see render_docs) and a
test keeps the two in step.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from demix_pipeline.config import STAGE_ORDER
from demix_pipeline.storage import RunPath, is_local, run_root, write_bytes_atomic


class ManifestError(ValueError):
    """A manifest file is missing, unreadable or does not match its schema."""


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    nullable: bool = True


KEEP_COLUMNS = [
    Column("keep", pa.bool_(), "true when the row goes on to the next stage", nullable=False),
    Column("drop_reason", pa.string(), "short code saying why keep is false (null when kept; `error` or `undecodable` when the row failed)"),
    Column("error", pa.string(), "`ExceptionType: message` when the row failed; keep is then false"),
]

SOURCE_CORE = [
    Column("source_id", pa.string(), "16 hex digits of xxh3-128 over the file size and 5 evenly spaced 1 MiB chunks (content, not path)", nullable=False),
    Column("source_uri", pa.string(), "absolute path of the source file as ingested", nullable=False),
    Column("source_kind", pa.string(), "talking_head, cinematic or film_related", nullable=False),
    Column("duration_s", pa.float64(), "video duration in seconds (last frame end, from packet timestamps)"),
    Column("fps", pa.float64(), "average frame rate (frames / video duration)"),
    Column("width", pa.int32(), "display width in pixels after rotation and pixel aspect"),
    Column("height", pa.int32(), "display height in pixels after rotation and pixel aspect"),
    Column("has_audio", pa.bool_(), "the file has at least one audio stream"),
]

INGEST = [
    Column("ingest.size_bytes", pa.int64(), "file size"),
    Column("ingest.container", pa.string(), "container format name(s) from FFmpeg"),
    Column("ingest.video_codec", pa.string(), "codec of the first video stream"),
    Column("ingest.pix_fmt", pa.string(), "pixel format of the first video stream"),
    Column("ingest.coded_width", pa.int32(), "stored frame width before rotation"),
    Column("ingest.coded_height", pa.int32(), "stored frame height before rotation"),
    Column("ingest.rotation", pa.int32(), "display rotation in degrees from the stream's display matrix (0, 90, 180, 270)"),
    Column("ingest.sar", pa.string(), "sample (pixel) aspect ratio as `num:den`; 1:1 is square pixels"),
    Column("ingest.frame_count", pa.int64(), "video frames, counted from packets"),
    Column("ingest.vfr", pa.bool_(), "variable frame rate: frame intervals differ by more than 10% of the median"),
    Column("ingest.fps_min", pa.float64(), "lowest instantaneous frame rate (from the longest frame interval)"),
    Column("ingest.fps_max", pa.float64(), "highest instantaneous frame rate (from the shortest frame interval)"),
    Column("ingest.video_duration_s", pa.float64(), "first to last video frame end, in seconds"),
    Column("ingest.start_offset_s", pa.float64(), "seconds from the container start to the first video frame (where clip times count from)"),
    Column("ingest.audio_streams", pa.int32(), "number of audio streams"),
    Column("ingest.audio_codec", pa.string(), "codec of the first audio stream"),
    Column("ingest.audio_channels", pa.int32(), "channels of the first audio stream"),
    Column("ingest.audio_layout", pa.string(), "channel layout of the first audio stream (e.g. stereo, 5.1)"),
    Column("ingest.audio_sample_rate", pa.int32(), "sample rate of the first audio stream"),
    Column("ingest.audio_duration_s", pa.float64(), "end of the last audio packet minus the start of the video, in seconds (audio may end early)"),
    Column("ingest.truncated", pa.bool_(), "the file is cut short: its container structure (MP4/MOV boxes, Matroska segment, RIFF chunks) ends past the end of the file, its index lists more video frames than could be read, or demuxing stopped on an error; durations cover what was read. Kept while it decodes; one that does not open is an error row with drop_reason `truncated`"),
    Column("ingest.missing_s", pa.float64(), "truncated: about how many seconds of video are missing (the header's duration, or the index's frames at the frame rate read, past what was read); null when not measurable"),
    Column("ingest.missing_bytes", pa.int64(), "truncated: bytes the container structure needs past the end of the file (MP4/MOV, Matroska/WebM, RIFF/AVI); null when not measurable"),
    Column("ingest.truncated_detail", pa.string(), "truncated: the signs found, in words (e.g. `the index lists 288 video frames, 129 could be read`)"),
    Column("ingest.input_issue", pa.string(), "why the input is no video source, found while measuring (decide copies it to drop_reason): `symlink_loop`, `broken_symlink` or `not_a_video` (an image, a text file, audio only, no stream); null otherwise. Unreadable inputs are error rows (drop_reason `unreadable`)"),
    Column("ingest.input_detail", pa.string(), "input_issue in words: the link and its target, or what the file is (e.g. `a PNG image`, `no video stream (audio only: mp3)`)"),
    Column("ingest.duplicate_of", pa.string(), "source_uri of the first file with identical content (drop_reason duplicate)"),
    Column("ingest.fingerprint_times", pa.list_(pa.float32()), "perceptual fingerprint: seconds from the first frame of "
           "each hashed sample (about sample_fps a second; near-flat pictures such as black frames are left out)"),
    Column("ingest.fingerprint_hashes", pa.list_(pa.int64()), "perceptual fingerprint: 64-bit DCT pHash (bits as int64) "
           "of each sample, a blend of the frames within half a second, black borders cropped, as displayed (rotation applied)"),
    Column("ingest.fingerprint_meta", pa.string(), "perceptual fingerprint: JSON with its version, the crop box "
           "(x0, y0, x1, y1 in decoded pixels), decoded size, rotation, duration and sample rate"),
    Column("ingest.group_id", pa.string(), "near-duplicate group: the smallest source_id among the sources whose "
           "fingerprints match (re-encoded, rescaled, letterboxed or trimmed copies); its own source_id when alone. "
           "The test split keeps each group on one side"),
    Column("ingest.group_reason", pa.string(), "why the source is in a group of several: the source it matched and the "
           "figures (matched fraction, mean Hamming distance, overlap, offset); null when alone"),
]

CLIP_CORE = [
    Column("clip_id", pa.string(), "`<source_id>-<start_frame>-<end_frame>` (6-digit frame numbers): stable across re-runs", nullable=False),
    Column("source_id", pa.string(), "the source the clip was cut from", nullable=False),
    Column("source_kind", pa.string(), "copied from the source", nullable=False),
    Column("start_s", pa.float64(), "timestamp of the clip's first frame in the source, seconds from the first video frame"),
    Column("end_s", pa.float64(), "timestamp where the clip ends (exclusive: start of the frame after its last)"),
    Column("start_frame", pa.int64(), "index of the first frame in decode order of the source (0-based)"),
    Column("end_frame", pa.int64(), "index one past the last frame (exclusive)"),
    Column("clip_uri", pa.string(), "clip video with its audio, relative to the run root (null when not cut)"),
]

SHOTS = [
    Column("shots.shot_index", pa.int32(), "index of the shot (between hard cuts) in its source"),
    Column("shots.piece_index", pa.int32(), "index of the clip within its shot (shots are split by transitions, blank runs and windows)"),
    Column("shots.num_frames", pa.int32(), "frames in the clip (end_frame - start_frame)"),
    Column("shots.duration_s", pa.float64(), "end_s - start_s"),
    Column("shots.cut_in", pa.string(), "what precedes the clip: start, hard, gradual, blank, damaged (picture lost or concealed) or window"),
    Column("shots.cut_out", pa.string(), "what follows the clip: end, hard, gradual, blank, damaged or window"),
    Column("shots.cut_in_score", pa.float64(), "detector score of the hard cut before the clip (mean abs YUV difference 0-255 for demix; null otherwise)"),
    Column("shots.audio_coverage", pa.float64(), "fraction of the clip span covered by the source's audio (the rest is padded with silence)"),
    Column("shots.decode_errors", pa.int32(), "packets of the source (picture and audio) inside the clip's span that did not decode and were skipped (damaged media)"),
    Column("shots.picture_lost_s", pa.float64(), "seconds of the clip's span whose picture packets did not decode"),
    Column("shots.audio_lost_s", pa.float64(), "seconds of the clip's span whose audio packets did not decode (silence in the clip; null: no audio)"),
    Column("shots.audio_real_frac", pa.float64(), "fraction of the clip's audio-covered span that decoded from real packets (null: no audio)"),
    Column("shots.source_decode_errors", pa.int32(), "packets of the whole source that did not decode (picture and audio)"),
    Column("shots.source_lost_s", pa.float64(), "seconds of the whole source lost to packets that did not decode (picture plus audio)"),
    Column("shots.clip_width", pa.int32(), "width of the clip file (after rotation and square pixels)"),
    Column("shots.clip_height", pa.int32(), "height of the clip file"),
]

EVENT_CLASS = pa.struct([pa.field("name", pa.string()), pa.field("kind", pa.string()), pa.field("frac", pa.float64())])

AUDIO_QUALITY = [
    Column("audio_quality.sample_rate", pa.int32(), "sample rate of the clip's audio as decoded"),
    Column("audio_quality.channels", pa.int32(), "channels of the clip's audio"),
    Column("audio_quality.rms_dbfs", pa.float64(), "RMS level over all channels, dBFS (-120: digital silence)"),
    Column("audio_quality.peak_dbfs", pa.float64(), "sample peak, dBFS"),
    Column("audio_quality.loudness_lufs", pa.float64(), "integrated loudness, ITU-R BS.1770-4 (gated), LUFS (-120 when below the gates)"),
    Column("audio_quality.clipping_ratio", pa.float64(), "fraction of samples at or above audio_quality.clip_level of full scale"),
    Column("audio_quality.silence_ratio", pa.float64(), "fraction of 50 ms windows below audio_quality.silence_threshold_dbfs (mono mix)"),
    Column("audio_quality.bandwidth_hz", pa.float64(), "highest frequency within bandwidth_drop_db (60 dB) of the long-term spectrum's peak"),
    Column("audio_quality.speech_s", pa.float64(), "seconds of speech found by silero VAD (ONNX, 16 kHz mono mix)"),
    Column("audio_quality.speech_ratio", pa.float64(), "speech_s over the clip's audio duration"),
    Column("audio_quality.dnsmos_sig", pa.float64(), "DNSMOS P.835 speech signal quality (1-5) on the speech-bearing part; null under min_speech_s"),
    Column("audio_quality.dnsmos_bak", pa.float64(), "DNSMOS P.835 background quality (1-5): music and effects lower it; null under min_speech_s"),
    Column("audio_quality.dnsmos_ovrl", pa.float64(), "DNSMOS P.835 overall quality (1-5); null under min_speech_s"),
    Column("audio_quality.dnsmos_p808", pa.float64(), "DNSMOS P.808 overall quality (1-5); null under min_speech_s"),
    Column("audio_quality.aes_ce", pa.float64(), "audiobox-aesthetics content enjoyment (~1-10); reference backend only, else null"),
    Column("audio_quality.aes_cu", pa.float64(), "audiobox-aesthetics content usefulness (~1-10); reference backend only"),
    Column("audio_quality.aes_pc", pa.float64(), "audiobox-aesthetics production complexity (~1-10); reference backend only"),
    Column("audio_quality.aes_pq", pa.float64(), "audiobox-aesthetics production quality (~1-10); reference backend only"),
    Column("audio_quality.event_speech_frac", pa.float64(), "fraction of the tagger's frames (audio_quality.events; YAMNet: 0.48 s) in which speech is heard"),
    Column("audio_quality.event_singing_frac", pa.float64(), "fraction of frames with singing (singing, choir, rapping, humming, whistling)"),
    Column("audio_quality.event_music_frac", pa.float64(), "fraction of frames with music (instruments, genres)"),
    Column("audio_quality.event_other_frac", pa.float64(), "fraction of frames with another sound event (animals, vehicles, tools, laughter, crying, ...: what the recipe calls effects)"),
    Column("audio_quality.event_top", pa.list_(EVENT_CLASS), "the clip's top event classes, best first: `name` (AudioSet class), its `kind` (speech, singing, music, other, silence or background) and `frac`, the fraction of frames in which it is heard"),
    Column("audio_quality.event_frames", pa.list_(pa.uint8()), "per tagger frame, the kinds heard as bits: 1 speech, 2 singing, 4 music, 8 other (demix gates A's stems with them, voiceover masks singing)"),
    Column("audio_quality.event_hop_s", pa.float64(), "seconds between event_frames (YAMNet: 0.48)"),
    Column("audio_quality.event_first_s", pa.float64(), "centre of the first event frame, seconds from the clip start"),
]

DEMIX = [
    Column("demix.a_speech_dbfs", pa.float64(), "RMS dBFS of separator A's speech stem (48 kHz mono)"),
    Column("demix.a_effects_dbfs", pa.float64(), "RMS dBFS of separator A's effects stem as written: gated (demix.gate_stems) to the frames where the tagger hears other sound events, silence elsewhere; measured over those frames (demix.gate_level: heard; -120 when none) or over the clip"),
    Column("demix.a_music_dbfs", pa.float64(), "RMS dBFS of separator A's music stem as written: gated to the frames where the tagger hears music or singing"),
    Column("demix.a_effects_raw_dbfs", pa.float64(), "RMS dBFS of separator A's effects stem before gating"),
    Column("demix.a_music_raw_dbfs", pa.float64(), "RMS dBFS of separator A's music stem before gating"),
    Column("demix.music_present", pa.bool_(), "decided: A.music at or above silence_dbfs (levels chosen by demix.stem_levels); visual_mood reads it"),
    Column("demix.effects_present", pa.bool_(), "decided: A.effects at or above silence_dbfs; sound_event reads it"),
    Column("demix.b_speech_dbfs", pa.float64(), "RMS dBFS of separator B's speech stem"),
    Column("demix.b_others_dbfs", pa.float64(), "RMS dBFS of separator B's others stem (mixture minus its speech)"),
    Column("demix.mixture_dbfs", pa.float64(), "RMS dBFS of the mono 48 kHz mixture both separators saw"),
    Column("demix.l1_speech", pa.float64(), "mean |A.speech - B.speech| over mean |mixture| (always compared)"),
    Column("demix.l1_others_effects", pa.float64(), "mean |B.others - A.effects| over mean |mixture|, A.effects as separated (before gating); always measured, compared only when A.music is silent"),
    Column("demix.l1_others_music", pa.float64(), "mean |B.others - A.music| over mean |mixture|, A.music before gating; always measured, compared only when A.effects is silent"),
    Column("demix.pairs", pa.string(), "pairs compared by decide, comma-separated: speech always; others_effects when A.music (as separated, raw) is silent; others_music when A.effects is"),
    Column("demix.max_l1", pa.float64(), "largest L1 among the comparable pairs (what decide compares with max_l1)"),
    Column("demix.rhythm", pa.float64(), "periodicity (0-1) of the residual's percussion (offline A's music/effects rule)"),
    Column("demix.percussion_to_music", pa.bool_(), "offline A put the residual's percussion into music (rhythmic, over a tonal layer)"),
    Column("demix.speech_uri", pa.string(), "separator A's speech stem, FLAC 48 kHz mono, relative to the run root"),
    Column("demix.effects_uri", pa.string(), "separator A's effects stem, FLAC"),
    Column("demix.music_uri", pa.string(), "separator A's music stem, FLAC"),
]

SEGMENT = pa.struct([
    pa.field("start_s", pa.float64()), pa.field("end_s", pa.float64()), pa.field("speaker", pa.string()),
    pa.field("person_frac", pa.float64()), pa.field("active_speaker_frac", pa.float64()),
])
TRACK = pa.struct([
    pa.field("track_id", pa.int32()), pa.field("start_s", pa.float64()), pa.field("end_s", pa.float64()),
    pa.field("max_face_height_px", pa.float64()), pa.field("times", pa.list_(pa.float32())),
    pa.field("boxes", pa.list_(pa.list_(pa.float32()))), pa.field("bodies", pa.list_(pa.list_(pa.float32()))),
    pa.field("speaking", pa.list_(pa.float32())),
    pa.field("speaking_frac", pa.float64()),
])

VOICEOVER = [
    Column("voiceover.sample_times", pa.list_(pa.float32()), "times (s, from the clip's first frame) of the frames given to the person detector (sample_fps)"),
    Column("voiceover.person_counts", pa.list_(pa.int16()), "people in each sampled frame (offline: tracked people, i.e. face-mesh-confirmed faces and mask-confirmed BlazePose bodies, whose track has min_face_track_samples detections; reference: YOLO persons)"),
    Column("voiceover.human_count", pa.int32(), "the clip's human count: count_percentile (90) of the per-frame counts after a count_smoothing_s median filter"),
    Column("voiceover.max_person_count", pa.int32(), "most people in one sampled frame (unsmoothed)"),
    Column("voiceover.person_frame_frac", pa.float64(), "fraction of sampled frames with at least one person"),
    Column("voiceover.face_tracks", pa.int32(), "face tracks (BlazeFace faces joined by IoU across sampled frames)"),
    Column("voiceover.tracks", pa.list_(TRACK), "per person track (offline; reference: per face track): id, first/last time, largest head height (px), `times` of its detections (sampled frames), `boxes` there (the head: confirmed face, else the pose detector's head box) as [x0, y0, x1, y1] in 0-1 of the frame, `bodies` the body box there when the pose detector found one (else null), `speaking` score (0-1) per detection (mean over its asd_fps frames) and `speaking_frac`: of its frames during speech, the fraction at or above asd_threshold (0 when it is never on screen during speech; both null: not scored, shorter than min_track_s or beyond max_asd_tracks)"),
    Column("voiceover.speech_s", pa.float64(), "seconds of speech in the diarization of separator A's speech stem"),
    Column("voiceover.speakers", pa.int32(), "speaker count of the diarization"),
    Column("voiceover.segments", pa.list_(SEGMENT), "diarization turns with speaker label and the fraction of their frames (asd_fps grid) with a visible person and with an active speaker"),
    Column("voiceover.active_speaker_frac", pa.float64(), "fraction of speech frames where some face track speaks (null: no speech)"),
    Column("voiceover.person_speech_frac", pa.float64(), "fraction of speech frames with a visible person (null: no speech)"),
    Column("voiceover.uncovered_speech_s", pa.float64(), "speech seconds whose frames show neither a visible person nor an active speaker (the recipe's voice-over evidence)"),
    Column("voiceover.uncovered_speech_frac", pa.float64(), "uncovered_speech_s over all speech seconds (0 without speech)"),
    Column("voiceover.no_speaker_speech_s", pa.float64(), "speech seconds without an active speaker (used when coverage = active_speaker)"),
    Column("voiceover.no_speaker_speech_frac", pa.float64(), "no_speaker_speech_s over all speech seconds (0 without speech)"),
]

CAPTION_PERSON = pa.struct([
    pa.field("person_id", pa.string()), pa.field("track_ids", pa.list_(pa.int32())),
    pa.field("box", pa.list_(pa.float32())), pa.field("description", pa.string()),
    pa.field("speaking_frac", pa.float64()), pa.field("clothing_colour", pa.string()),
    pa.field("body_in_view", pa.string()),
])
CAPTION_STRUCTURE = pa.struct([
    pa.field("speaker_count", pa.int32()), pa.field("participants", pa.string()),
    pa.field("persons", pa.list_(CAPTION_PERSON)), pa.field("active_speaker", pa.string()),
    pa.field("scene", pa.string()),
])

CAPTION = [
    Column("caption.text", pa.string(), "the caption: participants sentence, `PersonN: description` per person, `Active speaker: PersonN.`, scene sentence; only the scene sentence when no one speaks"),
    Column("caption.structure", CAPTION_STRUCTURE, "the same as data: speaker_count (diarization), participants sentence, persons (person_id, voiceover track_ids, first head box [x0, y0, x1, y1] 0-1, description, speaking_frac, clothing_colour: offline, the most probable basic colour term (van de Weijer et al.'s learned colour names, after the frame's white patch) of the torso's person pixels' median colour, or `not visible`, body_in_view: offline, `face only` / `upper body` / `whole body`; both null from the reference captioner), as many persons as voiceover.human_count, active_speaker (PersonN or null), scene"),
    Column("caption.captioner", pa.string(), "`offline` (measured-facts template: no appearance) or `reference` (video-LLM descriptions)"),
    Column("caption.brightness", pa.float64(), "mean luma (0-255) of frames at analysis_fps"),
    Column("caption.colourfulness", pa.float64(), "mean chroma distance from grey, sqrt((U-128)^2 + (V-128)^2), of those frames"),
    Column("caption.motion", pa.float64(), "mean absolute luma change (0-255) between consecutive analysis frames"),
]

ASSIGN = [
    Column("subsets", pa.list_(pa.string()), "the clip's subsets: basic_face (talking-head sources); single_character, multiple_characters, sound_event, visual_mood (cinematic / film-related sources); empty: dropped as no_subset"),
    Column("split", pa.string(), "`train` or `test`; whole sources go to one side (null for dropped clips)"),
    Column("assign.split_reason", pa.string(), "why the source is on its side: `covers <subset>`, `fills test_size` or `train`, as given when the source was first placed (a later run keeps both); `recorded` for a placement recorded without its reason"),
]

def _measure_key(stage: str) -> Column:
    return Column(f"{stage}.measure_key", pa.string(),
                  f"what this row's {stage} measurement was computed from: the upstream row's measure key, `/`, and the "
                  f"{stage} fingerprint (stage version, measure config, backends); the row is measured again only when "
                  f"it changes (null: the row passed through unmeasured, dropped by an earlier stage)")


INGEST.append(Column("ingest.measure_key", pa.string(),
                     "what this row's ingest measurement was computed from: a hash of the ingest fingerprint (stage version, "
                     "measure config, backends) and the file's path, source_kind, size and mtime; later stages' keys "
                     "start with it"))
SHOTS.append(_measure_key("shots"))
AUDIO_QUALITY.append(_measure_key("audio_quality"))
DEMIX.append(_measure_key("demix"))
VOICEOVER.append(_measure_key("voiceover"))
CAPTION.append(_measure_key("caption"))
ASSIGN.append(_measure_key("assign"))

COLUMNS: dict[str, list[Column]] = {
    "ingest": SOURCE_CORE + INGEST + KEEP_COLUMNS,
    "shots": CLIP_CORE + SHOTS + KEEP_COLUMNS,
    "audio_quality": CLIP_CORE + SHOTS + AUDIO_QUALITY + KEEP_COLUMNS,
    "demix": CLIP_CORE + SHOTS + AUDIO_QUALITY + DEMIX + KEEP_COLUMNS,
    "voiceover": CLIP_CORE + SHOTS + AUDIO_QUALITY + DEMIX + VOICEOVER + KEEP_COLUMNS,
    "caption": CLIP_CORE + SHOTS + AUDIO_QUALITY + DEMIX + VOICEOVER + CAPTION + KEEP_COLUMNS,
    "assign": CLIP_CORE + SHOTS + AUDIO_QUALITY + DEMIX + VOICEOVER + CAPTION + ASSIGN + KEEP_COLUMNS,
}


def read_columns(path: RunPath, columns: list[str]) -> pa.Table:
    """Only the named columns of one part (what lookups and counts need), without validating the rest."""
    try:
        if is_local(path):
            return pq.read_table(path, columns=columns)
        with path.open("rb") as handle:
            return pq.read_table(pa.BufferReader(handle.read()), columns=columns)
    except (OSError, pa.ArrowInvalid, KeyError) as exc:
        raise ManifestError(f"{path}: cannot read columns {columns}: {exc}") from None


def own_columns(stage: str) -> set[str]:
    """The columns a stage adds to its input's (and keep, drop_reason, error, which every stage sets)."""
    index = STAGE_ORDER.index(stage)
    before = {c.name for c in COLUMNS[STAGE_ORDER[index - 1]]} if index > 0 else set()
    return {c.name for c in COLUMNS[stage]} - before | {c.name for c in KEEP_COLUMNS}


def hours_column(stage: str) -> str:
    """The column a stage's hours of video are summed from."""
    return "duration_s" if stage == "ingest" else "shots.duration_s"


def stage_dir(out: str | RunPath, stage: str) -> RunPath:
    return run_root(out) / f"{STAGE_ORDER.index(stage):02d}_{stage}"


def part_name(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


def column_stage(name: str, stage: str) -> str:
    return name.split(".", 1)[0] if "." in name else stage


def schema(stage: str, backends: dict[str, str] | None = None) -> pa.Schema:
    """The Arrow schema of a stage's output, with doc/stage/backend metadata on every field."""
    backends = backends or {}
    fields = []
    for col in COLUMNS[stage]:
        owner = column_stage(col.name, stage)
        meta = {"doc": col.doc, "stage": owner, "backend": backends.get(owner, f"demix_pipeline.stages.{owner}")}
        fields.append(pa.field(col.name, col.type, nullable=col.nullable, metadata=meta))
    return pa.schema(fields, metadata={"demix.stage": stage})


def to_table(stage: str, rows: list[dict], backends: dict[str, str] | None = None) -> pa.Table:
    sch = schema(stage, backends)
    unknown = {k for row in rows for k in row} - set(sch.names)
    if unknown:
        raise ManifestError(f"stage {stage}: rows carry columns not in its schema: {sorted(unknown)}")
    arrays = {name: [row.get(name) for row in rows] for name in sch.names}
    try:
        return pa.Table.from_pydict(arrays, schema=sch)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ManifestError(f"stage {stage}: rows do not fit the schema: {exc}") from None


def write_atomic(table: pa.Table, path: RunPath) -> None:
    """Readers never see half a file (temporary name + rename locally, one PUT on object storage)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    write_bytes_atomic(sink.getvalue().to_pybytes(), path)


def write_text_atomic(text: str, path: RunPath) -> None:
    write_bytes_atomic(text.encode(), path)


def write_json_atomic(obj: dict, path: RunPath) -> None:
    write_text_atomic(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", path)


def validate(table: pa.Table, stage: str, origin: str) -> None:
    expected = schema(stage)
    for field in expected:
        if field.name not in table.column_names:
            raise ManifestError(f"{origin}: column '{field.name}' is missing (stage {stage})")
        actual = table.schema.field(field.name).type
        if actual != field.type:
            raise ManifestError(f"{origin}: column '{field.name}' has type {actual}, expected {field.type}")
        if not field.nullable and table.column(field.name).null_count:
            raise ManifestError(f"{origin}: column '{field.name}' has {table.column(field.name).null_count} null values but may not be null")
    extra = set(table.column_names) - set(expected.names)
    if extra:
        raise ManifestError(f"{origin}: unexpected columns {sorted(extra)} (stage {stage})")


def part_files(out: str | RunPath, stage: str) -> list[RunPath]:
    folder = stage_dir(out, stage)
    return sorted(folder.glob("part-*.parquet"), key=str) if folder.exists() else []


def read_part(path: RunPath, stage: str) -> pa.Table:
    try:
        if is_local(path):
            table = pq.read_table(path)
        else:
            with path.open("rb") as handle:
                table = pq.read_table(pa.BufferReader(handle.read()))
    except (OSError, pa.ArrowInvalid) as exc:
        raise ManifestError(f"{path}: cannot read Parquet: {exc}") from None
    validate(table, stage, str(path))
    return table


def read_stage(out: str | RunPath, stage: str, require_success: bool = True) -> pa.Table:
    """All rows of a stage's output, validated. Requires `_SUCCESS` unless told otherwise."""
    folder = stage_dir(out, stage)
    if require_success and not (folder / "_SUCCESS").exists():
        raise ManifestError(f"{folder}: stage '{stage}' has not finished (no _SUCCESS); run it first")
    parts = part_files(out, stage)
    if not parts:
        return schema(stage).empty_table()
    return pa.concat_tables([read_part(p, stage) for p in parts])


def read_stage_columns(out: str | RunPath, stage: str, columns: list[str]) -> pa.Table:
    """Only these columns of a finished stage, part by part (what status, stats and the report need)."""
    folder = stage_dir(out, stage)
    if not (folder / "_SUCCESS").exists():
        raise ManifestError(f"{folder}: stage '{stage}' has not finished (no _SUCCESS); run it first")
    parts = [read_columns(p, columns) for p in part_files(out, stage)]
    return pa.concat_tables(parts) if parts else schema(stage).empty_table().select(columns)


def render_docs() -> str:
    """Markdown for manifests/README.md: one table per stage, every column."""
    lines = [
        "# Manifest columns",
        "",
        "Generated from `demix_pipeline/manifest.py` (`python -m demix_pipeline.manifest > manifests/README.md`);",
        "a test fails when the two differ. Each stage writes `<out>/<NN>_<stage>/part-*.parquet`,",
        "`_stage.json` (resolved config, code version, backends, counts, timings, the Ray node that measured each shard "
        "in `shard_nodes`; under `streamed`, what the stream measured for the stage: rows, batches, batches per node, "
        "its first and last batch) and `_SUCCESS` last.",
        "Every Parquet field carries metadata `doc`, `stage` and `backend` (what produced the value: the backends "
        "and package versions of the workers that measured the rows and, for store models, "
        "`weights: <model> sha256:<first 12 hex>`; workers that differed are joined by ` | `).",
        "Column names with a dot need quoting in SQL: `SELECT \"shots.duration_s\" FROM '01_shots/*.parquet'`.",
        "",
    ]
    for stage, cols in COLUMNS.items():
        lines += [f"## {STAGE_ORDER.index(stage):02d}_{stage}", "", "| column | type | null | meaning |", "|---|---|---|---|"]
        for col in cols:
            lines.append(f"| `{col.name}` | {col.type} | {'yes' if col.nullable else 'no'} | {col.doc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_docs(), end="")
