"""Scoring against ground truth in the layout of ../shared/media (labels.tsv, shot_transitions.tsv).

Shot boundaries: a shot start after 0 s in labels.tsv is a true boundary; a detected boundary
within `tolerance_s` of an unmatched true one is a hit. Boundaries, true or detected, inside a
range of shot_transitions.tsv (fades, dissolves, inserts, jump cuts) widened by the tolerance
count neither for nor against.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

GRADUAL_TYPES = {"fade_in", "fade_out", "dissolve", "wipe"}


@dataclass
class ShotTruth:
    cuts: dict[str, list[float]]  # video path (relative to the media folder) -> hard cut times
    transitions: dict[str, list[tuple[float, float, str]]]  # -> (start_s, end_s, type)


def _tsv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def load_shot_truth(media: Path) -> ShotTruth:
    cuts: dict[str, list[float]] = {}
    for row in _tsv(media / "labels.tsv"):
        cuts.setdefault(row["video_path"], [])
        if float(row["start_s"]) > 0:
            cuts[row["video_path"]].append(float(row["start_s"]))
    transitions: dict[str, list[tuple[float, float, str]]] = {}
    path = media / "shot_transitions.tsv"
    for row in _tsv(path) if path.exists() else []:
        transitions.setdefault(row["video_path"], []).append((float(row["start_s"]), float(row["end_s"]), row["type"]))
    return ShotTruth(cuts, transitions)


def score_boundaries(predicted: dict[str, list[float]], truth: ShotTruth, tolerance_s: float = 0.25) -> dict:
    tp = fp = fn = 0
    for video, true_cuts in truth.cuts.items():
        ranges = truth.transitions.get(video, [])

        def ignored(t: float) -> bool:
            return any(a - tolerance_s <= t <= b + tolerance_s for a, b, _ in ranges)

        counted = [t for t in true_cuts if not ignored(t)]
        used: set[int] = set()
        for t in sorted(predicted.get(video, [])):
            match = next((i for i, c in enumerate(counted) if i not in used and abs(c - t) <= tolerance_s), None)
            if match is not None:
                used.add(match)
                tp += 1
            elif not ignored(t):
                fp += 1
        fn += len(counted) - len(used)
    precision = tp / max(1, tp + fp)
    recall = tp / max(1, tp + fn)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / max(1e-9, precision + recall)}
