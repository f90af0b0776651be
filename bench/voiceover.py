"""Benchmark stage voiceover on a media folder like ../shared/media.

Prints: DER (missed / false alarm / confusion) and speaker-count accuracy of each diarization
backend on the RTTM files (collar 0 and pyannote's collar 0.5 = +-0.25 s); human-count accuracy
(classes 0 / 1 / 2+) against labels.tsv per labelled shot, also on the tune files
(tests/data/tune_files.txt) and the held-out rest apart; active-speaker agreement with
labels.tsv `talking_face_visible` on labelled speech shots; voice-over decisions (the decide rule
applied per shot) against labels.tsv `voice_over`; detector frames per second on one
core; and the stage's realtime factor on 2 worker processes (video seconds / wall seconds), with
decode-only of the same files in the same pool as the baseline ratio.
Shots are measured on the source files (their mixture audio stands in for the speech stem).

    python bench/voiceover.py [--media DIR] [--json FILE] [--models DIR]
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
from demix_pipeline.evaluation import count_class, diarization_files, label_rows, score_diarization, tune_files
from demix_pipeline.media.audio import ClipAudio
from demix_pipeline.media.frames import iter_frames_at
from demix_pipeline.stages.base import RunContext
from demix_pipeline.stages.voiceover import SPEECH_RATE, VoiceoverStage, human_count

DEFAULT_MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"
_STAGE = None


def _stage(overrides=()) -> VoiceoverStage:
    global _STAGE
    if _STAGE is None:
        _STAGE = VoiceoverStage(load_config(overrides=list(overrides)), RunContext(Path(".")))
        _STAGE.setup()
    return _STAGE


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


def detector_fps(media: Path, labels: list[dict], frames: int = 100) -> float:
    """Person detector frames a second on one core, on the longest labelled shot with people in it."""
    stage = _stage()
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
    parser.add_argument("--models", type=Path, help="model store with pyannote_diarization (reference DER)")
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
    count_right = count_total = asd_right = asd_total = vo_right = vo_total = 0
    tune = tune_files()
    count_by_half = {"tune": [0, 0], "held_out": [0, 0]}
    misses = []
    for row in labels:
        result = results[row["video_path"]]
        a, b = float(row["start_s"]), float(row["end_s"])
        times = np.asarray(result["sample_times"])
        in_shot = (times >= a) & (times < b)
        if row["max_people"] != "unsure" and in_shot.any():
            counts = list(np.asarray(result["counts"])[in_shot])
            predicted = count_class(human_count(counts, cfg.sample_fps, cfg.count_smoothing_s, cfg.count_percentile))
            count_total += 1
            count_right += predicted == count_class(row["max_people"])
            half = count_by_half["tune" if row["video_path"] in tune else "held_out"]
            half[0] += predicted == count_class(row["max_people"])
            half[1] += 1
            if predicted != count_class(row["max_people"]):
                misses.append(f"{row['video_path']}#{row['shot_index']}: {row['max_people']} -> {predicted}")
        if row["speech"] == "yes" and row["talking_face_visible"] in ("yes", "no"):
            grid = result["grid"]
            speech = np.zeros(len(grid), bool)
            for s, e in result["turns"]:
                speech |= (grid >= max(s, a)) & (grid < min(e, b))
            if speech.any():
                predicted_talking = result["active"][speech].mean() >= 0.2
                asd_total += 1
                asd_right += predicted_talking == (row["talking_face_visible"] == "yes")
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
    figures["voiceover.video_seconds"] = round(seconds, 1)
    figures["voiceover.stage_realtime_2proc"] = round(seconds / stage_wall, 2)
    figures["voiceover.decode_only_realtime_2proc"] = round(sum(decoded) / decode_wall, 2)
    figures["voiceover.stage_vs_decode_ratio"] = round((seconds / stage_wall) / (sum(decoded) / decode_wall), 3)
    figures["voiceover.peak_rss_mb_driver"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures["voiceover.peak_rss_mb_workers"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    report([f"voiceover benchmark on {args.media} (labels.tsv, diarization RTTMs)",
            "human-count misses: " + ("; ".join(misses) or "none")], figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
