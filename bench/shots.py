"""Benchmark shot splitting on a media folder laid out like ../shared/media.

Prints, measured in this run: cut F1 (labels.tsv, ±0.25 s, shot_transitions.tsv ranges don't-care)
of the default `fused` detector, plain TransNetV2, ours (`demix`) and stock PySceneDetect
ContentDetector, each on the tune files (tests/data/tune_files.txt), the held-out rest and all;
realtime factor of each detector and of decode-only over the same frames (PyAV, threaded: the
limit), detection speed as a ratio to decode-only, the share of TransNetV2 windows the fused
detector ran, realtime factor of clip cutting (default encode settings), and peak RSS.

    python bench/shots.py [--media DIR] [--json FILE] [--repeat N] [--threads N]
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import av

from _report import report

from demix_pipeline.backends.shot_detection import make_detector
from demix_pipeline.config import DetectorConfig, ShotsConfig
from demix_pipeline.evaluation import halves, load_shot_truth, score_boundaries
from demix_pipeline.media.cut import ClipSpan, cut_clip
from demix_pipeline.media.frames import open_video
from demix_pipeline.media.probe import probe

DEFAULT_MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"


def decode_only(path: Path) -> int:
    container, stream = open_video(path)
    with container:
        return sum(1 for _ in container.decode(stream))


def videos_with_frames(media: Path, names: list[str]) -> list[tuple[str, float]]:
    out = []
    for name in names:
        try:
            info = probe(media / name)
        except Exception:
            continue
        if info.has_video and info.frame_count > 1:
            out.append((name, info.video_duration_s))
    return out


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--json", type=Path, help="write the figures as one JSON object")
    parser.add_argument("--repeat", type=int, default=2, help="timing repeats of decode-only and ours (best is kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for TransNetV2 (the stage uses num_cpus)")
    args = parser.parse_args()
    truth = load_shot_truth(args.media)
    videos = videos_with_frames(args.media, sorted(truth.cuts))
    seconds = sum(d for _, d in videos)

    detectors = {"fused": DetectorConfig(name="fused"), "transnetv2": DetectorConfig(name="transnetv2"),
                 "ours": DetectorConfig(name="demix"), "stock": DetectorConfig(name="content")}
    predictions: dict[str, dict[str, list[float]]] = {label: {} for label in detectors}
    seconds_of: dict[str, float] = {}
    windows = [0, 0]

    def run_detector(label):
        detector = make_detector(detectors[label], num_threads=args.threads)
        for name, _ in videos:
            predictions[label][name] = detector.detect(args.media / name).boundary_times()
            if label == "fused":
                windows[0] += detector.windows_run
                windows[1] += detector.windows_total

    decode_s = timed(lambda: [decode_only(args.media / n) for n, _ in videos], args.repeat)
    make_detector(detectors["fused"], num_threads=args.threads)._network()  # load the network outside the timing
    for label in detectors:
        repeat = args.repeat if label == "ours" else 1
        if label == "fused":
            windows[:] = [0, 0]
        seconds_of[label] = timed(lambda: run_detector(label), repeat)
    decode_s = min(decode_s, timed(lambda: [decode_only(args.media / n) for n, _ in videos], args.repeat))
    split = halves(predictions["ours"])
    f1 = {label: {half: score_boundaries(predictions[label], truth, videos=names) for half, names in split.items()}
          for label in detectors}

    cfg = ShotsConfig()
    clip_seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        for i, (name, duration) in enumerate(videos):
            info = probe(args.media / name)
            span_s = min(duration, 8.0)
            frames = int(span_s * info.fps)
            span = ClipSpan(0.0, frames / info.fps, frames, 1 / info.fps)
            cut_clip(args.media / name, Path(tmp) / f"{i}.mp4", span, cfg.encode, info.audio_streams > 0)
            clip_seconds += span.duration_s
        cut_s = time.perf_counter() - started

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures = {
        "shots.videos": len(videos),
        "shots.videos_tune": len(split["tune"]),
        "shots.videos_held_out": len(split["held_out"]),
        "shots.video_seconds": round(seconds, 2),
        "shots.decode_only_realtime": round(seconds / decode_s, 2),
    }
    for label in detectors:
        for half in split:
            figures[f"shots.f1_{label}_{half}"] = round(f1[label][half]["f1"], 4)
        figures[f"shots.precision_{label}_all"] = round(f1[label]["all"]["precision"], 4)
        figures[f"shots.recall_{label}_all"] = round(f1[label]["all"]["recall"], 4)
        figures[f"shots.{label}_realtime"] = round(seconds / seconds_of[label], 2)
        figures[f"shots.{label}_vs_decode_ratio"] = round(decode_s / seconds_of[label], 3)
    figures.update({
        "shots.fused_windows_run_frac": round(windows[0] / max(1, windows[1]), 3),
        "shots.transnetv2_threads": args.threads,
        "shots.cut_realtime": round(clip_seconds / cut_s, 2),
        "shots.peak_rss_mb": round(own, 1),
        "shots.peak_rss_ffmpeg_mb": round(children, 1),
        "shots.pyav": av.__version__,
    })
    report([f"shot splitting on {args.media} ({len(videos)} videos, {seconds:.1f} s of video)",
            f"labels: {args.media / 'labels.tsv'} (cuts), {args.media / 'shot_transitions.tsv'} (don't-care)",
            f"tune files: {len(split['tune'])} (tests/data/tune_files.txt), held out: {len(split['held_out'])}"]
           + [f"  {label}: {f1[label]['all']}" for label in detectors], figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
