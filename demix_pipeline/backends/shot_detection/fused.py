"""`fused`: TransNetV2 decides the cuts, our detector says where to look and what is a flash or a fade.

Why: TransNetV2 finds the cuts our spike ratios miss (similar-looking shots, short shots, dark
scenes), but on CPU it costs about 1 s of a core per 50 frames. A hard cut always changes the
picture from one frame to the next, so our difference signal (computed anyway, at decode speed)
marks candidate frames with deliberately loose tests (`fused.candidate_*`: a jump over a low floor
that stands out of its neighbourhood); TransNetV2 runs only on the 100-frame windows holding a
candidate, with the authors' windows and threshold, so where it runs it gives exactly the
probabilities of plain TransNetV2. A cut is a TransNetV2 transition at a candidate that our
flash test passes (the new picture persists). Gradual transitions and blank frames are ours and
TransNetV2's long transition runs together. Static footage (talking heads, interviews) has few
candidates and costs little more than our detector; busy footage costs up to plain TransNetV2.
"""
from __future__ import annotations

import os

import numpy as np

from demix_pipeline.backends.shot_detection.base import ShotBoundaries
from demix_pipeline.backends.shot_detection.demix import _CHUNK, _Scan, _mean_abs
from demix_pipeline.backends.shot_detection.transnetv2 import (HEIGHT, WIDTH, TransNetV2Detector, WindowScorer,
                                                               boundaries_from_runs, transition_runs)
from demix_pipeline.config import DetectorConfig
from demix_pipeline.media.decode import DecodeReport
from demix_pipeline.media.frames import iter_thumbnail_chunks, thumbnails_to_rgb


class _CandidateScan(_Scan):
    """Our scan with loose cut candidates; every candidate that is not a flash is handed to TransNetV2."""

    def __init__(self, cfg: DetectorConfig):
        super().__init__(cfg.demix)
        self.fused = cfg.fused
        self.scorer: WindowScorer | None = None
        self.candidates: dict[int, float] = {}  # first frame of the new picture -> jump

    def _setup(self) -> None:
        super()._setup()
        self.k_cand = self._frames(self.fused.candidate_window_s, 2)
        self.fwd = max(self.fwd, self.k_cand + 1)

    def _add_candidates(self, start: int) -> None:
        floor = self.fused.candidate_min_diff
        for i in range(max(1, start), len(self.mad)):
            if self.mad[i] >= floor:
                self.cut_candidates.append((i, 1))

    def _cut_score(self, frames, base, end, i, gap) -> float | None:
        mad = self.mad
        around = mad[max(1, i - self.k_cand):i] + mad[i + 1:i + 1 + self.k_cand]
        if around and mad[i] < self.fused.candidate_ratio * float(np.median(around)):
            return None
        new = i  # first frame of the new picture
        for k in range(self.k_persist):
            if new + k < end and _distance(frames, base, end, new + k, i - 1) < self.cfg.persist_frac * mad[i]:
                return None  # the old picture comes back: a flash, not a cut
            if i - 2 - k >= base and _distance(frames, base, end, new, i - 2 - k) < self.cfg.persist_frac * mad[i]:
                return None  # the picture of just before comes back: the end of a flash
        self.candidates[i] = mad[i]
        self.scorer.request(range(i - 2, i + 2))  # a 2-frame transition run may sit on either side
        return None  # cuts are decided once TransNetV2 has scored the candidates


def _distance(frames: np.ndarray, base: int, end: int, p: int, q: int) -> float:
    """Our detector's frame difference (mean abs YUV) between frames p and q of the tail buffer."""
    p, q = min(max(p, base), end - 1), min(max(q, base), end - 1)
    return float(_mean_abs(frames[p - base][None], frames[q - base][None])[0])


class FusedDetector(TransNetV2Detector):
    name = "fused"

    def __init__(self, cfg: DetectorConfig, num_threads: int = 1, device: str = "cpu"):
        super().__init__(cfg, num_threads, device)
        self.version = (f"demix candidates (floor {cfg.fused.candidate_min_diff}, ratio {cfg.fused.candidate_ratio}) "
                        f"+ {self.version}")
        self.windows_run = 0
        self.windows_total = 0

    def detect(self, path: str | os.PathLike) -> ShotBoundaries:
        scan = _CandidateScan(self.cfg)
        scorer = None
        report = DecodeReport()
        for chunk, times in iter_thumbnail_chunks(path, self.cfg.demix.thumb_short_side, _CHUNK, report):
            scan.times.extend(times)
            if scorer is None:
                scan._setup()
                scorer = WindowScorer(self._network(), self.tn.windows_per_batch, score_all=False, lag=scan.fwd + 4)
                scan.scorer = scorer
            rgb = thumbnails_to_rgb(chunk, WIDTH, HEIGHT)  # before push: the scan's tail reuses the chunk buffer
            scan.push(chunk)
            scorer.push(rgb)
        if scorer is None:
            raise ValueError("video decodes to no frame")
        scan._evaluate(scan.tail, scan.tail_start, final=True)
        probs = scorer.finish()
        self.windows_run, self.windows_total = scorer.windows_run, -(-len(scan.times) // 50)
        runs = transition_runs(probs, self.tn.threshold)
        tn_cuts, tn_gradual = boundaries_from_runs(np.asarray(scan.times), runs, self.tn.max_cut_frames)
        cuts = {at: score for at, score in tn_cuts.items()
                if any(at + d in scan.candidates for d in (-1, 0, 1))}
        bounds = scan.boundaries(cuts, tn_gradual)
        bounds.decode = report
        return bounds
