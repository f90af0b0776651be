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


def score_boundaries(predicted: dict[str, list[float]], truth: ShotTruth, tolerance_s: float = 0.25,
                     videos: set[str] | None = None) -> dict:
    """Cut precision/recall/F1 over the labelled videos (only `videos`, when given)."""
    tp = fp = fn = 0
    for video, true_cuts in truth.cuts.items():
        if videos is not None and video not in videos:
            continue
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


# Diarization: ../shared/media/diarization (pyannote's sample and AMI excerpts with their RTTMs) --------

def diarization_files(media: Path) -> dict[str, tuple[Path, Path]]:
    """RTTM uri -> (wav, rttm) for every wav under media/diarization: an RTTM of the same name (its
    first uri), else an RTTM that names the wav's stem as a uri."""
    folder = Path(media) / "diarization"
    rttms = sorted(folder.rglob("*.rttm"))

    def uris(rttm: Path) -> list[str]:
        return [line.split()[1] for line in rttm.read_text().splitlines() if line.startswith("SPEAKER")]

    out = {}
    for wav in sorted(folder.rglob("*.wav")):
        same_name = wav.with_suffix(".rttm")
        if same_name.exists() and uris(same_name):
            out[uris(same_name)[0]] = (wav, same_name)
            continue
        for rttm in rttms:
            if wav.stem in uris(rttm):
                out[wav.stem] = (wav, rttm)
                break
    return out


def _annotation(turns, uri: str):
    from pyannote.core import Annotation, Segment

    annotation = Annotation(uri=uri)
    for start, end, speaker in turns:
        annotation[Segment(start, end)] = speaker
    return annotation


def read_rttm(path: Path, uri: str) -> list[tuple[float, float, str]]:
    turns = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[0] == "SPEAKER" and parts[1] == uri:
            turns.append((float(parts[3]), float(parts[3]) + float(parts[4]), parts[7]))
    return turns


def score_diarization(files: dict[str, tuple[Path, Path]], hypotheses: dict[str, list], collar: float = 0.0) -> dict:
    """Pooled DER (and its parts) with pyannote.metrics, over all files and over the AMI ones (uri dev*).

    `collar` is pyannote's total width (0.5 = the usual +-0.25 s). The UEM is the whole file.
    Speaker count accuracy: files whose hypothesis has as many speakers as the reference.
    """
    import soundfile
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    pooled, ami = DiarizationErrorRate(collar=collar), DiarizationErrorRate(collar=collar)
    right = 0
    for uri, (wav, rttm) in files.items():
        truth = read_rttm(rttm, uri)
        hypothesis = [(t.start_s, t.end_s, t.speaker) for t in hypotheses[uri]]
        uem = Timeline([Segment(0, soundfile.info(str(wav)).duration)])
        reference, predicted = _annotation(truth, uri), _annotation(hypothesis, uri)
        pooled(reference, predicted, uem=uem)
        if uri.startswith("dev"):
            ami(reference, predicted, uem=uem)
        right += len({s for _, _, s in truth}) == len({s for _, _, s in hypothesis})
    total = pooled["total"] or 1.0
    return {"der": abs(pooled), "der_ami": abs(ami) if ami["total"] else None,
            "missed": pooled["missed detection"] / total, "false_alarm": pooled["false alarm"] / total,
            "confusion": pooled["confusion"] / total, "speaker_count_accuracy": right / max(1, len(files))}


# Per-shot labels (labels.tsv): human count and voice-over ----------------------------------------

def count_class(value) -> str:
    """Human counts as the classes the labels support: 0, 1, 2+."""
    number = {"3+": 3}.get(str(value), value)
    return "2+" if int(number) >= 2 else str(int(number))


def label_rows(media: Path) -> list[dict]:
    return _tsv(Path(media) / "labels.tsv")


def shot_of_clip(labels: list[dict], video_path: str, start_s: float, end_s: float) -> dict | None:
    """The labelled shot of `video_path` that overlaps the clip [start_s, end_s) most (None if none)."""
    best, best_overlap = None, 0.0
    for label in labels:
        if label["video_path"] != video_path:
            continue
        overlap = min(end_s, float(label["end_s"])) - max(start_s, float(label["start_s"]))
        if overlap > best_overlap:
            best, best_overlap = label, overlap
    return best


# Tune / held-out halves ---------------------------------------------------------------------------

TUNE_LIST = Path(__file__).resolve().parent.parent / "tests" / "data" / "tune_files.txt"


def tune_files(path: Path = TUNE_LIST) -> set[str]:
    """Media-relative paths of the fixed tune list: parameters may be chosen on these files only."""
    return {line.strip() for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")}


def halves(videos, tune: set[str] | None = None) -> dict[str, set[str]]:
    """`videos` split into the tune files, the held-out rest, and all: what benches report separately."""
    tune = tune_files() if tune is None else tune
    videos = set(videos)
    return {"tune": videos & tune, "held_out": videos - tune, "all": videos}


# Active speaker against labels.tsv `talking_face_visible` -----------------------------------------

def talking_face_agreement(labels: list[dict], results: dict, min_active_frac: float = 0.2) -> tuple[int, int, list[str]]:
    """(agreeing shots, scored shots, disagreements) over the labelled speech shots (speech yes,
    talking_face_visible yes/no): a shot shows a talking face when some face is an active speaker in
    at least `min_active_frac` of its speech frames. `results`: video path -> {"grid": frame times,
    "active": bool per grid time (some face speaks), "turns": [(start_s, end_s), ...] of speech};
    shots without speech frames in the turns are left out."""
    import numpy as np

    right = total = 0
    misses = []
    for row in labels:
        if row["speech"] != "yes" or row["talking_face_visible"] not in ("yes", "no") or row["video_path"] not in results:
            continue
        result = results[row["video_path"]]
        a, b = float(row["start_s"]), float(row["end_s"])
        grid = np.asarray(result["grid"])
        speech = np.zeros(len(grid), bool)
        for s, e in result["turns"]:
            speech |= (grid >= max(s, a)) & (grid < min(e, b))
        if not speech.any():
            continue
        talking = float(np.asarray(result["active"])[speech].mean()) >= min_active_frac
        total += 1
        right += talking == (row["talking_face_visible"] == "yes")
        if talking != (row["talking_face_visible"] == "yes"):
            misses.append(f"{row['video_path']}#{row['shot_index']}: {row['talking_face_visible']} -> "
                          f"{'yes' if talking else 'no'}")
    return right, total, misses
