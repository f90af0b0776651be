"""Benchmark shot splitting on a media folder laid out like ../shared/media.

Prints, measured in this run: cut F1 of our detector and of stock PySceneDetect ContentDetector
(labels.tsv, ±0.25 s, shot_transitions.tsv ranges don't-care), realtime factor of detection,
realtime factor of decode-only over the same frames (PyAV, threaded: the limit), their ratio,
realtime factor of clip cutting (default encode settings), and peak RSS.

    python bench/shots.py [--media DIR] [--json FILE] [--repeat N]
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
from demix_pipeline.evaluation import load_shot_truth, score_boundaries
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
    parser.add_argument("--repeat", type=int, default=2, help="timing repeats (best is kept)")
    args = parser.parse_args()
    truth = load_shot_truth(args.media)
    videos = videos_with_frames(args.media, sorted(truth.cuts))
    seconds = sum(d for _, d in videos)

    ours_det, stock_det = make_detector(DetectorConfig()), make_detector(DetectorConfig(name="content"))
    predictions: dict[str, dict[str, list[float]]] = {"ours": {}, "stock": {}}

    def run_detector(label, detector):
        for name, _ in videos:
            predictions[label][name] = detector.detect(args.media / name).boundary_times()

    decode_s = timed(lambda: [decode_only(args.media / n) for n, _ in videos], args.repeat)
    ours_s = timed(lambda: run_detector("ours", ours_det), args.repeat)
    decode_s = min(decode_s, timed(lambda: [decode_only(args.media / n) for n, _ in videos], args.repeat))
    stock_s = timed(lambda: run_detector("stock", stock_det), 1)
    f1_ours = score_boundaries(predictions["ours"], truth)
    f1_stock = score_boundaries(predictions["stock"], truth)

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
        "shots.video_seconds": round(seconds, 2),
        "shots.f1_ours": round(f1_ours["f1"], 4),
        "shots.precision_ours": round(f1_ours["precision"], 4),
        "shots.recall_ours": round(f1_ours["recall"], 4),
        "shots.f1_stock_content_detector": round(f1_stock["f1"], 4),
        "shots.detect_realtime": round(seconds / ours_s, 2),
        "shots.decode_only_realtime": round(seconds / decode_s, 2),
        "shots.detect_vs_decode_ratio": round(decode_s / ours_s, 3),
        "shots.stock_content_detector_realtime": round(seconds / stock_s, 2),
        "shots.cut_realtime": round(clip_seconds / cut_s, 2),
        "shots.peak_rss_mb": round(own, 1),
        "shots.peak_rss_ffmpeg_mb": round(children, 1),
        "shots.pyav": av.__version__,
    }
    report([f"shot splitting on {args.media} ({len(videos)} videos, {seconds:.1f} s of video)",
            f"labels: {args.media / 'labels.tsv'} (cuts), {args.media / 'shot_transitions.tsv'} (don't-care)",
            f"  ours:  {f1_ours}", f"  stock: {f1_stock}"], figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
